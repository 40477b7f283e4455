"""A dockerd killed with the machine (or by a test run that was stopped) leaves /var/run/docker.pid behind, and the
next dockerd refuses to start on it: the test bed removes a pid file whose process is not a running dockerd."""

from __future__ import annotations

import os

from testbed.image import remove_stale_pid_file


def test_a_pid_file_naming_no_dockerd_is_removed(tmp_path):
    stale = tmp_path / "docker.pid"
    stale.write_text(str(os.getpid()))  # alive, but this test's Python, not a dockerd
    remove_stale_pid_file(stale)
    assert not stale.exists()

    stale.write_text("999999999")  # no such process
    remove_stale_pid_file(stale)
    assert not stale.exists()

    remove_stale_pid_file(stale)  # none: nothing to do
