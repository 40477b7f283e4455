"""Waiting on vCenter tasks by polling only `info.state/progress/error/result`, so the wait works for tasks
whose entity is a snapshot, and so a retried activity can re-attach to a task it started before."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyVmomi import vim, vmodl

from activities.vsphere.properties import retrieve
from api.messages import REVERT_CROSSES_CSI_VOLUME_SNAPSHOT

TASK_PATHS = ["info.state", "info.progress", "info.error", "info.result", "info.descriptionId"]

# vSphere descriptionIds of the tasks that change a VM's snapshot tree
SNAPSHOT_TASKS = frozenset({
    "VirtualMachine.createSnapshot", "VirtualMachine.createSnapshotEx", "VirtualMachine.revertToSnapshot",
    "vm.Snapshot.revert", "vm.Snapshot.remove", "VirtualMachine.removeSnapshot",
})


class TaskFailed(Exception):
    """The vCenter task ended in error; `fault` is vSphere's fault and `message` its text."""

    def __init__(self, fault: vmodl.MethodFault):
        self.fault = fault
        self.message = fault_message(fault)
        super().__init__(self.message)


# vSphere's message keys on a failed revert (reference §3.8): the error itself, and the marker saying a
# CSI VolumeSnapshot (an FCD snapshot) lies between the VM's current state and the target
REVERT_ERROR_KEY = "msg.snapshot.vigor.revert.error"
REVERT_CROSSES_FCD_SNAPSHOT_KEY = "msg.snapshot.vigor.revert.errorFcd"


def fault_message(fault: vmodl.MethodFault) -> str:
    messages = {m.key: m.message for m in getattr(fault, "faultMessage", None) or [] if m.message}
    if REVERT_ERROR_KEY in messages:
        # the revert's own words, plus what to do when a CSI VolumeSnapshot is in the way (the guide's advice)
        text = messages[REVERT_ERROR_KEY]
        if any(m.key == REVERT_CROSSES_FCD_SNAPSHOT_KEY for m in fault.faultMessage):
            text += REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
        return text
    parts = [getattr(fault, "msg", None) or ""] + list(messages.values())
    text = " ".join(p for p in parts if p).strip()
    return text or type(fault).__name__.split(".")[-1]


def wait_for_task(si: vim.ServiceInstance, task: vim.Task, on_progress: Callable[[int], None],
                  poll_seconds: float = 0.5) -> Any:
    """Block until the task ends, calling `on_progress(percent)` on every poll (the activity heartbeats
    there, which is also where a cancel reaches it). Returns the task's result; raises TaskFailed."""
    while True:
        info = retrieve(si, task, TASK_PATHS)
        state = info.get("info.state")
        if state == vim.TaskInfo.State.success:
            return info.get("info.result")
        if state == vim.TaskInfo.State.error:
            raise TaskFailed(info["info.error"])
        on_progress(int(info.get("info.progress") or 0))
        time.sleep(poll_seconds)


def running_snapshot_tasks(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> list[vim.Task]:
    """Snapshot tasks still running on the VM: ours from an attempt that died before recording its task,
    or someone else's in vCenter. vSphere refuses a second snapshot task on a VM, so we wait them out."""
    running = []
    for task in retrieve(si, vm, ["recentTask"]).get("recentTask", []):
        try:
            info = retrieve(si, task, ["info.state", "info.descriptionId"])
        except vmodl.fault.ManagedObjectNotFound:
            continue
        if info.get("info.state") in (vim.TaskInfo.State.running, vim.TaskInfo.State.queued) and \
                info.get("info.descriptionId") in SNAPSHOT_TASKS:
            running.append(task)
    return running
