"""Waiting on vCenter tasks through PropertyCollector updates on `info.state/progress/error/result` only (no
task.info reads), so the wait works for tasks whose entity is a snapshot, and so a retried activity can
re-attach to a task it started before; and finding the snapshot tasks running on a VM."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from pyVmomi import vim, vmodl

from activities.vsphere.properties import retrieve, service_content
from api.messages import REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
from runtime.vsphere import fault_message

log = logging.getLogger("vmsnap.vsphere.tasks")

PC = vmodl.query.PropertyCollector

# what a wait reads of a task first, and what its collector watches
TASK_PATHS = ["info.state", "info.progress", "info.error", "info.result"]
END_PATHS = ["info.state", "info.error", "info.result"]

# WaitForUpdatesEx returns after this long without a change, and the activity heartbeats (timeout 30 s): a
# cancel reaches a wait within this time
WAIT_SECONDS = 2

# vSphere descriptionIds of the tasks that change a VM's snapshot tree
SNAPSHOT_TASKS = frozenset({
    "VirtualMachine.createSnapshot", "VirtualMachine.createSnapshotEx", "VirtualMachine.revertToSnapshot",
    "vm.Snapshot.revert", "vm.Snapshot.remove", "VirtualMachine.removeSnapshot",
})


class TaskFailed(Exception):
    """The vCenter task ended in error; `fault` is vSphere's fault and `message` its text."""

    def __init__(self, fault: vmodl.MethodFault):
        self.fault = fault
        self.message = failure_message(fault)
        super().__init__(self.message)


# vSphere's message keys on a failed revert (reference §3.8): the error itself, and the marker saying a
# CSI VolumeSnapshot (an FCD snapshot) lies between the VM's current state and the target
REVERT_ERROR_KEY = "msg.snapshot.vigor.revert.error"
REVERT_CROSSES_FCD_SNAPSHOT_KEY = "msg.snapshot.vigor.revert.errorFcd"


def failure_message(fault: vmodl.MethodFault) -> str:
    """What a failed task's fault tells the user: vSphere's words, except for a failed revert, whose own words come
    with what to do when a CSI VolumeSnapshot is in the way (the guide's advice)."""
    revert_errors = [m.message for m in fault.faultMessage or [] if m.key == REVERT_ERROR_KEY and m.message]
    if not revert_errors:
        return fault_message(fault)
    if any(m.key == REVERT_CROSSES_FCD_SNAPSHOT_KEY for m in fault.faultMessage):
        return revert_errors[-1] + REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
    return revert_errors[-1]


def wait_for_task(si: vim.ServiceInstance, task: vim.Task, on_progress: Callable[[int], None],
                  max_wait_seconds: int = WAIT_SECONDS) -> Any:
    """Block until the task ends, calling `on_progress(percent)` when it is found running and then every
    `max_wait_seconds` (the activity heartbeats there, which is also where a cancel reaches it). Returns the
    task's result; raises TaskFailed, vmodl.fault.ManagedObjectNotFound when vCenter no longer knows the task,
    and vCenter's fault when the session has ended (vim.fault.NotAuthenticated: the session wrapper logs in
    again and retries).

    One read first: a task that is already over (the simulator's quick tasks, a re-attached task) costs one
    round trip. Otherwise vCenter reports the task's end through a PropertyCollector of this wait's own
    (WaitForUpdatesEx, as pyVim's WaitForTask and govmomi's task.Wait do), so the end is seen as it happens,
    not at the next poll. The collector is private because the worker's threads share one session: waits on
    the session's default collector would take each other's updates. Its filter leaves out info.progress,
    which may change many times a second (the simulator's delayed tasks: every 100 ms) and would cost a
    round trip each; progress is read when a wait has been quiet for `max_wait_seconds`."""
    info = retrieve(si, task, TASK_PATHS)
    if not _finished(info):
        on_progress(int(info.get("info.progress") or 0))
        info = _wait_for_end(si, task, max_wait_seconds, lambda: on_progress(
            int(retrieve(si, task, ["info.progress"]).get("info.progress") or 0)))
    if info.get("info.state") == vim.TaskInfo.State.error:
        raise TaskFailed(info["info.error"])
    return info.get("info.result")


def _finished(info: dict[str, Any]) -> bool:
    return info.get("info.state") in (vim.TaskInfo.State.success, vim.TaskInfo.State.error)


