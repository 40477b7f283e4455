"""The pod tier (marker `pods`, `make pods`; part of `make test`): one deployment on real pods for the whole run,
shared by the tests, each on VMs and in a namespace of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from testbed.image import ImageError, build_image, ensure_docker
from tests.fixtures.health import watch
from tests.pods.cluster import PodCluster, deploy, teardown

IMAGE = "vmsnap:test"  # tests/pods/overlay names this tag


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.pods)


@pytest.fixture(scope="session")
def pod_cluster(testbed_dir: Path, temporal_address: str, vcsim,
                request: pytest.FixtureRequest) -> Iterator[PodCluster]:
    started = time.monotonic()
    try:
        docker = ensure_docker()
        image = build_image(IMAGE)
    except ImageError as e:
        pytest.fail(f"cannot build the image: {e}", pytrace=False)
    built = time.monotonic() - started
    cluster = deploy(testbed_dir / "pods", image, docker, temporal_address, vcsim)
    cluster.timings["image build"] = built
    print("\npods: " + ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items()))
    watch(request, cluster.watched())
    yield cluster
    teardown(cluster)


@pytest.fixture(scope="session")
def pods_api(pod_cluster: PodCluster) -> client.ApiClient:
    return config.new_client_from_config(str(pod_cluster.plane.kubeconfig))


@pytest.fixture(scope="session")
def namespace_api(pods_api: client.ApiClient) -> client.ApiClient:
    """The pod tier's tests get their `namespace` (tests/fixtures/kube.py) on the pods' cluster."""
    return pods_api
