"""Mutual TLS to Temporal on pods, done as deploy/README.md ("Connecting to Temporal") tells an operator: the client
certificate, its key and the frontend's CA in Secret vmsnap-temporal-tls (`kubectl create secret generic
--from-file=…`), the component deploy/components/temporal-mtls added to the site's kustomization, Secret
vmsnap-temporal's address the frontend's; that frontend requires client certificates (the test bed's four-service
cluster, `temporal_mtls_cluster`, certificates from testbed/pki.py).

The operator first puts the wrong CA in the Secret: the new pods stay up and not ready, each saying why in one line
of its log and on /readyz, and the rollout waits while the old pods serve. The Secret fixed, those same pods connect
(no restart) and the rollout completes; the guide's snapshot goes Ready through them, its workflow on the mutual-TLS
cluster. The shared deployment then goes back to the plain Temporal the other pod tests use."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client, TLSConfig

from api import temporal_messages as says
from testbed.pki import CertificateAuthority
from testbed.process import repo_root
from testbed.temporal_cluster import TemporalCluster
from testbed.vms import create_vm, eventually, get_snapshot
from tests.e2e.test_create_snapshot import created_workflow_id
from tests.fixtures.product import take_sim_vm
from tests.guide_examples import GUIDE_SNAPSHOT_WITHOUT_MEMORY
from tests.pods.cluster import BRIDGES, NAMESPACE, WORKERS, PodCluster

COMPONENT = repo_root() / "deploy" / "components" / "temporal-mtls"
MOUNTED = "/etc/vmsnap/temporal-tls"  # where the component mounts the Secret
# the new pods' reason: seen within the first connect; the Secret's renewed files within the kubelet's sync period
# (a minute) and the processes' file check (10 s)
SAID_SECONDS, FIXED_SECONDS = 180, 240
# /readyz of the pod's own process, on the port it picked (tests/pods/overlay)
READYZ = ('import http.client, sys; c = http.client.HTTPConnection("127.0.0.1", int(open('
          '"/tmp/vmsnap-health-port").read()), timeout=8); c.request("GET", "/readyz"); r = c.getresponse(); '
          'print(r.status); sys.stdout.write(r.read().decode())')


def kustomization(directory: Path, resources: list[Path], components: list[Path] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(r, directory) for r in resources],
        **({"components": [os.path.relpath(c, directory) for c in components]} if components else {})}))
    return directory


def put_secret(cluster: PodCluster, *args: str) -> None:
    """`kubectl create secret …`, or its replacement when it exists (`--dry-run=client -o yaml | kubectl apply`)."""
    manifest = cluster.kubectl("-n", NAMESPACE, "create", "secret", *args, "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=manifest)


def tls_secret(cluster: PodCluster, cert: Path, key: Path, ca: Path) -> None:
    put_secret(cluster, "generic", "vmsnap-temporal-tls", f"--from-file=tls.crt={cert}", f"--from-file=tls.key={key}",
               f"--from-file=ca.crt={ca}")


def temporal_secret(cluster: PodCluster, address: str) -> None:
    put_secret(cluster, "generic", "vmsnap-temporal", f"--from-literal=address={address}",
               "--from-literal=namespace=default")


def with_tls(cluster: PodCluster, selector: str) -> list[dict]:
    """The pods of the component's template (the Secret mounted), not being deleted."""
    return [p for p in cluster.pods(selector) if p["metadata"].get("deletionTimestamp") is None
            and any(v["name"] == "temporal-tls" for v in p["spec"].get("volumes", []))]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def log_messages(cluster: PodCluster, pod: str) -> list[str]:
    """`kubectl logs`: JSON lines (VMSNAP_LOG_FORMAT=json), by their message; other lines as they are."""
    done = cluster.kubectl("-n", NAMESPACE, "logs", pod, check=False)
    messages = []
    for line in done.stdout.splitlines():
        try:
            messages.append(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):
            messages.append(line)
    return messages


def pod_readyz(cluster: PodCluster, pod: str) -> tuple[int, str]:
    status, _, body = cluster.kubectl("-n", NAMESPACE, "exec", pod, "--", "python3", "-S", "-c",
                                      READYZ).stdout.partition("\n")
    return int(status), body


def saying(cluster: PodCluster, selector: str, line: str) -> list[str]:
    """The component's pods whose log has the line."""
    return [p["metadata"]["name"] for p in with_tls(cluster, selector)
            if line in log_messages(cluster, p["metadata"]["name"])]