def _wait_for_end(si: vim.ServiceInstance, task: vim.Task, max_wait_seconds: int,
                  on_quiet: Callable[[], None]) -> dict[str, Any]:
    """The task's END_PATHS once it has ended, from a private collector's updates (always destroyed);
    `on_quiet()` after every `max_wait_seconds` without a change."""
    collector = service_content(si).propertyCollector.CreatePropertyCollector()
    try:
        collector.CreateFilter(PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=task, skip=False)],
            propSet=[PC.PropertySpec(type=vim.Task, pathSet=END_PATHS, all=False)]), partialUpdates=True)
        options = PC.WaitOptions(maxWaitSeconds=max_wait_seconds)
        info: dict[str, Any] = {}
        version = ""
        while True:
            update = collector.WaitForUpdatesEx(version, options)
            if update is None:
                on_quiet()
                continue
            _apply(task, info, update, first=not version)
            version = update.version
            if _finished(info):
                return info
    finally:
        try:
            collector.DestroyPropertyCollector()
        except Exception as e:  # noqa: BLE001 - the session may be gone; what the wait raised matters more
            log.debug("could not destroy the property collector of a wait on %s: %s", task._moId, e)


def _apply(task: vim.Task, info: dict[str, Any], update: PC.UpdateSet, first: bool) -> None:
    """Fold one UpdateSet of the task's filter into `info` (property path -> value)."""
    seen = False
    for object_update in (o for fs in update.filterSet or [] for o in fs.objectSet or []):
        seen = True
        if object_update.kind == PC.ObjectUpdate.Kind.leave:
            raise vmodl.fault.ManagedObjectNotFound(obj=task, msg=f"{task._moId} no longer exists")
        for missing in object_update.missingSet or []:
            raise missing.fault  # object gone, session ended, no permission: the caller must see it
        for change in object_update.changeSet or []:
            if change.op in ("remove", "indirectRemove"):
                info.pop(change.name, None)
            else:
                info[change.name] = change.val
    if first and not seen:
        # the first update describes every object of the filter; an absent task is one vCenter forgot
        raise vmodl.fault.ManagedObjectNotFound(obj=task, msg=f"{task._moId} not found")


class TaskEnd(NamedTuple):
    """How a task we waited for came to an end: an earlier attempt's re-attached task, one we cancelled."""

    succeeded: bool = False  # it ended in success: its work is done (a cancel came too late)
    result: Any = None       # its result (a create's: the snapshot)


def cancel_task(si: vim.ServiceInstance, task: vim.Task) -> TaskEnd:
    """Ask vCenter to cancel the task and wait until it has ended, however it ends: cancelled, failed, or done
    before the cancel reached it (then the caller must know: what it did stands). A task that can no longer be
    cancelled is simply waited for; one vCenter no longer knows counts as not done."""
    try:
        task.CancelTask()
    except (vim.fault.InvalidState, vmodl.fault.NotSupported) as e:  # over already, or past its cancelable part
        log.info("task %s not cancelled (%s): waiting for its end", task._moId, type(e).__name__)
    except vmodl.fault.ManagedObjectNotFound:
        return TaskEnd()
    try:
        return TaskEnd(True, wait_for_task(si, task, lambda _percent: None))
    except (TaskFailed, vmodl.fault.ManagedObjectNotFound):
        return TaskEnd()


def running_snapshot_tasks(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> list[vim.Task]:
    """Snapshot tasks still running on the VM: ours from an attempt that died before recording its task,
    or someone else's in vCenter. vSphere refuses a second snapshot task on a VM, so we wait them out.

    One round trip: the VM's recentTask is traversed on the server, and each task's state and kind read;
    tasks vCenter has forgotten meanwhile are left out. Raises vmodl.fault.ManagedObjectNotFound when the
    VM does not exist."""
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vm, skip=True, selectSet=[
            PC.TraversalSpec(name="recentTask", type=vim.ManagedEntity, path="recentTask", skip=False)])],
        propSet=[PC.PropertySpec(type=vim.Task, pathSet=["info.state", "info.descriptionId"], all=False)])
    running: list[vim.Task] = []
    for content in service_content(si).propertyCollector.RetrieveContents([spec]) or []:
        faults = [m.fault for m in content.missingSet or []]
        if any(isinstance(f, vmodl.fault.ManagedObjectNotFound) for f in faults):
            continue  # ended and forgotten between the traversal and the read
        if faults:
            raise faults[0]
        info = {p.name: p.val for p in content.propSet or []}
        if isinstance(content.obj, vim.Task) and \
                info.get("info.state") in (vim.TaskInfo.State.running, vim.TaskInfo.State.queued) and \
                info.get("info.descriptionId") in SNAPSHOT_TASKS:
            running.append(content.obj)
    return running
