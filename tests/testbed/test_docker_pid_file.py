"""A dockerd killed with the machine (or by a test run that was stopped) leaves /var/run/docker.pid behind, and the
next dockerd refuses to start on it: the test bed removes a pid file whose process is not a running dockerd."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from testbed.image import engine_state, remove_stale_pid_file


def test_a_pid_file_naming_no_dockerd_is_removed(tmp_path):
    stale = tmp_path / "docker.pid"
    stale.write_text(str(os.getpid()))  # alive, but this test's Python, not a dockerd
    remove_stale_pid_file(stale)
    assert not stale.exists()

    stale.write_text("999999999")  # no such process
    remove_stale_pid_file(stale)
    assert not stale.exists()

    remove_stale_pid_file(stale)  # none: nothing to do


def test_a_pid_file_naming_a_killed_dockerd_not_yet_reaped_is_removed(tmp_path):
    """A dockerd that was killed stays a zombie until its parent reaps it (this machine's PID 1 reaps late): it
    still shows the name dockerd, yet owns nothing, and the next dockerd must be able to start."""
    dockerd = tmp_path / "dockerd"
    shutil.copy("/bin/sleep", dockerd)
    process = subprocess.Popen([str(dockerd), "600"])
    pid_file = tmp_path / "docker.pid"
    pid_file.write_text(str(process.pid))
    try:
        remove_stale_pid_file(pid_file)
        assert pid_file.exists(), "a running dockerd keeps its pid file"
        process.kill()
        wait_until_zombie(process.pid)
        remove_stale_pid_file(pid_file)
        assert not pid_file.exists()
        assert "dockerd" in engine_state(tmp_path) and f"{process.pid} Z" in engine_state(tmp_path)
    finally:
        process.kill()
        process.wait()


def wait_until_zombie(pid: int) -> None:
    for _ in range(100):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"{pid} did not exit after SIGKILL")
