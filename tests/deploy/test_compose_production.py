"""docker-compose.yml with docker-compose.production.yml brought up for real, as test_compose_up.py brings up the
dev stack (tests/deploy/compose_stack.py; this machine's overrides compose.here.yml and production.here.yml): the
four Temporal services on PostgreSQL, the schema and namespace jobs done, the Temporal UI; the guide's YAML
applied against the stack's apiserver: the three snapshots Ready, the revert done; their workflows are the
cluster's, with the search attributes the product sets, and the UI serves a Ready snapshot's workflow page; then
`down -v` leaves no container, volume or process of it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from urllib.parse import quote, unquote

import pytest

from api import VirtualMachineSnapshot
from api.names import WORKFLOW_ID_ANNOTATION, WORKFLOW_URL_ANNOTATION
from tests.deploy.compose_stack import (
    PRODUCTION_FILES,
    Compose,
    brought_up,
    down_leaves_nothing,
    guide_snapshots_ready_and_revert,
    kubectl_in_stack,
    wait_for,
)

pytestmark = pytest.mark.compose

PROJECT = "vmsnap-compose-production-test"
CLUSTER = ("temporal-history", "temporal-matching", "temporal-frontend", "temporal-worker")
UI = "http://localhost:8233"  # docker-compose.yml's TEMPORAL_UI_URL: the UI's published port
# an HTTP GET from inside the stack's network namespace: status, content type and body as JSON
GET = """
import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=30) as resp:
        status, kind, body = resp.status, resp.headers.get_content_type(), resp.read().decode()
except urllib.error.HTTPError as e:
    status, kind, body = e.code, e.headers.get_content_type(), e.read().decode()
print(json.dumps({"status": status, "type": kind, "body": body}))
"""


@pytest.fixture(scope="module")
def compose(compose_images: tuple[str, dict[str, str]]) -> Iterator[Compose]:
    docker, env = compose_images
    with brought_up(Compose(docker, env, PROJECT, PRODUCTION_FILES)) as stack:
        yield stack


@pytest.fixture(scope="module")
def ready(compose: Compose, tmp_path_factory) -> dict[str, VirtualMachineSnapshot]:
    """The guide's snapshots, once Ready (the revert done too)."""
    return guide_snapshots_ready_and_revert(compose, kubectl_in_stack(compose, tmp_path_factory.mktemp("kube")))


def temporal(compose: Compose, *args: str) -> str:
    """The `temporal` CLI against the cluster's frontend, from the namespace job's image."""
    done = compose.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "temporal", "temporal-setup", *args,
                       "--address", "temporal-frontend:7233", "--namespace", "default")
    return done.stdout


def get(compose: Compose, url: str) -> dict:
    done = compose.in_stack([sys.executable, "-c", GET, url])
    assert done.returncode == 0, f"GET {url}: {done.stderr}"
    return json.loads(done.stdout)


def test_every_service_is_healthy_or_done(compose: Compose):
    states = {c["Service"]: c for c in compose.containers()}
    for one_shot in ("pki", "setup", "temporal-schema", "temporal-setup"):
        assert states[one_shot]["State"] == "exited" and states[one_shot]["ExitCode"] == 0, states[one_shot]
    for service in ("postgres", *CLUSTER, "temporal-ui", "vcsim", "etcd", "kube-apiserver", "worker", "bridge"):
        assert states[service]["Health"] == "healthy", states[service]
    assert "temporal" not in states  # the dev server is off
    # each service of the cluster in a process of its own
    pids = compose.pids()
    assert len({pids[service] for service in CLUSTER}) == len(CLUSTER)


def test_guide_snapshots_ready_and_revert_on_the_cluster(compose: Compose, ready: dict[str, VirtualMachineSnapshot]):
    """The operations ran on the cluster: listed by the search attributes the product sets, from its visibility
    store (PostgreSQL, written a moment after each change: polled)."""
    query = "VirtualMachine = 'my-vm' AND SnapshotOperation = 'CreateSnapshot'"

    def creates() -> list[dict]:
        out = temporal(compose, "workflow", "list", "--query", query, "--output", "json").strip()
        return json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
    wait_for(compose, lambda: len(creates()) == len(ready), f"{len(ready)} creates listed by {query!r}")
    listed = creates()
    assert {w["status"] for w in listed} == {"WORKFLOW_EXECUTION_STATUS_COMPLETED"}, listed
    assert {w["execution"]["workflowId"] for w in listed} == {
        s.metadata.annotations[WORKFLOW_ID_ANNOTATION] for s in ready.values()}


def test_the_ui_serves_a_ready_snapshots_workflow_page(compose: Compose, ready: dict[str, VirtualMachineSnapshot]):
    """The link on the object opens the UI's workflow page, and the UI server reaches the cluster for it: the
    API the page calls answers with that workflow, completed. (Rendered in a browser: the browser tier.)"""
    snapshot = ready["snap-1"]
    workflow_id = snapshot.metadata.annotations[WORKFLOW_ID_ANNOTATION]
    url = snapshot.metadata.annotations[WORKFLOW_URL_ANNOTATION]
    assert url == f"{UI}/namespaces/default/workflows/{quote(workflow_id, safe='')}"
    assert unquote(url.rsplit("/", 1)[1]) == workflow_id

    page = get(compose, url)
    assert (page["status"], page["type"]) == (200, "text/html"), page
    assert "<html" in page["body"].lower()

    described = get(compose, f"{UI}/api/v1/namespaces/default/workflows/{quote(workflow_id, safe='')}")
    assert (described["status"], described["type"]) == (200, "application/json"), described
    execution = json.loads(described["body"])["workflowExecutionInfo"]
    assert execution["execution"]["workflowId"] == workflow_id
    assert execution["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


def test_down_leaves_nothing(compose: Compose):
    down_leaves_nothing(compose)
