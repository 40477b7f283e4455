"""The dev command's supervisor: every part of the stack runs as a process of its own and is started again when
it dies, after a back-off, as a Deployment's pod would be; a user can kill or restart one part on purpose.

The supervisor is a loop owned by one thread (the dev command's main thread): `tick()` handles the requests
queued by `submit()` (from the control socket's threads), notices parts that exited, starts those whose back-off
is over and tells when a started part is ready again. Every event is printed by the dev command and sent to the
control clients waiting on that part. A part that must not be restarted (`restart=False`) ends the loop with
`PartFailed` when it dies.

Back-off: the first restart comes `first` seconds after the exit, each further one twice as late, at most
`maximum`; a part that ran `reset_after` seconds before it exited starts again from `first`. (Kubernetes uses
10 s, 5 min and 10 min; the dev stack is for watching restarts, so its defaults are 1 s, 30 s and 60 s.)
"""

from __future__ import annotations

import json
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testbed.process import PartFailed, Process

# the states of a part
STARTING = "starting"   # started, not ready yet
RUNNING = "running"     # ready
BACKOFF = "back-off"    # exited; starts again at next_start
STOPPING = "stopping"   # asked to restart: SIGTERM sent, starts again as soon as it has exited

STOP_GRACE_SECONDS = 20.0  # a restart's SIGTERM, then SIGKILL (the dev worker drains for 5 s)


