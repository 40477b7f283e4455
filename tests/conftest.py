"""Session-wide test bed: each real part is a pytest plugin module in tests/fixtures/.

`make test` runs two sessions side by side (pytest-xdist, `--dist loadgroup`), each with parts of its own. Tests
that share one machine-wide part run in one session, as a group: the Docker engine and the kubelet (image,
compose and pod tiers), and the four-service Temporal clusters (plain, mutual TLS and API keys: one each per run is
enough; they are the slowest to start). The mutual-TLS cluster's tests join the Docker group: the pod tier connects
to it too (tests/pods/test_temporal_mtls_pods.py), and a second session would start a cluster of its own. The
browser tier's tests on the dev server's UI share one session (and its Chromium); those on the cluster's UI run
with the cluster.
"""

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.workdir",
    "tests.fixtures.health",
    "tests.fixtures.temporal",
    "tests.fixtures.kube",
    "tests.fixtures.vcsim",
    "tests.fixtures.product",
]

# Fixtures that start something slow (the pod tier's image build and deployment took 7.3 min here with two sessions
# running, compose's build and up 3.4 min), each step under a deadline of its own (builds, rollouts, wait_ready).
# pytest-timeout counts only the call of the tests that use them: whichever test happens to set one up stays
# within the same per-test timeout as the others.
SLOW_STARTS = {"pod_cluster", "compose", "image", "temporal_cluster", "temporal_mtls_cluster", "temporal_auth_cluster"}
CLUSTERS = {"temporal_cluster", "temporal_mtls_cluster", "temporal_auth_cluster"}
WITH_DOCKER = {"temporal_mtls_cluster"}  # used by the pod tier too: its tests all in the Docker group's session

HERE = Path(__file__).parent
ON_DOCKER = {HERE / "pods", HERE / "deploy" / "test_image.py", HERE / "deploy" / "test_compose_up.py",
             HERE / "deploy" / "test_compose_production.py"}


BROWSER = HERE / "browser"


def tier_group(item: pytest.Item) -> str | None:
    path = Path(str(item.fspath))
    fixtures = set(getattr(item, "fixturenames", ()))
    if path in ON_DOCKER or ON_DOCKER & set(path.parents) or WITH_DOCKER & fixtures:
        return "docker"
    if CLUSTERS & fixtures:
        return "cluster"
    if BROWSER in path.parents:  # one Chromium per session: the dev server's UI tests share one
        return "browser"
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (group := tier_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if SLOW_STARTS & set(getattr(item, "fixturenames", ())):
            marker = item.get_closest_marker("timeout")
            own = float(marker.args[0]) if marker and marker.args else float(config.getini("timeout"))
            item.add_marker(pytest.mark.timeout(own, func_only=True))


@pytest.hookimpl(tryfirst=True)  # after pytest-xdist put the groups into node IDs, before it reports them
def pytest_collection_finish(session: pytest.Session) -> None:
    """The groups above are what keeps two sessions off one Docker engine and one cluster; pytest-xdist applies them
    by renaming node IDs, which a pytest release can silently defeat (pytest 9.2 did: xdist 3.8's grouping then does
    nothing, and both sessions start dockerd and the compose stack at once). Refuse to run like that."""
    if not session.config.getoption("loadgroup", default=False):
        return
    ungrouped = [item.nodeid for item in session.items if tier_group(item) is not None and "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(f"pytest-xdist's loadgroup is not in effect ({len(ungrouped)} grouped tests keep "
                                f"their node IDs, e.g. {ungrouped[0]}): check the pytest and pytest-xdist pins")
