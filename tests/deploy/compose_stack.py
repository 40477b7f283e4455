"""docker compose brought up on this machine, for tests/deploy/test_compose_up.py (docker-compose.yml) and
tests/deploy/test_compose_production.py (with docker-compose.production.yml): the plugin, the build contexts and
bases of tests/deploy/compose_here/, one stack at a time per machine, and the guide's YAML applied against it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

from api import VirtualMachine, VirtualMachineSnapshot
from testbed.image import (
    MMDEBSTRAP_POSTGRES,
    POSTGRES_BASE_REPO,
    ImageError,
    build_wheelhouse,
    ensure_base,
    ensure_docker,
)
from testbed.process import cache_dir
from testbed.temporal import temporal_cli
from tests.admission.kube_objects import KUBECTL
from tests.deploy.manifests import REPO
from tests.guide_examples import GUIDE_SNAPSHOTS, GUIDE_VM_REVERT

HERE = Path(__file__).parent / "compose_here"
GO = REPO / "testbed" / "go"
DEV_FILES = (REPO / "docker-compose.yml", HERE / "compose.here.yml")
PRODUCTION_FILES = (*DEV_FILES, REPO / "docker-compose.production.yml", HERE / "production.here.yml")
BUILD_TIMEOUT_S = 1800  # hang guards for a loaded machine, not performance assertions
UP_TIMEOUT_S = 600
READY_TIMEOUT_S = 300
BUILD_STAGE_LABEL = "io.vmsnap.stage=build"  # the Dockerfile's build stage
HERE_LABEL = "io.vmsnap.compose-here=1"  # compose.here.yml's images


def built(script: str) -> Path:
    """A test bed binary's directory (or the binary, for build-compose.sh), built by its script if missing
    (cached in ~/.cache/vmsnap)."""
    done = subprocess.run(["bash", str(GO / script)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{script} failed:\n{done.stderr[-4000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])


def context(directory: Path, dockerfile: Path, files: list[Path]) -> Path:
    """A build context: the Dockerfile and the given binaries (hard links where possible)."""
    directory.mkdir(parents=True)
    shutil.copy(dockerfile, directory / "Dockerfile")
    for f in files:
        try:
            os.link(f, directory / f.name)
        except OSError:
            shutil.copy(f, directory / f.name)
    return directory


class Compose:
    """`docker compose -p PROJECT -f FILE …` with the plugin this run built."""

    def __init__(self, docker: str, env: dict[str, str], project: str, files: tuple[Path, ...]) -> None:
        self.docker = docker
        self.env = env
        self.project = project
        self.argv = [docker, "compose", "--project-name", project, "--project-directory", str(REPO),
                     *(a for f in files for a in ("--file", str(f)))]
        self.netns: str | None = None

    def run(self, *args: str, timeout: float = 300, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run([*self.argv, *args], capture_output=True, text=True, env=self.env,
                                  timeout=timeout, input=input, cwd=REPO)
        except subprocess.TimeoutExpired:
            self.fail(f"docker compose {' '.join(args)}: no end in {timeout:.0f} s")
        if check and done.returncode != 0:
            self.fail(f"docker compose {' '.join(args)} failed (exit {done.returncode}):\n"
                      f"{(done.stdout + done.stderr)[-6000:]}")
        return done

    def logs(self) -> str:
        done = subprocess.run([*self.argv, "logs", "--no-color", "--timestamps", "--tail", "150"],
                              capture_output=True, text=True, env=self.env, timeout=120)
        return done.stdout + done.stderr

    def fail(self, what: str) -> NoReturn:
        pytest.fail(f"{what}\n--- docker compose logs ---\n{self.logs()}", pytrace=False)

    def containers(self) -> list[dict]:
        done = self.run("ps", "--all", "--format", "json")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def pid(self, service: str) -> int:
        container = self.run("ps", "--quiet", service).stdout.strip()
        done = subprocess.run([self.docker, "inspect", "--format", "{{.State.Pid}}", container],
                              capture_output=True, text=True)
        if done.returncode != 0 or not container:
            self.fail(f"no running container for {service}: {done.stderr}")
        return int(done.stdout)

    def pids(self) -> dict[str, int]:
        """Each running service's main process (one `docker inspect` for all)."""
        running = {c["ID"]: c["Service"] for c in self.containers() if c["State"] == "running"}
        done = subprocess.run([self.docker, "inspect", "--format", "{{.Id}} {{.State.Pid}}", *running],
                              capture_output=True, text=True)
        if done.returncode != 0:
            self.fail(f"docker inspect of the running containers failed: {done.stderr}")
        pids = dict(line.split() for line in done.stdout.splitlines())
        return {service: int(next(pid for full, pid in pids.items() if full.startswith(short)))
                for short, service in running.items()}

    def down(self) -> None:
        self.netns = None
        self.run("down", "--volumes", "--remove-orphans", "--timeout", "60", timeout=300)

    def in_stack(self, argv: list[str], input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """A host command run in the stack's network namespace (compose.here.yml's `loopback`), where every
        service listens on 127.0.0.1 at its ports of the compose file."""
        if self.netns is None:
            self.netns = f"/proc/{self.pid('loopback')}/ns/net"
        return subprocess.run(["nsenter", f"--net={self.netns}", *argv], capture_output=True, text=True, input=input,
                              timeout=timeout)


def here_environment(tmp: Path) -> tuple[str, dict[str, str]]:
    """The Docker client and the environment the override files read: the plugin, the local bases, the build
    contexts of the test bed's binaries."""
    try:
        docker = ensure_docker()
        base = ensure_base(docker)
        postgres_base = ensure_base(docker, MMDEBSTRAP_POSTGRES, POSTGRES_BASE_REPO)
        build_wheelhouse()
    except ImageError as e:
        pytest.fail(f"no Docker engine or base image: {e}", pytrace=False)
    plugin = built("build-compose.sh")
    k8s = built("build-k8s.sh")
    vcsim = built("build-vcsim.sh")
    # `docker compose` finds the plugin where Docker looks for CLI plugins: $DOCKER_CONFIG/cli-plugins
    (tmp / "docker-config" / "cli-plugins").mkdir(parents=True)
    (tmp / "docker-config" / "cli-plugins" / "docker-compose").symlink_to(plugin)
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(tmp / "docker-config"),
        # no buildx here (and BuildKit's Dockerfile front end would be pulled): the engine's classic builder
        "DOCKER_BUILDKIT": "0",
        "VMSNAP_HERE_BASE": base,
        "VMSNAP_HERE_K8S": str(context(tmp / "k8s", GO / "Dockerfile.k8s", [
            k8s / "etcd", k8s / "kube-apiserver", k8s / "kube-controller-manager"])),
        "VMSNAP_HERE_VCSIM": str(context(tmp / "vcsim", GO / "vcsim" / "Dockerfile", [vcsim])),
        "VMSNAP_HERE_TEMPORAL": str(context(tmp / "temporal", HERE / "Dockerfile.temporal",
                                            [Path(temporal_cli())])),
    }
    # docker-compose.production.yml's
    server = built("build-temporal.sh")
    env |= {
        "VMSNAP_HERE_POSTGRES_BASE": postgres_base,
        "VMSNAP_HERE_TEMPORAL_SERVER": str(context(tmp / "temporal-server", GO / "Dockerfile.temporal-server", [
            server / "temporal-server", server / "temporal-sql-tool", Path(temporal_cli())])),
        "VMSNAP_HERE_UI_SERVER": str(context(tmp / "ui-server", GO / "Dockerfile.ui-server",
                                             [built("build-ui-server.sh")])),
    }
    return docker, env


