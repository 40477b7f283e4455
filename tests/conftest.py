"""Session-wide test bed: each real part is a pytest plugin module in tests/fixtures/.

`make test` runs two sessions side by side (pytest-xdist, `--dist loadgroup`), each with parts of its own. Tests
that share one machine-wide part run in one session, as a group: the Docker engine and the kubelet (image,
compose and pod tiers), and the four-service Temporal cluster (one per run is enough; it is the slowest to start).
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

HERE = Path(__file__).parent
ON_DOCKER = {HERE / "pods", HERE / "deploy" / "test_image.py", HERE / "deploy" / "test_compose_up.py"}


def tier_group(item: pytest.Item) -> str | None:
    path = Path(str(item.fspath))
    if path in ON_DOCKER or ON_DOCKER & set(path.parents):
        return "docker"
    if "temporal_cluster" in getattr(item, "fixturenames", ()):
        return "cluster"
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (group := tier_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
