"""The test bed's vCenter simulator: build it, start it, and steer it through its control API.

`build()` compiles testbed/go/vcsim (govmomi's simulator plus the snapshot behaviours vcsim lacks; see the
header of testbed/go/vcsim/main.go for what they are and the snapshot file sizes). `VCSim` runs one instance
on free loopback ports. `from_env()` returns the real vCenter named by VSPHERE_URL instead, if set; its
control methods raise `ControlUnavailable`, so tests that need the simulator fail clearly there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from testbed.health import PROBE_SECONDS, Watched
from testbed.process import PartFailed, Process, repo_root

PART = "vcsim"
BUILD_SCRIPT = repo_root() / "testbed" / "go" / "build-vcsim.sh"


def build() -> Path:
    """Build the simulator (or find it in the cache) and return the binary's path."""
    try:
        run = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PartFailed(PART, f"cannot run {BUILD_SCRIPT}: {e}") from e
    if run.returncode != 0:
        m = re.search(r"log: (\S+?)\)", run.stderr)
        if m:  # PartFailed shows the log's last lines
            raise PartFailed(PART, f"{BUILD_SCRIPT.name} failed (exit {run.returncode})", Path(m.group(1)))
        raise PartFailed(PART, f"{BUILD_SCRIPT.name} failed (exit {run.returncode}): {run.stderr.strip()}")
    return Path(run.stdout.strip().splitlines()[-1])


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via an http_proxy


class ControlUnavailable(RuntimeError):
    """The endpoint is a real vCenter: faults, delays and Tools cannot be steered."""


