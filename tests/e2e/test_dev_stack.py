"""`make dev` as a user drives it: `vmsnap-dev` starts the whole stack; `source .dev/env` in a new shell gives the
project's own kubectl and temporal (not the older ones the machine has); the simulator holds a quiesced snapshot's
task while `vmsnap-dev kill worker` kills the worker; the dev command starts it again, the snapshot goes Ready and
vCenter holds exactly one snapshot of that name; Ctrl-C then stops every part, leaving no process behind.

The stack is the dev command's own (its own Temporal, apiserver and simulator on free ports, `--free-ports` for
the product's endpoints), so it never clashes with the session's test bed."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from kubernetes import config
from temporalio.client import Client

from testbed.supervisor import kill_leftovers
from testbed.temporal_views import activity_attempts
from testbed.vcsim import Control, Endpoint
from testbed.vms import eventually, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import created_workflow_id
from tests.e2e.test_durability import wait_for_running_task

BIN = Path(sysconfig.get_path("scripts"))  # the venv's bin: vmsnap-dev, kubectl, temporal
HOLD = "30s"  # longer than kill + restart; the retried activity re-attaches to the task after the heartbeat timeout
SNAPSHOT = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata: {name: held}
spec: {vmName: dc0-h0-vm0, memory: true, quiesce: {timeout: 10m}}
"""


