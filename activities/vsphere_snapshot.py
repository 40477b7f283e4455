"""Activities against vCenter (pyvmomi) for a VM's snapshots. Blocking calls run in the worker's thread pool
(these are sync activities); every wait heartbeats, and the running task's reference is the heartbeat
detail, so a retried attempt re-attaches to the task instead of starting a second one."""

from __future__ import annotations

import time
from collections.abc import Callable

from pyVmomi import vim, vmodl
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.vsphere import properties
from activities.vsphere.snapshots import (
    find_own_snapshot,
    read_tree,
    read_tree_and_used_bytes,
    read_used_bytes,
    snapshot_owner,
)
from activities.vsphere.tasks import TaskEnd, TaskFailed, cancel_task, running_snapshot_tasks, wait_for_task
from api import messages
from api.errors import ErrorType
from api.names import SNAPSHOT_OWNER_EXTRA_CONFIG_KEY, VM_RESOURCE_YAML_EXTRA_CONFIG_KEY
from contract.payloads import (
    CreatedSnapshot,
    RevertedSnapshot,
    SnapshotExtraConfig,
    SnapshotLocation,
    SnapshotLookup,
    SnapshotNode,
    SnapshotTree,
    VSphereSnapshotRequest,
)
from runtime.telemetry import tracer
from runtime.vsphere import VSphereSession, fault_name

# The vSphere methods are called by their API names (ReconfigVM_Task, CreateSnapshotEx_Task...: vSphere's reference,
# the privileges' table, the workflows' summaries); pyVmomi's stubs know them by their other names only (Reconfigure,
# CreateSnapshotEx...), so what they return is annotated where they are called.


class _StopWaiting(Exception):
    """The activity was cancelled: leave the task wait at a safe point (between two vCenter calls)."""


def _heartbeat_progress(task: vim.Task, step: str) -> Callable[[int], None]:
    def beat(percent: int) -> None:
        activity.heartbeat({"task": task._moId, "step": step, "progress": percent})
        if activity.is_cancelled():
            raise _StopWaiting
    return beat


def _cancel_requested() -> bool:
    """The workflow asked for the cancel (a deadline, a delete): not a worker shutting down, whose tasks go on
    in vCenter for the retry on another worker to re-attach to."""
    details = activity.cancellation_details()
    return details is not None and details.cancel_requested


def _wait_for_own_task(si: vim.ServiceInstance, task: vim.Task, step: str, cancel_task_on_cancel: bool) -> object:
    """Wait for a task (one this activity started or re-attached to, or another's it must wait out). The SDK's
    cancel exception is held back while a vCenter call is in flight, so it never lands inside one; it is taken
    between calls (at a heartbeat). A cancel the workflow asked for with `cancel_task_on_cancel` cancels the
    vCenter task and waits for its end first, so what the workflow does next (undo, report) sees vCenter
    settled."""
    finished = None
    try:
        with activity.shield_thread_cancel_exception():  # the pending CancelledError is raised as this block ends
            try:
                return wait_for_task(si, task, _heartbeat_progress(task, step))
            except _StopWaiting:
                if cancel_task_on_cancel and _cancel_requested():
                    activity.logger.info("cancelling vCenter task %s (%s): the workflow asked", task._moId, step)
                    finished = cancel_task(si, task)
                return None
    except CancelledError:
        if finished is not None and finished.succeeded:
            # vCenter finished the task before the cancel reached it: the workflow must learn what it did
            return finished.result
        raise


def _recorded_task(si: vim.ServiceInstance) -> vim.Task | None:
    """The task an earlier attempt of this activity started, from its last heartbeat."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict) and details[0].get("task"):
        return properties.task(si, details[0]["task"])
    return None


def _vm_not_found(vm_moref: str) -> ApplicationError:
    return ApplicationError(messages.vcenter_vm_not_found(vm_moref), type=ErrorType.VM_NOT_FOUND,
                            non_retryable=True)


# faults that say "not now" rather than "never": Temporal retries the activity with backoff
TRANSIENT_FAULTS = frozenset({"TaskInProgress", "ConcurrentAccess", "Timedout", "HostCommunication",
                              "InvalidState", "SystemError", "RequestCanceled"})


def _task_failed(e: TaskFailed) -> ApplicationError:
    fault_type = fault_name(e.fault)
    return ApplicationError(e.message, {"fault": fault_type}, type=ErrorType.VSPHERE_TASK_FAILED,
                            non_retryable=fault_type not in TRANSIENT_FAULTS)


def tree_lookup(tree: SnapshotTree, req: SnapshotLookup) -> SnapshotNode:
    """By the moref we recorded (status.uniqueID) only, when there is one: the name may by now belong to a
    snapshot someone else made. Else (a snapshot imported with its VM) by name, refused when ambiguous; the
    messages are VM Operator's."""
    if req.snapshot_moref:
        node = tree.by_moref(req.snapshot_moref)
        if node is None or node.name != req.name:
            raise ApplicationError(messages.vsphere_snapshot_not_found(req.name, req.snapshot_moref),
                                   type=ErrorType.SNAPSHOT_NOT_FOUND, non_retryable=True)
        return node
    if not tree.roots:
        raise ApplicationError(messages.NO_SNAPSHOTS_FOR_VM, type=ErrorType.SNAPSHOT_NOT_FOUND, non_retryable=True)
    matches = tree.find(req.name)
    if not matches:
        raise ApplicationError(messages.vsphere_snapshot_not_found(req.name), type=ErrorType.SNAPSHOT_NOT_FOUND,
                               non_retryable=True)
    if len(matches) > 1:
        raise ApplicationError(messages.vsphere_snapshot_ambiguous(req.name, len(matches)),
                               type=ErrorType.SNAPSHOT_AMBIGUOUS, non_retryable=True)
    return matches[0]


