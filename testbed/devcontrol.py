"""The dev command's control socket: `vmsnap-dev status | kill PART | restart PART` in another shell talk to the
running dev command through a Unix socket in its directory (`.dev/control.sock`).

Protocol: the client sends one JSON object on one line ({"command": ..., "part": ..., "wait": ...}); the server
answers with JSON lines, {"line": text} for each thing to print and a last {"done": true, "ok": bool}.
Unix socket paths are limited to ~107 bytes: for a deeper directory the socket lives in a short temporary
directory and `control.sock` is a symbolic link to it (clients resolve it).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

SOCKET_NAME = "control.sock"
_MAX_SOCKET_PATH = 100


class ControlServer:
    def __init__(self, directory: Path, submit: Callable[[dict, Callable[[dict], None]], None]):
        self.link = directory / SOCKET_NAME
        self.submit = submit
        self._own_dir: Path | None = None
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="dev-control", daemon=True)

    def start(self) -> "ControlServer":
        path = self.link
        if len(str(path)) > _MAX_SOCKET_PATH:
            self._own_dir = Path(tempfile.mkdtemp(prefix="vmsnap-dev-"))
            path = self._own_dir / SOCKET_NAME
        self.link.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        os.chmod(path, 0o600)  # only this user steers the stack
        self._sock.listen(8)
        if path != self.link:
            self.link.symlink_to(path)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._answer, args=(conn,), name="dev-control-client", daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            try:
                body = json.loads(stream.readline() or b"{}")
            except ValueError:
                body = {}
            replies: queue.Queue[dict] = queue.Queue()
            self.submit(body if isinstance(body, dict) else {}, replies.put)
            while True:
                message = replies.get()
                try:
                    stream.write(json.dumps(message).encode() + b"\n")
                    stream.flush()
                except OSError:
                    return  # the client went away (Ctrl-C on `vmsnap-dev kill`): nothing more to tell
                if message.get("done"):
                    return

    def stop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        self.link.unlink(missing_ok=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)


class NotRunning(RuntimeError):
    """No dev command answers in that directory."""


def request(directory: Path, body: dict, on_line: Callable[[str], None], timeout: float = 300) -> bool:
    """Send one request to the dev command running in `directory`; print its lines through `on_line`; its
    verdict. NotRunning if nothing answers there."""
    link = directory / SOCKET_NAME
    if not link.exists():
        raise NotRunning(f"no dev stack is running in {directory} (no {SOCKET_NAME}); start one with `make dev`")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.path.realpath(link))
        except (ConnectionRefusedError, FileNotFoundError) as e:
            raise NotRunning(f"no dev stack answers in {directory} ({e.strerror}): it was stopped or killed") from e
        with sock.makefile("rwb") as stream:
            stream.write(json.dumps(body).encode() + b"\n")
            stream.flush()
            for raw in stream:
                message = json.loads(raw)
                if "line" in message:
                    on_line(message["line"])
                if message.get("done"):
                    return bool(message.get("ok"))
        raise NotRunning(f"the dev command in {directory} stopped before it answered")
    finally:
        sock.close()


def running(directory: Path) -> bool:
    """A dev command answers in `directory`."""
    try:
        return request(directory, {"command": "status"}, lambda _: None, timeout=10)
    except (NotRunning, OSError):
        return False