class DevCommand:
    """`vmsnap-dev --dir DIR` as a subprocess, and new shells that `source DIR/env`."""

    def __init__(self, tmp_path: Path, *args: str):
        self.args = list(args)  # more of vmsnap-dev's options
        self.dir = tmp_path / "dev"
        self.output = tmp_path / "vmsnap-dev.out"
        self.decoys = tmp_path / "machine-bin"  # what the machine has on PATH already: an older kubectl, a temporal
        self.decoys.mkdir()
        for tool in ("kubectl", "temporal"):
            (self.decoys / tool).write_text(f"#!/bin/sh\necho \"the machine's own {tool}\" >&2; exit 3\n")
            (self.decoys / tool).chmod(0o755)
        self.popen: subprocess.Popen | None = None
        self.pids: set[int] = set()

    def start(self) -> None:
        with open(self.output, "wb") as out:
            self.popen = subprocess.Popen(
                [str(BIN / "vmsnap-dev"), "--dir", str(self.dir), "--free-ports", "--vms", "1", *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_up(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while "vmsnap dev stack is up" not in self.text():
            assert self.popen.poll() is None, f"vmsnap-dev exited with {self.popen.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"vmsnap-dev not up after {timeout:.0f}s:\n{self.text()}"
            time.sleep(0.5)

    def shell(self, script: str, stdin: str | None = None) -> str:
        """A new bash that sources the env file first, with the machine's PATH (decoys first) and nothing else."""
        env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{self.decoys}:/usr/local/bin:/usr/bin:/bin"}
        done = subprocess.run(["bash", "-c", f"source {shlex.quote(str(self.dir / 'env'))}\n{script}"],
                              input=stdin, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, f"{script!r} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def env(self) -> dict[str, str]:
        words = (shlex.split(line) for line in (self.dir / "env").read_text().splitlines() if line.strip())
        return dict(w[1].split("=", 1) for w in words if len(w) == 2 and w[0] == "export")

    def parts(self) -> dict[str, dict]:
        state = json.loads((self.dir / "parts.json").read_text())
        for part in state["parts"]:
            self.pids.update(part["pids"])
        return {p["name"]: p for p in state["parts"]}

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C; SIGKILL and every leftover part if it does not stop in time (then fail)."""
        self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            kill_leftovers(self.dir / "parts.json")
            raise AssertionError(f"vmsnap-dev did not stop within {timeout:.0f}s of Ctrl-C:\n{self.text()}")


def running_in_groups(groups: set[int]) -> list[str]:
    """Processes (not zombies) whose process group is one of `groups` (every part leads its own group)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp in groups and state != "Z":
            found.append(stat.parent.name)
    return found


async def _when_the_task_runs(address: str, workflow_id: str, then) -> None:
    client = await Client.connect(address)
    await asyncio.wait_for(wait_for_running_task(client, workflow_id), timeout=120)
    then()


async def _attempts(address: str, workflow_id: str) -> list[int]:
    client = await Client.connect(address)
    return await activity_attempts(client, workflow_id, "vsphere_create_snapshot")


@pytest.mark.timeout(1200)
def test_a_user_kills_the_worker_of_the_dev_stack_mid_snapshot(tmp_path):
    dev = DevCommand(tmp_path)
    dev.start()
    try:
        dev.wait_up()

        # a new shell: the env file puts the project's kubectl and temporal (and vmsnap-dev) first on PATH
        assert dev.shell("command -v kubectl temporal vmsnap-dev").split() == [
            str(BIN / "kubectl"), str(BIN / "temporal"), str(BIN / "vmsnap-dev")]
        assert "virtualmachine.vmoperator.vmware.com/dc0-h0-vm0" in dev.shell("kubectl get vm -o name").split()

        # the README's three lines: hold the next snapshot task, apply a quiesced snapshot, kill the worker
        held = dev.shell(f"vmsnap-dev vcsim hold {HOLD} --vm dc0-h0-vm0")
        assert "holds the next CreateSnapshotEx_Task on DC0_H0_VM0" in held
        dev.shell("kubectl apply -f -", stdin=SNAPSHOT)
        env = dev.env()
        kube_api = config.new_client_from_config(env["KUBECONFIG"])
        workflow_id = eventually(lambda: created_workflow_id(kube_api, "default", "held"))
        before = dev.parts()["worker"]["pid"]
        killed: list[str] = []
        asyncio.run(_when_the_task_runs(  # the vCenter task is running (and held) when the kill comes
            env["TEMPORAL_ADDRESS"], workflow_id, lambda: killed.append(dev.shell("vmsnap-dev kill worker"))))

        said = killed[0].splitlines()
        assert said[0] == f"killed worker (pid {before}) with SIGKILL"
        assert said[-1].startswith("worker is up again (pid ")
        after = dev.parts()["worker"]
        assert after["pid"] != before and after["restarts"] == 1 and after["alive"]
        assert f"worker (pid {before}) was killed by SIGKILL (vmsnap-dev kill)" in dev.text()  # its own output
        assert f"worker started again (pid {after['pid']})" in dev.text()

        dev.shell("kubectl wait vmsnapshot/held --for=condition=VirtualMachineSnapshotReady --timeout=300s")
        assert max(asyncio.run(_attempts(env["TEMPORAL_ADDRESS"], workflow_id))) >= 2, \
            "the create activity was retried: the kill hit the running task"
        vcenter = Endpoint(env["VSPHERE_URL"])
        vcenter.control = Control(env["VCSIM_CONTROL_URL"])
        assert vsphere_snapshot_names(vcenter, "DC0_H0_VM0") == ["held"], "exactly one snapshot of that name"
        # Ready is written before the create's last steps (the CSI handshake, the queue's release): the workflow
        # completes a moment later, and the list shows it once visibility has it
        def listed_completed() -> bool:
            listed = dev.shell("temporal workflow list --query \"VirtualMachine = 'dc0-h0-vm0'\"")
            return any(workflow_id in line and "Completed" in line for line in listed.splitlines())
        eventually(listed_completed, 60, "the create listed as Completed by the dev stack's temporal CLI")
        status = dev.shell("vmsnap-dev status").splitlines()
        assert next(line for line in status if line.startswith("worker ")).split()[1:4] == [
            str(after["pid"]), "running", "1"]

        # Ctrl-C: every part stops, nothing is left running
        dev.parts()
        assert dev.interrupt() == 0, dev.text()
        assert dev.text().rstrip().endswith("vmsnap-dev: stopped")
        assert running_in_groups(dev.pids) == [], "parts left running after Ctrl-C"
        assert not (dev.dir / "control.sock").exists()
    finally:
        if dev.popen is not None and dev.popen.poll() is None:  # the test failed: stop it all the same
            dev.interrupt()
