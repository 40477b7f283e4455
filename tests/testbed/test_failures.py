"""A broken test bed says which part broke and where its log is, and exits non-zero: never a silent skip."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.process import PartFailed, Process, repo_root
from testbed.temporal import TemporalDevServer


def test_a_port_already_taken_names_the_part(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TemporalDevServer(tmp_path, port=port)
        with pytest.raises(PartFailed) as failed:
            server.start()
    assert failed.value.part == "temporal"
    assert f"port {port} is already taken" in str(failed.value)


def test_a_server_that_dies_names_the_part_and_shows_its_log(tmp_path: Path):
    log = tmp_path / "dying.log"
    process = Process("dying-server", [sys.executable, "-c", "print('cannot open the data dir'); raise SystemExit(3)"],
                      log).start()
    with pytest.raises(PartFailed) as failed:
        process.wait_ready(lambda: False, timeout=30)
    message = str(failed.value)
    assert "[dying-server] exited with code 3" in message
    assert str(log) in message and "cannot open the data dir" in message


@pytest.mark.parametrize("script", ["build-k8s.sh", "build-vcsim.sh"])
def test_a_missing_go_toolchain_is_reported(script: str, tmp_path: Path):
    bin_dir = tmp_path / "bin"  # a PATH with bash and coreutils but no go
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat", "mkdir", "python3", "sha256sum", "cut", "ls", "ln", "tail", "grep",
                 "sed", "awk", "sort", "date", "rm", "mktemp", "tr", "head", "env", "find", "xargs"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    done = subprocess.run(["bash", str(repo_root() / "testbed" / "go" / script)], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/root"),
                               "VMSNAP_CACHE": str(tmp_path / "cache")})
    assert done.returncode != 0
    assert "go" in done.stderr.lower() and ("toolchain" in done.stderr.lower() or "not found" in done.stderr.lower()
                                            or "no go" in done.stderr.lower()), done.stderr
