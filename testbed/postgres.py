"""A private PostgreSQL on loopback (Debian's `postgresql` package), for the Temporal cluster's stores.

initdb refuses to run as root, so as root the server runs as the `postgres` user (setpriv execs, so the recorded
PID is the server's own) in a data directory of its own under /tmp: the test bed's directories are private to
their owner. Unix sockets are off; the one way in is TCP on 127.0.0.1 with a password.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from testbed.process import PartFailed, Process, free_port

PART = "postgres"
USER = PASSWORD = "temporal"


def postgres_bin() -> Path:
    """Debian's newest installed server (/usr/lib/postgresql/<major>/bin), or initdb's directory on PATH."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PartFailed(PART, "no PostgreSQL server installed (apt-get install postgresql)")


class PrivatePostgres:
    """One server on a free loopback port; `USER`/`PASSWORD` is its superuser."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.log = workdir / "postgres.log"
        self.process: Process | None = None
        self.home: Path | None = None  # the directory the server owns (data, password file)

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        user = pwd.getpwnam("postgres")
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]

    def start(self) -> "PrivatePostgres":
        bins = postgres_bin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home = Path(tempfile.mkdtemp(prefix="vmsnap-pg-"))
        (self.workdir / "data-dir").write_text(f"{self.home}\n")  # where to look after a failed run
        pwfile = self.home / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.home, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        with open(self.log, "ab") as out:
            done = subprocess.run(
                [*self._as_owner(), bins / "initdb", "-D", self.home / "data", "-U", USER, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=reject", "-E", "UTF8", "--locale=C"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise PartFailed(PART, f"initdb failed with code {done.returncode}", self.log)
        # four Temporal services each hold pools to both stores
        self.process = Process(PART, [*self._as_owner(), bins / "postgres", "-D", self.home / "data",
                                      "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                                      "-c", "unix_socket_directories=", "-c", "max_connections=300"],
                               self.log).start()
        self.process.wait_ready(self._listening, timeout=60, what="accepting connections")
        return self

    def _listening(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def check_alive(self) -> None:
        if self.process:
            self.process.check_alive()

    def stop(self) -> None:
        """Stop the server and remove its data (the log stays in the work directory)."""
        if self.process and self.process.alive():
            assert self.process.popen is not None
            self.process.popen.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM waits for every client
            try:
                self.process.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.home:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None
