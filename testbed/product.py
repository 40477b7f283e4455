"""The product itself as real processes against the test bed: workers and bridges a test or a benchmark starts,
watches and can SIGKILL."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from testbed.process import Process, free_port


class Product:
    """The worker(s) and bridge(s) of one test."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.processes: list[Process] = []
        self._count = itertools.count()

    def _start(self, module: str, extra_env: dict[str, str] | None = None, started: str = "running") -> Process:
        """Start it and wait until its log says `started` (by default: running, i.e. connected and set up)."""
        n = next(self._count)
        env = {**self.env, "VMSNAP_HEALTH_PORT": str(free_port()), "VMSNAP_METRICS_PORT": str(free_port()),
               "VMSNAP_TRACE_FILE": str(self.workdir / f"traces-{module.split('.')[0]}-{n}.jsonl"),
               **(extra_env or {})}
        process = Process(f"{module}-{n}", [sys.executable, "-m", module],
                          self.workdir / f"{module.split('.')[0]}-{n}.log", env=env).start()
        process.wait_ready(lambda: started in process.log.read_text(errors="replace"), timeout=60, what=started)
        self.processes.append(process)
        return process

    def start_worker(self, started: str = "running", **env: str) -> Process:
        return self._start("worker.main", env, started)

    def start_bridge(self, started: str = "running", **env: str) -> Process:
        return self._start("bridge.main", env, started)

    def spans(self) -> list[dict]:
        """Every span the product's processes exported (JSON lines written by VMSNAP_TRACE_FILE)."""
        import json
        return [json.loads(line) for f in sorted(self.workdir.glob("traces-*.jsonl"))
                for line in f.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        for p in self.processes:
            p.stop()