@pytest.fixture
def plain_afterwards(pod_cluster: PodCluster, temporal_address: str) -> Iterator[None]:
    """The shared deployment back as the other pod tests have it: without the component, on the plain Temporal."""
    yield
    assert pod_cluster.site is not None
    temporal_secret(pod_cluster, temporal_address)
    pod_cluster.kubectl("apply", "-k", str(pod_cluster.site))
    pod_cluster.kubectl("-n", NAMESPACE, "delete", "secret", "vmsnap-temporal-tls", "--ignore-not-found")
    for deployment in ("vmsnap-worker", "vmsnap-bridge"):
        pod_cluster.rollout_status(deployment)


@pytest.mark.timeout(900)
def test_pods_on_mutual_tls_from_a_secret_a_wrong_ca_said_then_fixed_in_place(
        pod_cluster: PodCluster, temporal_mtls_cluster: TemporalCluster, plain_afterwards, pods_api, namespace: str,
        vcsim, tmp_path: Path):
    tls = temporal_mtls_cluster.tls
    assert tls is not None and pod_cluster.site is not None
    cert, key = tls.ca.issue("vmsnap").write(tmp_path, "vmsnap")
    wrong_ca = tmp_path / "not-temporals-ca.crt"
    wrong_ca.write_bytes(CertificateAuthority("not-temporals-ca").cert_pem)

    # the README's steps, with the wrong CA file
    tls_secret(pod_cluster, cert, key, wrong_ca)
    temporal_secret(pod_cluster, temporal_mtls_cluster.address)
    site = kustomization(tmp_path / "site-mtls", [pod_cluster.site], [COMPONENT])
    pod_cluster.kubectl("apply", "-k", str(site))

    line = says.cannot_connect(temporal_mtls_cluster.address, says.server_not_trusted(
        f"{says.SERVER_CA} ({MOUNTED}/ca.crt)"))
    for selector in (WORKERS, BRIDGES):
        eventually(lambda selector=selector: saying(pod_cluster, selector, line), SAID_SECONDS,
                   f"a {selector} pod saying why it cannot connect")
    stuck = {selector: saying(pod_cluster, selector, line) for selector in (WORKERS, BRIDGES)}
    for selector, names in stuck.items():
        for pod in with_tls(pod_cluster, selector):
            name = pod["metadata"]["name"]
            if name not in names:
                continue
            # what `kubectl get pod` shows: running, not ready, never restarted
            assert pod["status"]["phase"] == "Running" and not ready(pod) and restarts(pod) == 0, pod["status"]
            assert pod_readyz(pod_cluster, name) == (503, line)
            messages = log_messages(pod_cluster, name)
            assert messages.count(line) == 1 and not any("Traceback" in m for m in messages), messages
    # the rollout waits: the old pods keep serving
    assert len(pod_cluster.ready_pods(WORKERS)) >= 2 and len(pod_cluster.ready_pods(BRIDGES)) == 2

    # the Secret fixed: the kubelet renews the mounted files, the same processes connect and the rollout completes
    tls_secret(pod_cluster, cert, key, tls.ca_file)
    for deployment in ("vmsnap-worker", "vmsnap-bridge"):
        pod_cluster.rollout_status(deployment, FIXED_SECONDS)
    connected = says.connected(temporal_mtls_cluster.address, "default", mutual_tls=True)
    for selector, names in stuck.items():
        now = {p["metadata"]["name"]: p for p in with_tls(pod_cluster, selector)}
        assert len(now) == (3 if selector == WORKERS else 2) and all(ready(p) for p in now.values())
        for name in names:
            assert restarts(now[name]) == 0 and connected in log_messages(pod_cluster, name), name

    # the guide's snapshot, through those pods and the mutual-TLS cluster
    sim_vm = take_sim_vm(vcsim)
    create_vm(pods_api, vcsim, namespace, "my-vm", sim_vm)
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=GUIDE_SNAPSHOT_WITHOUT_MEMORY)
    eventually(lambda: get_snapshot(pods_api, namespace, "snap-1").is_ready, 300, "snap-1 Ready")
    workflow_id = created_workflow_id(pods_api, namespace, "snap-1")
    assert asyncio.run(result_on(temporal_mtls_cluster, workflow_id, cert, key)) == "Ready"
    # removed while its workflows' Temporal is this one
    pod_cluster.kubectl("-n", namespace, "delete", "vmsnapshot", "snap-1", "--wait=true", "--timeout=120s",
                        timeout=150)


async def result_on(cluster: TemporalCluster, workflow_id: str, cert: Path, key: Path) -> str:
    assert cluster.tls is not None
    client = await Client.connect(cluster.address, namespace="default", tls=TLSConfig(
        server_root_ca_cert=cluster.tls.ca_file.read_bytes(), client_cert=cert.read_bytes(),
        client_private_key=key.read_bytes()))
    return await client.get_workflow_handle(workflow_id).result()