def owned_snapshot(si: vim.ServiceInstance, vm: vim.VirtualMachine, req: SnapshotLookup) -> SnapshotNode | None:
    """The vSphere snapshot the object owns, or None: the one recorded in its status (unless it carries another
    object's UID), else — a create that did not live to record it — the one carrying the object's UID. Never a
    snapshot that merely has the object's name."""
    if req.snapshot_moref:
        node = read_tree(si, vm).by_moref(req.snapshot_moref)
        if node is None or node.name != req.name or snapshot_owner(si, node.moref) not in (None, req.owner_uid):
            return None
        return node
    return find_own_snapshot(si, vm, req.name, req.owner_uid) if req.owner_uid else None


def snapshot_vm_yaml(si: vim.ServiceInstance, snapshot_moref: str) -> str | None:
    """The VM YAML the snapshot captured in its ExtraConfig; None when it has none."""
    extra = properties.retrieve(si, properties.snapshot(si, snapshot_moref),
                                ["config.extraConfig"]).get("config.extraConfig") or []
    values = [o.value for o in extra if o.key == VM_RESOURCE_YAML_EXTRA_CONFIG_KEY]
    return values[-1] if values else None


# the vSphere calls of one activity (VSphereSnapshotActivities._run_task): given the session, the VM and how an
# earlier attempt's task ended, a task to wait for, or a result
Work = Callable[[vim.ServiceInstance, vim.VirtualMachine, TaskEnd], object]