def exit_description(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Backoff:
    first: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0


Sink = Callable[[dict], None]  # receives {"line": text} messages, then one {"done": True, "ok": bool}


@dataclass(eq=False)
class Part:
    """One supervised process. `ready` tells when a (re)started part serves again (default: it is alive);
    `restart=False` parts end the stack when they die, for the reason `why_not_restarted`."""

    name: str
    process: Process
    restart: bool = True
    ready: Callable[[Part], bool] | None = None
    why_not_restarted: str = ""
    stop_grace: float = STOP_GRACE_SECONDS  # a restart's SIGTERM, then SIGKILL
    state: str = RUNNING
    restarts: int = 0
    next_start: float = 0.0
    delay: float = 0.0           # the back-off used for the last restart (0: none yet)
    stop_deadline: float = 0.0
    log_offset: int = 0          # where the log of the current run starts
    cause: str = ""              # why it is about to exit, when we made it exit
    waiters: list[Sink] = field(default_factory=list)
    history: list[int] = field(default_factory=list)  # every pid it ran as

    def log_since_start(self) -> str:
        """What the current run has written to the log so far."""
        try:
            with open(self.process.log, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def is_ready(self) -> bool:
        if self.ready is None:
            return True
        try:
            return bool(self.ready(self))
        except Exception:  # noqa: BLE001 - any probe error means "not yet"
            return False

    def describe(self) -> str:
        pid = self.process.pid if self.process.popen is not None else "-"
        return f"{self.name} (pid {pid})"


def log_says(text: str) -> Callable[[Part], bool]:
    """A readiness probe: the current run has written `text` to its log."""
    return lambda part: text in part.log_since_start()


def probe(check: Callable[[], bool]) -> Callable[[Part], bool]:
    return lambda part: check()


@dataclass
class _Request:
    body: dict
    sink: Sink


class Supervisor:
    def __init__(self, parts: list[Part], *, backoff: Backoff | None = None,
                 announce: Callable[[str], None] = print, state_file: Path | None = None):
        self.parts = {p.name: p for p in parts}
        self.backoff = backoff or Backoff()
        self.announce = announce
        self.state_file = state_file
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._last_state: str | None = None
        for part in parts:
            if part.process.popen is not None:
                part.history.append(part.process.pid)

    # --- called from any thread --------------------------------------------------------------------------------

    def submit(self, body: dict, sink: Sink) -> None:
        """Queue a control request ({"command": "status" | "kill" | "restart", "part": name, "wait": bool});
        its answer goes to `sink`, ending with {"done": True, "ok": ...}."""
        self._requests.put(_Request(body, sink))

    # --- called from the loop's thread -------------------------------------------------------------------------

    def run(self, stopping, tick: float = 0.2) -> None:
        """Supervise until `stopping` (a threading.Event) is set; PartFailed if a part that is not restarted
        dies."""
        try:
            while not stopping.is_set():
                self.tick()
                stopping.wait(tick)
        finally:
            self.abandon_waiters("the dev command is stopping")

    def tick(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            self._handle(request)
        now = time.monotonic()
        for part in self.parts.values():
            self._step(part, now)
        self._write_state()

    def abandon_waiters(self, why: str) -> None:
        for part in self.parts.values():
            for sink in part.waiters:
                _send(sink, {"line": why})
                _send(sink, {"done": True, "ok": False})
            part.waiters.clear()

    def _step(self, part: Part, now: float) -> None:
        if part.state in (STARTING, RUNNING) and not part.process.alive():
            self._exited(part, now)
        elif part.state == STARTING and part.is_ready():
            part.state = RUNNING
            self._event(part, f"{part.name} is up again (pid {part.process.pid}, restart {part.restarts})",
                        done=True)
        elif part.state == STOPPING:
            if not part.process.alive():
                code = part.process.popen.returncode if part.process.popen else None
                self._event(part, f"{part.name} {exit_description(code)}; starting it again")
                self._start(part)
            elif now >= part.stop_deadline:
                self._event(part, f"{part.name} still running {part.stop_grace:g}s after SIGTERM: SIGKILL")
                part.process.kill()
        if part.state == BACKOFF and now >= part.next_start:
            self._start(part)

    def _exited(self, part: Part, now: float) -> None:
        code = part.process.popen.returncode if part.process.popen else None
        what = f"{part.name} (pid {part.process.pid}) {exit_description(code)}{part.cause}"
        part.cause = ""
        if not part.restart:
            self.abandon_waiters(f"{what}: the dev command stops")
            raise PartFailed(part.name, f"{what}; {part.why_not_restarted}", part.process.log)
        ran = now - part.process.started_at
        if part.delay == 0 or ran >= self.backoff.reset_after:
            part.delay = self.backoff.first
        else:
            part.delay = min(part.delay * 2, self.backoff.maximum)
        part.state = BACKOFF
        part.next_start = now + part.delay
        self._event(part, f"{what} after {ran:.0f}s; restarting it in {part.delay:g}s (back-off), "
                          f"log: {part.process.log}")

    def _start(self, part: Part) -> None:
        part.log_offset = part.process.log.stat().st_size if part.process.log.exists() else 0
        part.cause = ""
        part.process.start()
        part.history.append(part.process.pid)
        part.restarts += 1
        part.state = STARTING
        self._event(part, f"{part.name} started again (pid {part.process.pid}), waiting until it is ready")

    def _event(self, part: Part, line: str, done: bool = False) -> None:
        self.announce(f"{time.strftime('%H:%M:%S')} {line}")
        for sink in part.waiters:
            _send(sink, {"line": line})
            if done:
                _send(sink, {"done": True, "ok": True})
        if done:
            part.waiters.clear()

    # --- control requests --------------------------------------------------------------------------------------

    def _handle(self, request: _Request) -> None:
        body, sink = request.body, request.sink
        command = body.get("command")
        if command == "status":
            _send(sink, {"line": self.status_table()})
            _send(sink, {"done": True, "ok": True})
            return
        if command not in ("kill", "restart"):
            return _refuse(sink, f"unknown command {command!r} (status, kill, restart)")
        part = self.parts.get(body.get("part", ""))
        if part is None:
            return _refuse(sink, f"no part {body.get('part')!r}; parts: {', '.join(self.parts)}")
        if not part.restart:
            return _refuse(sink, f"{part.name} is not restarted by the dev command: {part.why_not_restarted}")
        if command == "kill":
            self._kill(part, sink, bool(body.get("wait", True)))
        else:
            self._restart(part, sink)

    def _kill(self, part: Part, sink: Sink, wait: bool) -> None:
        if part.state not in (STARTING, RUNNING) or not part.process.alive():
            return _refuse(sink, f"{part.name} is not running ({self._state_text(part)})")
        pid = part.process.pid
        part.cause = " (vmsnap-dev kill)"
        part.process.kill()  # SIGKILL to its process group, as a crash or an OOM kill would
        _send(sink, {"line": f"killed {part.name} (pid {pid}) with SIGKILL"})
        if wait:
            part.waiters.append(sink)
        else:
            _send(sink, {"line": "the dev command restarts it after its back-off (vmsnap-dev status)"})
            _send(sink, {"done": True, "ok": True})
        self._step(part, time.monotonic())  # announce the exit now, to this client too

    def _restart(self, part: Part, sink: Sink) -> None:
        part.waiters.append(sink)
        now = time.monotonic()
        if part.state == BACKOFF:
            self._event(part, f"{part.name}: restart asked during its back-off, starting it now")
            self._start(part)
        elif part.state == STOPPING:
            _send(sink, {"line": f"{part.name} is already restarting"})
        else:
            part.cause = " (vmsnap-dev restart)"
            part.process.popen.send_signal(signal.SIGTERM)
            part.state = STOPPING
            part.stop_deadline = now + part.stop_grace
            self._event(part, f"stopping {part.name} (pid {part.process.pid}) with SIGTERM")

    # --- status ------------------------------------------------------------------------------------------------

    def _state_text(self, part: Part) -> str:
        if part.state == BACKOFF:
            return f"{BACKOFF}, starts in {max(0.0, part.next_start - time.monotonic()):.0f}s"
        return part.state

    def status(self) -> dict:
        return {"pid": os.getpid(), "parts": [
            {"name": p.name, "pid": p.process.pid if p.process.popen is not None else None,
             "alive": p.process.alive(), "state": self._state_text(p), "restarts": p.restarts,
             "restarted_by_dev_command": p.restart, "pids": p.history, "log": str(p.process.log),
             "argv": p.process.argv}
            for p in self.parts.values()]}

    def status_table(self) -> str:
        rows = [("PART", "PID", "STATE", "RESTARTS", "LOG")]
        for p in self.status()["parts"]:
            rows.append((p["name"], str(p["pid"] or "-"), p["state"] if p["alive"] or p["state"] != RUNNING
                         else "exited", str(p["restarts"]) if p["restarted_by_dev_command"] else "never",
                         p["log"]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)

    def _write_state(self) -> None:
        """parts.json next to the env file: every part's pid (and every pid it ran as), for scripts and for
        cleaning up after a dev command that was SIGKILLed."""
        if self.state_file is None:
            return
        state = self.status()
        for p in state["parts"]:
            p.pop("state")  # changes every second during a back-off; the file is rewritten only on real changes
        text = json.dumps(state, indent=1)
        if text == self._last_state:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.state_file)
        self._last_state = text


def _send(sink: Sink, message: dict) -> None:
    try:
        sink(message)
    except Exception:  # noqa: BLE001 - a client that went away must not stop the supervisor
        pass


def _refuse(sink: Sink, why: str) -> None:
    _send(sink, {"line": why})
    _send(sink, {"done": True, "ok": False})


def leftovers(state_file: Path) -> list[int]:
    """Process groups of a dev command that died without stopping its parts (SIGKILL, a crash): the pids in its
    parts.json that still run the command recorded there, so a reused pid is never mistaken for a part."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return []
    found = []
    for part in state.get("parts", []):
        pid = part.get("pid")
        if not pid:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if [a.decode(errors="replace") for a in cmdline] == part.get("argv"):
            found.append(pid)
    return found


def kill_leftovers(state_file: Path, timeout: float = 10.0) -> list[int]:
    """SIGKILL the process groups `leftovers` finds (each part leads its own group) and wait until they are gone
    (so their ports are free again); their pids."""
    pids = leftovers(state_file)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody has reaped yet holds no ports)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
