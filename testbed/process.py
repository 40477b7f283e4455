"""Child processes of the test bed: started with a log file, checked for readiness, stopped cleanly.

Every failure names the part and points at its log, so a broken test bed is never a silent skip.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class PartFailed(RuntimeError):
    """A part of the test bed could not be built, started, or died while in use."""

    def __init__(self, part: str, what: str, log: Path | None = None):
        tail = ""
        if log is not None and log.exists():
            lines = log.read_text(errors="replace").splitlines()[-25:]
            tail = "\n--- last lines of {} ---\n{}".format(log, "\n".join(lines))
        super().__init__(f"[{part}] {what}" + (f" (log: {log})" if log else "") + tail)
        self.part = part
        self.log = log


def _ephemeral_ports() -> range:
    """The kernel's range for ports it hands out itself (bind to port 0, outgoing connections' source ports)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


_handed_out: set[int] = set()
_random = random.SystemRandom()  # independent of any seeding of the random module by tests


def free_port() -> int:
    """A loopback port nobody listens on right now, chosen below the kernel's ephemeral range: a server that picks
    its own ports by binding port 0 (the Temporal dev server does for its internal services) or an outgoing
    connection's source port cannot take it between this choice and the bind of the part it is meant for. Never
    the same port twice in one process, since the part it went to may not have bound it yet."""
    ephemeral = _ephemeral_ports()
    ours = _worker_slice(range(10000, ephemeral.start) if ephemeral.start > 11000 else range(ephemeral.stop, 65536))
    for _ in range(200):
        port = _random.choice(ours)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise PartFailed("ports", f"no free loopback port in {ours.start}-{ours.stop - 1} after 200 tries")


def _worker_slice(ports: range) -> range:
    """Test sessions run side by side (pytest-xdist workers, PYTEST_XDIST_WORKER=gwN) each choose from a slice of
    their own: two processes could otherwise both find one port free and hand it to two parts. Processes a worker
    starts inherit the variable, so they stay in its slice."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 1):
        return ports
    size = len(ports) // int(count)
    start = ports.start + int(worker[2:]) * size
    return range(start, start + size)


def port_is_free(port: int) -> bool:
    """Nobody listens on it (connections of a killed server lingering in TIME_WAIT do not count: servers bind
    with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Process:
    """One long-running child process of the test bed."""

    def __init__(self, part: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.part = part
        self.argv = [str(a) for a in argv]
        self.log = log
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.started_at = 0.0  # time.monotonic() of the last start

    def start(self) -> "Process":
        """Start it (again: a stopped or dead process can be started anew, with the same command, environment
        and log, which it appends to)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        out = open(self.log, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})}, cwd=self.cwd, start_new_session=True)
        except OSError as e:
            raise PartFailed(self.part, f"cannot run {self.argv[0]}: {e}", self.log) from e
        finally:
            out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.popen.returncode if self.popen else None
            raise PartFailed(self.part, f"exited with code {code}", self.log)

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll `probe` until it returns True; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if probe():
                    return
            except Exception:  # noqa: BLE001 - any probe error means "not yet"
                pass
            time.sleep(0.1)
        raise PartFailed(self.part, f"not {what} after {timeout:.0f}s", self.log)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (so servers clean up their temp files), then SIGKILL the group if it lingers."""
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()


def cache_dir() -> Path:
    """Where built binaries are kept between runs (outside the clone)."""
    return Path(os.environ.get("VMSNAP_CACHE", Path.home() / ".cache" / "vmsnap"))


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def built_by(part: str, script: str, *args: str, what: str) -> Path:
    """Run testbed/go/`script`, which builds into the cache (or finds it there), and return the path it prints
    last; a failed build is the part's failure, with the script's stderr."""
    done = subprocess.run(["bash", str(repo_root() / "testbed" / "go" / script), *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise PartFailed(part, f"building {what} failed:\n{done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])
