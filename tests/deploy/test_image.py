"""The product image, built and run here: from the Dockerfile, on a base made locally (no registry is reachable),
with the locked dependencies from the wheelhouse (testbed/image.py). Both processes run from it as the Deployments
run them (uid 10001, read-only root filesystem) against the test bed's Temporal, Kubernetes and vCenter.
No Docker engine is a failure with the reason, never a skip (.ci/run installs docker.io and mmdebstrap)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testbed.image import ImageError, build_image, docker_cli, image_size
from testbed.process import free_port

TAG = "vmsnap:test"
# On the local Debian base (95 MB: Python 3.11 on Debian's Essential packages) the image is 283 MB: 188 MB of
# dependencies, pyc included (temporalio 58 MB, kubernetes 58 MB without its unused asyncio copy, grpc 19 MB,
# cryptography 16 MB, …). The issue aims at 250 MB; this bound catches growth.
SIZE_LIMIT_MB = 300
READY_WITHIN_S = 60


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    try:
        ref = build_image(TAG)
    except ImageError as e:
        pytest.fail(f"cannot build the image: {e}", pytrace=False)
    print(f"\nimage {ref} built (wheelhouse + docker build) in {time.monotonic() - started:.1f} s")
    return ref


@pytest.fixture
def docker() -> str:
    return docker_cli()


@pytest.fixture
def containers(docker: str) -> Iterator[list[str]]:
    """Names of the containers a test starts; removed at the end, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run([docker, "rm", "--force", name], capture_output=True)


@pytest.fixture
def readable_kubeconfig(kubeconfig: Path) -> Iterator[Path]:
    """The test bed's kubeconfig and its certificate files, in a directory uid 10001 can read, with the paths
    they have in the container (/kube: files, as a pod mounts them; embedded data would need a writable /tmp)."""
    config = yaml.safe_load(kubeconfig.read_text())
    directory = Path(tempfile.mkdtemp(prefix="vmsnap-image-kube-"))
    directory.chmod(0o755)
    for entry, key, fields in (("clusters", "cluster", ("certificate-authority",)),
                               ("users", "user", ("client-certificate", "client-key"))):
        for n, item in enumerate(config[entry]):
            for field in fields:
                if field in item[key]:
                    copy = directory / f"{entry}-{n}-{field}"
                    shutil.copyfile(item[key][field], copy)
                    item[key][field] = f"/kube/{copy.name}"
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    for f in directory.iterdir():
        f.chmod(0o644)
    yield path
    shutil.rmtree(directory)


def run_container(docker: str, image: str, containers: list[str], env: dict[str, str], *command: str,
                  mounts: tuple[str, ...] = ()) -> str:
    """As the Deployments run it: uid 10001, read-only root filesystem, an empty /tmp."""
    name = f"vmsnap-test-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    argv = [docker, "run", "--detach", "--name", name, "--network", "host", "--user", "10001",
            "--read-only", "--tmpfs", "/tmp", *(a for m in mounts for a in ("--volume", m)),
            *(a for k, v in env.items() for a in ("--env", f"{k}={v}")), image, *command]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return name


def wait_ready(docker: str, name: str, port: int, started: float) -> float:
    """Seconds from `docker run` to /readyz answering 200; fails with the container's log otherwise."""
    deadline = started + READY_WITHIN_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        state = subprocess.run([docker, "inspect", "--format", "{{.State.Running}}", name],
                               capture_output=True, text=True).stdout.strip()
        if state != "true":
            break
        time.sleep(0.1)
    logs = subprocess.run([docker, "logs", name], capture_output=True, text=True)
    pytest.fail(f"{name} not ready within {READY_WITHIN_S} s:\n{logs.stdout}{logs.stderr}")


def product_env(temporal_address: str, vcsim, namespace: str) -> dict[str, str]:
    return {"TEMPORAL_ADDRESS": temporal_address, "VSPHERE_URL": vcsim.url, "VSPHERE_INSECURE": "true",
            "KUBECONFIG": "/kube/kubeconfig", "VMSNAP_WATCH_NAMESPACE": namespace,
            "VMSNAP_TASK_QUEUE": f"vmsnap-image-{uuid.uuid4().hex[:8]}",
            "VMSNAP_HEALTH_PORT": str(free_port()), "VMSNAP_METRICS_PORT": str(free_port())}


def test_the_image_is_built_from_a_local_base_and_its_size_is_bounded(image, docker):
    size_mb = image_size(docker, image) / 1e6
    print(f"\nimage size: {size_mb:.0f} MB")
    assert size_mb < SIZE_LIMIT_MB


@pytest.mark.parametrize("command", ["vmsnap-worker", "vmsnap-bridge"])
def test_each_process_gets_ready_as_uid_10001_on_a_read_only_root(
        command, image, docker, containers, readable_kubeconfig, kube_api, temporal_address, vcsim, namespace):
    env = product_env(temporal_address, vcsim, namespace)
    started = time.monotonic()
    name = run_container(docker, image, containers, env, command,
                         mounts=(f"{readable_kubeconfig.parent}:/kube:ro",))
    seconds = wait_ready(docker, name, int(env["VMSNAP_HEALTH_PORT"]), started)
    print(f"\n{command}: docker run to /readyz OK in {seconds:.2f} s")
    user = subprocess.run([docker, "exec", name, "id", "-u"], capture_output=True, text=True).stdout.strip()
    assert user == "10001"


def test_the_image_holds_the_product_only(image, docker, containers):
    name = run_container(docker, image, containers, {}, "sleep", "600")

    def in_image(*argv: str, user: str = "10001") -> subprocess.CompletedProcess:
        return subprocess.run([docker, "exec", "--user", user, name, *argv], capture_output=True, text=True)

    imports = in_image("python3", "-c", "import api, runtime, workflows, activities, worker.main, bridge.main")
    assert imports.returncode == 0, imports.stderr
    for package in ("testbed", "tests", "bench"):
        done = in_image("python3", "-c", f"import {package}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, f"{package} is in the image"
    go_files = in_image("find", "/", "-xdev", "-name", "*.go", "-o", "-name", "go.mod", user="0")
    assert go_files.returncode == 0 and go_files.stdout == "", go_files.stdout[:2000]
    for command in ("vmsnap-worker", "vmsnap-bridge"):
        assert in_image("sh", "-c", f"command -v {command}").returncode == 0
    assert in_image("sh", "-c", "command -v vmsnap-dev").returncode != 0, "the dev command is in the image"
    assert in_image("ls", "/opt/vmsnap/bin/pip").returncode != 0, "pip stays in the build stage"