class Control:
    """Client of the simulator's control API (JSON over HTTP; the routes are listed in control.go)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with _direct.open(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace").strip()
            raise RuntimeError(f"[{PART}] control API {method} {path}: HTTP {e.code}: {detail}") from None

    def healthy(self) -> bool:
        return self._call("GET", "/healthz").get("ok") is True

    def vms(self) -> dict[str, str]:
        """VM name -> moref value."""
        return self._call("GET", "/vms")

    def set_tools_running(self, vm: str, running: bool = True) -> None:
        """VMware Tools running or not on vm (name, moref value, or "*" for all VMs)."""
        self._call("POST", "/tools", {"vm": vm, "running": running})

    def inject_fault(self, method: str, vm: str, fault: str, message: str | None = None, count: int = 1) -> None:
        """The next `count` calls of method on vm (0: every call) end as failed tasks with this vSphere fault."""
        body = {"method": method, "vm": vm, "fault": fault, "count": count}
        if message is not None:
            body["message"] = message
        self._call("POST", "/faults", body)

    def delay(self, method: str, vm: str, seconds: float, count: int = 0) -> None:
        """Tasks of method on vm stay running (with rising progress) for `seconds` before doing their work."""
        self._call("POST", "/delays", {"method": method, "vm": vm, "seconds": seconds, "count": count})

    def release(self, method: str, vm: str) -> int:
        """Tasks of method on vm ("*": any VM) held by a delay now start their work at once; how many there were."""
        return self._call("POST", "/release", {"method": method, "vm": vm})["released"]

    def rules(self) -> dict:
        return self._call("GET", "/rules")

    def clear(self) -> None:
        """Drop all injected faults and delays."""
        self._call("DELETE", "/rules")


class NoControl:
    """Stands in for `Control` on a real vCenter."""

    def __init__(self, url: str):
        self._where = url

    def __getattr__(self, name: str):
        raise ControlUnavailable(
            f"[{PART}] {name}() needs the simulator's control API, but VSPHERE_URL points at a real vCenter "
            f"({self._where}); unset VSPHERE_URL to run this test against the simulator")


class Endpoint:
    """A vSphere API endpoint: url (https://user:pass@host:port/sdk) and its parts."""

    control: Control | NoControl

    def __init__(self, url: str):
        self.url = url
        u = urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 443
        self.username = unquote(u.username or "")
        self.password = unquote(u.password or "")

    @property
    def simulated(self) -> bool:
        return isinstance(self.control, Control)

    def stop(self) -> None:
        pass


class RealVCenter(Endpoint):
    def __init__(self, url: str):
        super().__init__(url)
        redacted = url.replace(f":{urlsplit(url).password}@", ":***@") if urlsplit(url).password else url
        self.control = NoControl(redacted)


def from_env() -> RealVCenter | None:
    """The real vCenter named by VSPHERE_URL, if that is set."""
    url = os.environ.get("VSPHERE_URL")
    return RealVCenter(url) if url else None


class VCSim(Endpoint):
    """One running simulator: `VCSim(workdir).start()`; `stop()` sends SIGTERM so it deletes its model files.

    Its log (stdout and stderr) is workdir/vcsim.log; without a workdir a temporary one is used and removed
    again when the simulator stops cleanly. `vms_per_pool` is vcsim's -vm (default 2; two resource pools).
    """

    def __init__(self, workdir: Path | None = None, *, vms_per_pool: int | None = None, tools_running: bool = False,
                 args: list[str] | tuple[str, ...] = (), binary: Path | None = None, timeout: float = 60):
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vmsnap-vcsim-"))
        self.log = self.workdir / "vcsim.log"
        self.args = list(args)
        if vms_per_pool is not None:
            self.args += ["-vm", str(vms_per_pool)]
        if tools_running:
            self.args.append("-tools-running")
        self.binary = binary
        self.timeout = timeout
        self.process: Process | None = None

    @property
    def control_url(self) -> str:
        return self.control.url

    def start(self) -> "VCSim":
        binary = self.binary or build()
        argv = [binary, "-l", "127.0.0.1:0", "-control", "127.0.0.1:0", *self.args]
        self._log_start = self.log.stat().st_size if self.log.exists() else 0  # the log is appended to
        # GOTRACEBACK=all: SIGQUIT dumps every goroutine, not only the running one (dump_goroutines)
        self.process = Process(PART, argv, self.log, env={"GOTRACEBACK": "all"}).start()
        try:
            self.process.wait_ready(self._announced, self.timeout, "announcing its URLs")
            self.process.wait_ready(self.control.healthy, self.timeout, "healthy")
        except BaseException:
            self.process.kill()
            raise
        return self

    def _announced(self) -> bool:
        """True once the binary has printed both endpoint lines (its stdout goes to the log)."""
        with open(self.log, "rb") as f:
            f.seek(self._log_start)
            out = f.read().decode(errors="replace")
        found = dict(re.findall(r"^(VSPHERE_URL|CONTROL_URL)=(\S+)$", out, re.M))
        if len(found) < 2:
            return False
        super().__init__(found["VSPHERE_URL"])
        self.control = Control(found["CONTROL_URL"])
        return True

    def check_alive(self) -> None:
        if self.process is None:
            raise PartFailed(PART, "not started", self.log)
        self.process.check_alive()

    # -- health (testbed/health.py) --

    def watched(self) -> Watched:
        return Watched(processes=lambda: [self.process] if self.process else [], probes=lambda: {PART: self.answers},
                       dump=self.dump_goroutines)

    def answers(self, timeout: float = PROBE_SECONDS) -> bool:
        """A client's round trip through the locks a product call takes (sessions, a ContainerView, the VMs'):
        log in, read every VM's name through a ContainerView, destroy the view, log out. The control API's
        /healthz takes none of them, so it answers even when the vSphere API is deadlocked."""
        from pyVim.connect import Disconnect, SmartConnect
        from pyVmomi import vim, vmodl

        pc = vmodl.query.PropertyCollector
        si = SmartConnect(host=self.host, port=self.port, user=self.username, pwd=self.password,
                          disableSslCertValidation=True, connectionPoolTimeout=int(timeout))
        try:
            content = si.RetrieveContent()
            view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
            try:
                spec = pc.FilterSpec(
                    objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[
                        pc.TraversalSpec(type=vim.view.ContainerView, path="view", skip=False)])],
                    propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])])
                return bool(content.propertyCollector.RetrieveContents([spec]))
            finally:
                view.DestroyView()
        finally:
            Disconnect(si)

    def dump_goroutines(self) -> str:
        """SIGQUIT: Go prints every goroutine's stack and exits. The dump (from the log) is saved as
        goroutines.txt beside the log; the simulator is gone afterwards (it was stuck anyway)."""
        if self.process is None or not self.process.alive():
            return "no goroutine dump: the simulator is not running"
        assert self.process.popen is not None
        start = self.log.stat().st_size if self.log.exists() else 0
        for sig in (signal.SIGQUIT, signal.SIGCONT):  # SIGCONT: a stopped process handles the SIGQUIT too
            self.process.popen.send_signal(sig)
        deadline = time.monotonic() + 10
        while self.process.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.process.kill()
        with open(self.log, "rb") as f:
            f.seek(start)
            dump = f.read()
        path = self.workdir / "goroutines.txt"
        path.write_bytes(dump)
        goroutines = dump.count(b"\ngoroutine ") + dump.startswith(b"goroutine ")
        return f"goroutine dump ({goroutines} goroutines, taken with SIGQUIT): {path}"

    def stop(self) -> None:
        """Stop it; fails (naming the log) if it did not exit cleanly."""
        if self.process is None:
            return
        self.process.stop()
        code = self.process.popen.returncode if self.process.popen else None
        if code != 0:
            raise PartFailed(PART, f"exited with code {code} when stopped", self.log)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "VCSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
