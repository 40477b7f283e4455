"""The dev command's supervisor and control socket, on real processes (small Python programs): a part that dies
is started again after a growing back-off, `kill` and `restart` through the socket, a part that is not restarted
ends the stack, and leftovers of a dead dev command are found by their command line only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testbed.devcontrol import ControlServer, NotRunning, request
from testbed.process import PartFailed, Process
from testbed.supervisor import RUNNING, Backoff, Part, Supervisor, kill_leftovers, leftovers, log_says

SERVE = "import time; print('running', flush=True); time.sleep(600)"
SERVE_SLOWLY = "import time; time.sleep(0.5); print('running', flush=True); time.sleep(600)"
CRASH = "import sys; print('crashing', flush=True); sys.exit(3)"


def started(tmp_path: Path, name: str, code: str) -> Process:
    return Process(name, [sys.executable, "-c", code], tmp_path / f"{name}.log").start()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout:.0f}s")


class Running:
    """A supervisor looping in a thread, with its control socket, as the dev command runs them."""

    def __init__(self, tmp_path: Path, parts: list[Part], backoff: Backoff | None = None):
        self.lines: list[str] = []
        self.dir = tmp_path
        self.supervisor = Supervisor(parts, backoff=backoff or Backoff(first=0.2, maximum=0.8, reset_after=30),
                                     announce=self.lines.append, state_file=tmp_path / "parts.json")
        self.stopping = threading.Event()
        self.failure: BaseException | None = None
        self.server = ControlServer(tmp_path, self.supervisor.submit).start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.supervisor.run(self.stopping, tick=0.05)
        except BaseException as e:  # noqa: BLE001 - the test looks at it
            self.failure = e

    def ask(self, **body) -> tuple[bool, list[str]]:
        said: list[str] = []
        ok = request(self.dir, body, said.append, timeout=30)
        return ok, said

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.server.stop()
        for part in self.supervisor.parts.values():
            part.process.stop(timeout=5)


@pytest.fixture
def supervised(tmp_path: Path):
    running: list[Running] = []

    def start(parts: list[Part], backoff: Backoff | None = None) -> Running:
        running.append(Running(tmp_path, parts, backoff))
        return running[-1]

    yield start
    for r in running:
        r.stop()


def test_a_killed_part_is_started_again_and_kill_waits_until_it_is_up(tmp_path, supervised):
    worker = Part("worker", started(tmp_path, "worker", SERVE_SLOWLY), ready=log_says("running"))
    run = supervised([worker])
    first = worker.process.pid

    ok, said = run.ask(command="kill", part="worker", wait=True)

    assert ok, said
    assert said[0] == f"killed worker (pid {first}) with SIGKILL"
    assert any("was killed by SIGKILL (vmsnap-dev kill)" in line and "restarting it in 0.2s" in line
               for line in said), said
    assert said[-1].startswith("worker is up again (pid ")
    assert worker.process.pid != first and not alive(first) and alive(worker.process.pid)
    assert worker.state == RUNNING and worker.restarts == 1
    assert "running" in worker.log_since_start()  # the readiness of the new run, not the old one's line
    assert any("was killed by SIGKILL" in line for line in run.lines)  # the dev command's own output


def test_back_off_doubles_while_a_part_keeps_crashing_and_stops_at_the_maximum(tmp_path, supervised):
    crasher = Part("bridge", started(tmp_path, "bridge", CRASH), ready=log_says("running"))
    run = supervised([crasher], Backoff(first=0.1, maximum=0.4, reset_after=30))

    until(lambda: crasher.restarts >= 4, what="four restarts")
    delays = [line.split("restarting it in ")[1].split("s")[0] for line in list(run.lines) if "restarting" in line]
    assert delays[:4] == ["0.1", "0.2", "0.4", "0.4"]
    assert any("exited with code 3" in line for line in run.lines)


def test_back_off_starts_over_after_a_part_ran_long_enough(tmp_path, supervised):
    worker = Part("worker", started(tmp_path, "worker", SERVE), ready=log_says("running"))
    run = supervised([worker], Backoff(first=0.1, maximum=5, reset_after=1.0))
    for _ in range(2):  # quick deaths: 0.1 s, then 0.2 s
        pid = worker.process.pid
        run.ask(command="kill", part="worker", wait=True)
        assert worker.process.pid != pid
    time.sleep(1.2)  # then it runs longer than reset_after
    ok, said = run.ask(command="kill", part="worker", wait=True)
    assert ok
    delays = [line.split("restarting it in ")[1].split("s")[0] for line in run.lines if "restarting" in line]
    assert delays == ["0.1", "0.2", "0.1"]


def test_restart_stops_with_sigterm_and_starts_at_once(tmp_path, supervised):
    temporal = Part("temporal", started(tmp_path, "temporal", SERVE), ready=log_says("running"))
    run = supervised([temporal])
    first = temporal.process.pid

    ok, said = run.ask(command="restart", part="temporal")

    assert ok, said
    assert said[0] == f"stopping temporal (pid {first}) with SIGTERM"
    assert "temporal was killed by SIGTERM; starting it again" in said  # python's default SIGTERM action
    assert said[-1].startswith("temporal is up again")
    assert not any("back-off" in line for line in said)
    assert not alive(first) and temporal.restarts == 1


def test_status_and_refusals(tmp_path, supervised):
    vcsim = Part("vcsim", started(tmp_path, "vcsim", SERVE), restart=False, why_not_restarted="state in memory")
    worker = Part("worker", started(tmp_path, "worker", SERVE), ready=log_says("running"))
    run = supervised([vcsim, worker])

    ok, said = run.ask(command="status")
    assert ok
    table = said[0].splitlines()
    assert table[0].split()[:4] == ["PART", "PID", "STATE", "RESTARTS"]
    assert table[1].split()[:4] == ["vcsim", str(vcsim.process.pid), "running", "never"]
    assert table[2].split()[:4] == ["worker", str(worker.process.pid), "running", "0"]

    assert run.ask(command="kill", part="vcsim") == (
        False, ["vcsim is not restarted by the dev command: state in memory"])
    ok, said = run.ask(command="kill", part="nope")
    assert not ok and said == ["no part 'nope'; parts: vcsim, worker"]
    assert alive(vcsim.process.pid)


def test_a_part_that_is_not_restarted_ends_the_supervision(tmp_path, supervised):
    vcsim = Part("vcsim", started(tmp_path, "vcsim", SERVE), restart=False, why_not_restarted="state in memory")
    run = supervised([vcsim])
    os.killpg(vcsim.process.pid, signal.SIGKILL)
    until(lambda: not run.thread.is_alive(), what="the loop ends")
    assert isinstance(run.failure, PartFailed)
    assert "was killed by SIGKILL; state in memory" in str(run.failure)


def test_no_dev_command_is_a_clear_error(tmp_path):
    with pytest.raises(NotRunning, match="no dev stack is running"):
        request(tmp_path, {"command": "status"}, print)
    (tmp_path / "control.sock").touch()  # left by a dev command that was SIGKILLed
    with pytest.raises(NotRunning, match="no dev stack answers"):
        request(tmp_path, {"command": "status"}, print)


def test_a_deep_directory_gets_its_socket_through_a_link(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    worker = Part("worker", started(tmp_path, "worker", SERVE))
    run = Running(deep, [worker])
    try:
        assert (deep / "control.sock").is_symlink()
        assert run.ask(command="status")[0]
    finally:
        run.stop()
    assert not (deep / "control.sock").exists()


def test_leftovers_are_the_recorded_commands_still_running(tmp_path, supervised):
    worker = Part("worker", started(tmp_path, "worker", SERVE))
    bridge = Part("bridge", started(tmp_path, "bridge", SERVE))
    run = supervised([worker, bridge])
    until(lambda: (tmp_path / "parts.json").exists(), what="parts.json")
    # an unrelated process that took a recorded pid would run another command: never touched
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        state = json.loads((tmp_path / "parts.json").read_text())
        next(p for p in state["parts"] if p["name"] == "bridge")["pid"] = other.pid
        (tmp_path / "parts.json").write_text(json.dumps(state))
        run.stopping.set()
        run.thread.join(10)  # the supervisor is gone, its parts are not: what a SIGKILLed dev command leaves

        assert leftovers(tmp_path / "parts.json") == [worker.process.pid]
        assert kill_leftovers(tmp_path / "parts.json") == [worker.process.pid]
        until(lambda: not alive(worker.process.pid), what="the leftover gone")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
