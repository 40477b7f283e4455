"""Is a part of the test bed still serving? Every long-running part (simulator, apiserver, Temporal, kubelet, ...)
describes itself as a `Watched`: the processes that must stay alive and the probes that must answer. `check()` says
which part is dead or stuck, within a deadline whatever the part does, so that a wait on a broken part ends in a
failure that names it (tests/fixtures/health.py runs the checks around every test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from testbed.process import PartFailed, Process

PROBE_SECONDS = 10.0  # a health probe that takes longer than this is a part that does not answer


@dataclass
class Watched:
    """What tells that one part (it may be several processes) is serving."""

    processes: Callable[[], Iterable[Process]]  # every one must be alive
    probes: Callable[[], dict[str, Callable[[], bool]]] = dict  # part name -> answers (True) within PROBE_SECONDS
    # a stuck part's extra evidence (the simulator's goroutines), taken once; returns what to say about it
    dump: Callable[[], str] | None = None


@dataclass(frozen=True)
class Problem:
    part: str
    what: str
    log: Path | None
    stuck: bool  # alive but not answering (a dead process is not stuck)

    @property
    def headline(self) -> str:
        return f"[{self.part}] {self.what}"

    def describe(self) -> str:
        """The headline, the log's path and its last lines, as every other failure of the test bed says it."""
        return str(PartFailed(self.part, self.what, self.log))


def answers(probe: Callable[[], bool], timeout: float = PROBE_SECONDS) -> bool:
    """Run probe with a deadline of its own (a probe stuck in a read cannot hold the caller): True if it returned
    True in time. The probe's thread is left behind if it hangs; it is a daemon and holds nothing of ours."""
    result: list[bool] = []

    def run() -> None:
        try:
            result.append(bool(probe()))
        except Exception:  # noqa: BLE001 - any error means "does not answer"
            result.append(False)

    thread = threading.Thread(target=run, name="health-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def check(watched: Watched, skip: Iterable[str] = (), timeout: float = PROBE_SECONDS) -> Problem | None:
    """The first part that is dead or does not answer, or None. Parts named in `skip` are not looked at."""
    skip = set(skip)
    logs = log_paths(watched)
    for process in watched.processes():
        if process.part in skip or process.alive():
            continue
        code = process.popen.returncode if process.popen else None
        return Problem(process.part, f"exited with code {code}", process.log, stuck=False)
    for part, probe in watched.probes().items():
        if part not in skip and not answers(probe, timeout):
            return Problem(part, f"alive but did not answer its health probe within {timeout:.0f} s", logs.get(part),
                           stuck=True)
    return None


def log_paths(watched: Watched) -> dict[str, Path]:
    """Part name -> log file, for every process of `watched`."""
    return {p.part: p.log for p in watched.processes()}