@contextmanager
def machine_lock() -> Iterator[None]:
    """One compose build or stack at a time per machine (the project names and image tags are fixed)."""
    with open(cache_dir() / "compose-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_images(tmp: Path) -> tuple[str, dict[str, str]]:
    """Every image of both stacks (docker-compose.yml's and the production file's, with this machine's
    overrides), built once for both test files; the Docker client and the environment their compose runs read."""
    docker, env = here_environment(tmp)
    with machine_lock():
        started = time.monotonic()
        Compose(docker, env, "vmsnap-compose-build", PRODUCTION_FILES).run("build", timeout=BUILD_TIMEOUT_S)
        print(f"\ncompose build (both stacks' images): {time.monotonic() - started:.1f} s")
        remove_superseded_build_stages(docker)
    return docker, env


@contextmanager
def brought_up(stack: Compose) -> Iterator[Compose]:
    """The stack up from the images built (every service healthy or done), then down with its volumes. The project
    names are fixed, so that a killed run's leftovers are removed here."""
    with machine_lock():
        try:
            stack.down()
            started = time.monotonic()
            stack.run("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), timeout=UP_TIMEOUT_S + 60)
            print(f"\ncompose up to healthy: {time.monotonic() - started:.1f} s")
            yield stack
        finally:
            stack.down()


def remove_superseded_build_stages(docker: str) -> None:
    """The classic builder keeps the product's `build` stage as an untagged image (its cache for the next build):
    the newest stays, those of earlier builds (472 MB each) go, as do images of compose.here.yml a newer build
    untagged. One in use by a running build is left alone."""
    done = subprocess.run([docker, "images", "--quiet", "--no-trunc", "--filter", "dangling=true",
                           "--filter", f"label={BUILD_STAGE_LABEL}"], capture_output=True, text=True)
    for superseded in done.stdout.split()[1:]:  # newest first
        subprocess.run([docker, "rmi", superseded], capture_output=True)
    # and this file's images that a newer build untagged
    subprocess.run([docker, "image", "prune", "--force", "--filter", f"label={HERE_LABEL}"], capture_output=True)


def kubectl_in_stack(compose: Compose, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """kubectl with the stack's admin kubeconfig (as deploy/README.md fetches it), run inside the stack's network
    namespace, where the apiserver listens on 127.0.0.1:6443."""
    kubeconfig = tmp_path / "compose.kubeconfig"
    kubeconfig.write_text(compose.run("exec", "-T", "worker", "cat", "/pki/host.kubeconfig").stdout)

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        done = compose.in_stack([str(KUBECTL), "--kubeconfig", str(kubeconfig), *args], input=input)
        if done.returncode != 0:
            compose.fail(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done
    return kubectl


def wait_for(compose: Compose, check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            compose.fail(f"{what} not reached in {READY_TIMEOUT_S} s")
        time.sleep(1)


def guide_snapshots_ready_and_revert(compose: Compose, kubectl: Callable[..., subprocess.CompletedProcess]
                                     ) -> dict[str, VirtualMachineSnapshot]:
    """The guide's three snapshots of `my-vm` Ready, then its revert to snap-1 done; the snapshots as they were
    once Ready."""
    started = time.monotonic()
    # the guide's VM is `my-vm`: a VirtualMachine for one of the simulator's VMs that setup imported
    imported = json.loads(kubectl("-n", "default", "get", "vm", "-o", "json").stdout)["items"]
    assert imported, "setup imported no VM"
    source = sorted(imported, key=lambda vm: vm["metadata"]["name"])[0]
    kubectl("-n", "default", "create", "-f", "-", input=json.dumps({
        "apiVersion": source["apiVersion"], "kind": source["kind"], "metadata": {"name": "my-vm"},
        "spec": source["spec"]}))
    kubectl("-n", "default", "patch", "vm", "my-vm", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": source["status"]}))

    kubectl("-n", "default", "apply", "-f", "-", input=GUIDE_SNAPSHOTS)

    def snapshot(name: str) -> VirtualMachineSnapshot:
        return VirtualMachineSnapshot.model_validate(json.loads(
            kubectl("-n", "default", "get", "virtualmachinesnapshot", name, "-o", "json").stdout))
    for name in ("snap-1", "snap-2", "snap-3"):
        wait_for(compose, lambda name=name: snapshot(name).is_ready, f"{name} Ready")
    print(f"\nthe guide's three snapshots Ready in {time.monotonic() - started:.1f} s")
    ready = {name: snapshot(name) for name in ("snap-1", "snap-2", "snap-3")}

    kubectl("-n", "default", "apply", "-f", "-", input=GUIDE_VM_REVERT)

    def reverted() -> bool:
        vm = VirtualMachine.model_validate(json.loads(kubectl("-n", "default", "get", "vm", "my-vm", "-o",
                                                              "json").stdout))
        current = vm.status.current_snapshot
        return vm.spec.current_snapshot_name is None and current is not None and current.name == "snap-1"
    wait_for(compose, reverted, "reverted to snap-1")
    return ready


def down_leaves_nothing(compose: Compose) -> None:
    """`down -v` removes every container and volume of the stack, and no process of it is left."""
    running = compose.pids()
    volumes = compose.run("volumes", "--quiet").stdout.split()
    assert volumes, "the stack has its pki volume"
    started = time.monotonic()
    compose.down()
    print(f"\ncompose down: {time.monotonic() - started:.1f} s")
    assert compose.containers() == []
    left = subprocess.run([compose.docker, "volume", "ls", "--quiet", "--filter",
                           f"label=com.docker.compose.project={compose.project}"], capture_output=True, text=True)
    assert left.stdout.split() == [], f"volumes left: {left.stdout}"
    alive = {service: pid for service, pid in running.items() if Path(f"/proc/{pid}").exists()}
    assert not alive, f"processes of the stack still running: {alive}"