class VSphereSnapshotActivities:
    def __init__(self, session: VSphereSession):
        self.session = session

    @staticmethod
    def _finish_earlier_tasks(si: vim.ServiceInstance, vm: vim.VirtualMachine, step: str,
                              cancel_task_on_cancel: bool) -> TaskEnd:
        """Re-attach to the task an earlier attempt started (from its heartbeat), then wait out any other
        snapshot task running on the VM (an attempt that died before heartbeating, or one started in vCenter):
        vSphere runs one snapshot task per VM, and only after them does a lookup tell the truth. A cancel stops
        the waits; only the earlier attempt's own task is ever cancelled in vCenter."""
        earlier = TaskEnd()
        recorded = _recorded_task(si)
        if recorded is not None:
            try:
                earlier = TaskEnd(True, _wait_for_own_task(si, recorded, step, cancel_task_on_cancel))
            except (vmodl.fault.ManagedObjectNotFound, TaskFailed):
                pass  # forgotten by vCenter, or failed transiently (why this attempt is a retry)
        for running in running_snapshot_tasks(si, vm):
            try:
                _wait_for_own_task(si, running, f"{step}: waiting for a running task", cancel_task_on_cancel=False)
            except TaskFailed:
                pass  # not ours to report
        return earlier

    def _run_task(self, vm_moref: str, step: str, work: Work, cancel_task_on_cancel: bool = False) -> object:
        """Run `work(si, vm, earlier: TaskEnd)` -> task | result with the session, mapping vSphere's answers
        to Temporal errors; a returned task is heartbeated (its reference is the checkpoint) and waited for (see
        _wait_for_own_task for what a cancel does)."""
        def run(si: vim.ServiceInstance) -> object:
            vm = properties.virtual_machine(si, vm_moref)
            try:
                outcome = work(si, vm, self._finish_earlier_tasks(si, vm, step, cancel_task_on_cancel))
                if isinstance(outcome, vim.Task):
                    activity.heartbeat({"task": outcome._moId, "step": step, "progress": 0})
                    started = time.monotonic()
                    with tracer().start_as_current_span(f"vCenter task: {step}", attributes={
                            "vsphere.vm": vm_moref, "vsphere.task": outcome._moId}):
                        try:
                            return _wait_for_own_task(si, outcome, step, cancel_task_on_cancel)
                        finally:
                            activity.metric_meter().create_histogram_float(
                                "vmsnap_vcenter_task_seconds", "vCenter task latency", "s").record(
                                time.monotonic() - started, {"step": step})
                return outcome
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(vm_moref)
            except TaskFailed as e:
                raise _task_failed(e) from e
        return self.session.run(run)

    @activity.defn(name="vsphere_store_snapshot_extra_config")
    def store_snapshot_extra_config(self, config: SnapshotExtraConfig) -> None:
        """Write the VM object's YAML and the snapshot object's UID into the VM's ExtraConfig (one reconfigure),
        so the next snapshot captures both: the YAML for a revert, the UID to recognise the snapshot as ours."""
        wanted = {VM_RESOURCE_YAML_EXTRA_CONFIG_KEY: config.vm_yaml, SNAPSHOT_OWNER_EXTRA_CONFIG_KEY: config.owner_uid}

        def store(si: vim.ServiceInstance, vm: vim.VirtualMachine, _earlier: TaskEnd) -> vim.Task | None:
            extra = properties.retrieve(si, vm, ["config.extraConfig"]).get("config.extraConfig") or []
            changed = {k: v for k, v in wanted.items() if not any(o.key == k and o.value == v for o in extra)}
            if not changed:
                return None
            task: vim.Task = vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[
                vim.option.OptionValue(key=k, value=v) for k, v in changed.items()]))
            return task
        self._run_task(config.vm_moref, "store VM YAML and owner", store)

    @activity.defn(name="vsphere_create_snapshot")
    def create_snapshot(self, req: VSphereSnapshotRequest) -> CreatedSnapshot:
        """CreateSnapshotEx_Task (quiesce timeout in minutes), unless an earlier attempt of this create made the
        snapshot already: then that one, known by the earlier task's result, or, if the attempt died before
        its task was recorded, by the object's UID in the snapshot's config. A snapshot of the same name that
        someone else made is never taken over: ours is made beside it (vSphere allows duplicate names),
        tracked by its reference from then on, and the others are reported."""
        def create(si: vim.ServiceInstance, vm: vim.VirtualMachine, earlier: TaskEnd) -> vim.vm.Snapshot | vim.Task:
            if earlier.succeeded and isinstance(earlier.result, vim.vm.Snapshot):
                return earlier.result
            own = find_own_snapshot(si, vm, req.name, req.owner_uid)
            return properties.snapshot(si, own.moref) if own else self._start_create(vm, req)

        made = self._run_task(req.vm_moref, "create snapshot", create, req.cancel_task_on_cancel)
        if not isinstance(made, vim.vm.Snapshot):
            raise ApplicationError(messages.snapshot_task_returned_nothing(req.name),
                                   type=ErrorType.SNAPSHOT_MISSING_AFTER_TASK)

        def created(si: vim.ServiceInstance) -> CreatedSnapshot:
            vm = properties.virtual_machine(si, req.vm_moref)
            used: int | None = None
            if not req.read_after:
                tree = read_tree(si, vm)
            else:  # the tree, its usage and the snapshot's size in one read: what the workflow records next
                try:
                    tree, used, vm_power = read_tree_and_used_bytes(si, vm, made._moId)
                except LookupError:  # no layoutEx entry yet: the workflow reads the size itself
                    tree = read_tree(si, vm, usage=True)
                    vm_power = None
            node = tree.by_moref(made._moId)
            if node is None:
                raise ApplicationError(messages.snapshot_missing_after_task(req.name, made._moId),
                                       type=ErrorType.SNAPSHOT_MISSING_AFTER_TASK)
            return CreatedSnapshot(node=node, same_name=[n.moref for n in tree.find(req.name) if n.moref != node.moref],
                                   tree=tree if req.read_after else None, used_bytes=used,
                                   vm_power_state=vm_power if req.read_after else None)
        return self.session.run(created)

    @activity.defn(name="vsphere_find_snapshot")
    def find_snapshot(self, req: SnapshotLookup) -> SnapshotNode:
        """The one vSphere snapshot of this name (its recorded moref first); refused when none or several."""
        def find(si: vim.ServiceInstance) -> SnapshotNode:
            try:
                tree = read_tree(si, properties.virtual_machine(si, req.vm_moref))
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(req.vm_moref)
            return tree_lookup(tree, req)
        return self.session.run(find)

    @activity.defn(name="vsphere_revert_snapshot")
    def revert_snapshot(self, loc: SnapshotLocation) -> RevertedSnapshot | None:
        """RevertToSnapshot_Task(suppressPowerOn=False): the VM takes the snapshot's power state. Then, when
        asked (`read_after`), what the workflow needs next, read here rather than by activities of its own: the
        VM YAML the snapshot captured and the VM's tree with usage."""
        def revert(si: vim.ServiceInstance, _vm: vim.VirtualMachine, earlier: TaskEnd) -> vim.Task | None:
            # a revert cannot be recognised as done from the tree (reverting to the current snapshot is
            # allowed), so only the earlier attempt's own task says it
            return None if earlier.succeeded else properties.snapshot(si, loc.snapshot_moref).RevertToSnapshot_Task(
                suppressPowerOn=False)
        self._run_task(loc.vm_moref, "revert to snapshot", revert, loc.cancel_task_on_cancel)
        if not loc.read_after:
            return None

        def read(si: vim.ServiceInstance) -> RevertedSnapshot:
            return RevertedSnapshot(vm_yaml=snapshot_vm_yaml(si, loc.snapshot_moref),
                                    tree=read_tree(si, properties.virtual_machine(si, loc.vm_moref), usage=True))
        return self.session.run(read)

    @activity.defn(name="vsphere_remove_snapshot")
    def remove_snapshot(self, req: SnapshotLookup) -> bool:
        """RemoveSnapshot_Task(removeChildren=False, consolidate=True) of the snapshot the object owns (see
        owned_snapshot; never one that only shares its name): its children move up to its parent. Not found
        (or the VM gone) counts as removed. True if this call removed it."""
        def remove(si: vim.ServiceInstance, vm: vim.VirtualMachine, _earlier: TaskEnd) -> vim.Task | bool:
            node = owned_snapshot(si, vm, req)
            if node is None:
                return False
            task: vim.Task = properties.snapshot(si, node.moref).RemoveSnapshot_Task(removeChildren=False,
                                                                                     consolidate=True)
            return task
        try:
            return self._run_task(req.vm_moref, "remove snapshot", remove) is not False
        except ApplicationError as e:
            if e.type == ErrorType.VM_NOT_FOUND:
                return False
            raise

    @activity.defn(name="vsphere_cancel_task")
    def cancel_task(self, task_moref: str) -> bool:
        """Cancel a snapshot task an attempt of the calling workflow started and then lost (its worker died: the
        task's reference is that attempt's last heartbeat), and wait for its end. True if vCenter finished the
        task before the cancel reached it (what it did stands)."""
        def cancel(si: vim.ServiceInstance) -> bool:
            task = properties.task(si, task_moref)
            return cancel_task(si, task).succeeded
        return bool(self.session.run(cancel))

    @activity.defn(name="vsphere_read_snapshot_vm_yaml")
    def read_snapshot_vm_yaml(self, loc: SnapshotLocation) -> str | None:
        """The VM YAML the snapshot captured in its ExtraConfig; None when it has none."""
        return self.session.run(lambda si: snapshot_vm_yaml(si, loc.snapshot_moref))

    @staticmethod
    def _start_create(vm: vim.VirtualMachine, req: VSphereSnapshotRequest) -> vim.Task:
        quiesce = (vim.vm.GuestQuiesceSpec(timeout=req.quiesce_minutes) if req.quiesce_minutes is not None
                   else None)
        task: vim.Task
        try:
            task = vm.CreateSnapshotEx_Task(name=req.name, description=req.description, memory=req.memory,
                                            quiesceSpec=quiesce)
        except vmodl.fault.MethodNotFound:
            # vCenter before 7.0 U3: no Ex variant; quiesce is then a plain flag with vSphere's own timeout
            task = vm.CreateSnapshot_Task(name=req.name, description=req.description, memory=req.memory,
                                          quiesce=quiesce is not None)
        return task

    @activity.defn(name="vsphere_read_snapshot_tree")
    def read_snapshot_tree(self, vm_moref: str) -> SnapshotTree | None:
        """The VM's snapshot tree with its snapshots' usage (one read); None when the VM is not in vCenter."""
        def read(si: vim.ServiceInstance) -> SnapshotTree | None:
            try:
                return read_tree(si, properties.virtual_machine(si, vm_moref), usage=True)
            except vmodl.fault.ManagedObjectNotFound:
                return None
        return self.session.run(read)

    @activity.defn(name="vsphere_read_snapshot_used_bytes")
    def read_snapshot_used_bytes(self, loc: SnapshotLocation) -> int:
        def read(si: vim.ServiceInstance) -> int:
            try:
                return read_used_bytes(si, properties.virtual_machine(si, loc.vm_moref), loc.snapshot_moref)
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(loc.vm_moref)
        return self.session.run(read)
