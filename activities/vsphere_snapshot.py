"""Activities against vCenter (pyvmomi) for a VM's snapshots. Blocking calls run in the worker's thread pool
(these are sync activities); every wait heartbeats, and the running task's reference is the heartbeat
detail, so a retried attempt re-attaches to the task instead of starting a second one."""

from __future__ import annotations

import time

from pyVmomi import vim, vmodl
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.vsphere import properties
from activities.vsphere.session import VSphereSession
from activities.vsphere.snapshots import read_tree, read_used_bytes
from activities.vsphere.tasks import TaskFailed, running_snapshot_tasks, wait_for_task
from api.names import VM_RESOURCE_YAML_EXTRA_CONFIG_KEY
from api.operations import (
    SnapshotLocation,
    SnapshotLookup,
    SnapshotNode,
    SnapshotTree,
    VMYamlBackup,
    VSphereSnapshotRequest,
)
from worker.telemetry import tracer

# ApplicationError types the workflows turn into conditions
VSPHERE_TASK_FAILED = "VSphereTaskFailed"
VM_NOT_FOUND = "VSphereVMNotFound"
AMBIGUOUS_SNAPSHOT = "VSphereSnapshotAmbiguous"
SNAPSHOT_NOT_FOUND = "VSphereSnapshotNotFound"


def _heartbeat_progress(task: vim.Task, step: str):
    def beat(percent: int) -> None:
        activity.heartbeat({"task": task._moId, "step": step, "progress": percent})
    return beat


def _recorded_task(si) -> vim.Task | None:
    """The task an earlier attempt of this activity started, from its last heartbeat."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict) and details[0].get("task"):
        return properties.task(si, details[0]["task"])
    return None


def _vm_not_found(vm_moref: str) -> ApplicationError:
    return ApplicationError(f"virtual machine {vm_moref} not found in vCenter", type=VM_NOT_FOUND,
                            non_retryable=True)


# faults that say "not now" rather than "never": Temporal retries the activity with backoff
TRANSIENT_FAULTS = frozenset({"TaskInProgress", "ConcurrentAccess", "Timedout", "HostCommunication",
                              "InvalidState", "SystemError", "RequestCanceled"})


def _task_failed(e: TaskFailed) -> ApplicationError:
    fault_type = type(e.fault).__name__.split(".")[-1]
    return ApplicationError(e.message, {"fault": fault_type}, type=VSPHERE_TASK_FAILED,
                            non_retryable=fault_type not in TRANSIENT_FAULTS)


def tree_lookup(tree: SnapshotTree, req: SnapshotLookup) -> SnapshotNode:
    """By the moref we recorded (status.uniqueID) when it is still in the tree, else by name; the messages
    are VM Operator's."""
    if req.snapshot_moref:
        node = tree.by_moref(req.snapshot_moref)
        if node is not None and node.name == req.name:
            return node
    if not tree.roots:
        raise ApplicationError("no snapshots for this VM", type=SNAPSHOT_NOT_FOUND, non_retryable=True)
    matches = tree.find(req.name)
    if not matches:
        raise ApplicationError(f'snapshot "{req.name}" not found', type=SNAPSHOT_NOT_FOUND, non_retryable=True)
    if len(matches) > 1:
        raise ApplicationError(f'"{req.name}" resolves to {len(matches)} snapshots', type=AMBIGUOUS_SNAPSHOT,
                               non_retryable=True)
    return matches[0]


def lookup_or_none(tree: SnapshotTree, req: SnapshotLookup) -> SnapshotNode | None:
    """As tree_lookup, with "not there" as None (several of that name is still an error)."""
    try:
        return tree_lookup(tree, req)
    except ApplicationError as e:
        if e.type == SNAPSHOT_NOT_FOUND:
            return None
        raise


class VSphereSnapshotActivities:
    def __init__(self, session: VSphereSession):
        self.session = session

    @staticmethod
    def _finish_earlier_tasks(si, vm: vim.VirtualMachine, step: str) -> bool:
        """Re-attach to the task an earlier attempt started (from its heartbeat), then wait out any other
        snapshot task running on the VM (an attempt that died before heartbeating, or one started in vCenter):
        vSphere runs one snapshot task per VM, and only after them does a lookup tell the truth.
        True when the earlier attempt's task succeeded (the work is done)."""
        done = False
        recorded = _recorded_task(si)
        if recorded is not None:
            try:
                wait_for_task(si, recorded, _heartbeat_progress(recorded, step))
                done = True
            except (vmodl.fault.ManagedObjectNotFound, TaskFailed):
                pass  # forgotten by vCenter, or failed transiently (why this attempt is a retry)
        for running in running_snapshot_tasks(si, vm):
            try:
                wait_for_task(si, running, _heartbeat_progress(running, f"{step}: waiting for a running task"))
            except TaskFailed:
                pass  # not ours to report
        return done

    def _run_task(self, vm_moref: str, step: str, work) -> object:
        """Run `work(si, vm, earlier_done)` -> task | result with the session, mapping vSphere's answers to
        Temporal errors; a returned task is heartbeated (its reference is the checkpoint) and waited for."""
        def run(si):
            vm = properties.virtual_machine(si, vm_moref)
            try:
                outcome = work(si, vm, self._finish_earlier_tasks(si, vm, step))
                if isinstance(outcome, vim.Task):
                    activity.heartbeat({"task": outcome._moId, "step": step, "progress": 0})
                    started = time.monotonic()
                    with tracer().start_as_current_span(f"vCenter task: {step}", attributes={
                            "vsphere.vm": vm_moref, "vsphere.task": outcome._moId}):
                        try:
                            return wait_for_task(si, outcome, _heartbeat_progress(outcome, step))
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

    @activity.defn(name="vsphere_store_vm_yaml")
    def store_vm_yaml(self, backup: VMYamlBackup) -> None:
        """Write the VM object's YAML into the VM's ExtraConfig, so the next snapshot captures it."""
        def store(si, vm, _earlier_done):
            extra = properties.retrieve(si, vm, ["config.extraConfig"]).get("config.extraConfig") or []
            if any(o.key == VM_RESOURCE_YAML_EXTRA_CONFIG_KEY and o.value == backup.vm_yaml for o in extra):
                return None
            return vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[
                vim.option.OptionValue(key=VM_RESOURCE_YAML_EXTRA_CONFIG_KEY, value=backup.vm_yaml)]))
        self._run_task(backup.vm_moref, "store VM YAML", store)

    @activity.defn(name="vsphere_create_snapshot")
    def create_snapshot(self, req: VSphereSnapshotRequest) -> SnapshotNode:
        """Find the snapshot by name, or create it with CreateSnapshotEx_Task (quiesce timeout in minutes)."""
        def create(si, vm, _earlier_done):
            return None if self._find_one(si, vm, req.name) else self._start_create(vm, req)

        def created(si) -> SnapshotNode | None:
            return self._find_one(si, properties.virtual_machine(si, req.vm_moref), req.name)

        self._run_task(req.vm_moref, "create snapshot", create)
        node = self.session.run(created)
        if node is None:
            raise ApplicationError(f'snapshot "{req.name}" is not in the tree after its task succeeded')
        return node

    @activity.defn(name="vsphere_find_snapshot")
    def find_snapshot(self, req: SnapshotLookup) -> SnapshotNode:
        """The one vSphere snapshot of this name (its recorded moref first); refused when none or several."""
        def find(si):
            try:
                tree = read_tree(si, properties.virtual_machine(si, req.vm_moref))
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(req.vm_moref)
            return tree_lookup(tree, req)
        return self.session.run(find)

    @activity.defn(name="vsphere_revert_snapshot")
    def revert_snapshot(self, loc: SnapshotLocation) -> None:
        """RevertToSnapshot_Task(suppressPowerOn=False): the VM takes the snapshot's power state."""
        def revert(si, _vm, earlier_done):
            # a revert cannot be recognised as done from the tree (reverting to the current snapshot is
            # allowed), so only the earlier attempt's own task says it
            return None if earlier_done else properties.snapshot(si, loc.snapshot_moref).RevertToSnapshot_Task(
                suppressPowerOn=False)
        self._run_task(loc.vm_moref, "revert to snapshot", revert)

    @activity.defn(name="vsphere_remove_snapshot")
    def remove_snapshot(self, req: SnapshotLookup) -> bool:
        """RemoveSnapshot_Task(removeChildren=False, consolidate=True): its children move up to its parent.
        Not found (or the VM gone) counts as removed. True if this call removed it."""
        def remove(si, vm, _earlier_done):
            node = lookup_or_none(read_tree(si, vm), req)
            if node is None:
                return False
            return properties.snapshot(si, node.moref).RemoveSnapshot_Task(removeChildren=False, consolidate=True)
        try:
            return self._run_task(req.vm_moref, "remove snapshot", remove) is not False
        except ApplicationError as e:
            if e.type == VM_NOT_FOUND:
                return False
            raise

    @activity.defn(name="vsphere_read_snapshot_vm_yaml")
    def read_snapshot_vm_yaml(self, loc: SnapshotLocation) -> str | None:
        """The VM YAML the snapshot captured in its ExtraConfig; None when it has none."""
        def read(si):
            extra = properties.retrieve(si, properties.snapshot(si, loc.snapshot_moref),
                                        ["config.extraConfig"]).get("config.extraConfig") or []
            values = [o.value for o in extra if o.key == VM_RESOURCE_YAML_EXTRA_CONFIG_KEY]
            return values[-1] if values else None
        return self.session.run(read)

    @staticmethod
    def _start_create(vm: vim.VirtualMachine, req: VSphereSnapshotRequest) -> vim.Task:
        quiesce = (vim.vm.GuestQuiesceSpec(timeout=req.quiesce_minutes) if req.quiesce_minutes is not None
                   else None)
        try:
            return vm.CreateSnapshotEx_Task(name=req.name, description=req.description, memory=req.memory,
                                            quiesceSpec=quiesce)
        except vmodl.fault.MethodNotFound:
            # vCenter before 7.0 U3: no Ex variant; quiesce is then a plain flag with vSphere's own timeout
            return vm.CreateSnapshot_Task(name=req.name, description=req.description, memory=req.memory,
                                          quiesce=quiesce is not None)

    @staticmethod
    def _find_one(si, vm: vim.VirtualMachine, name: str) -> SnapshotNode | None:
        return lookup_or_none(read_tree(si, vm), SnapshotLookup(vm_moref=vm._moId, name=name))

    @activity.defn(name="vsphere_read_snapshot_tree")
    def read_snapshot_tree(self, vm_moref: str) -> SnapshotTree | None:
        """The VM's snapshot tree with its snapshots' usage (one read); None when the VM is not in vCenter."""
        def read(si):
            try:
                return read_tree(si, properties.virtual_machine(si, vm_moref), usage=True)
            except vmodl.fault.ManagedObjectNotFound:
                return None
        return self.session.run(read)

    @activity.defn(name="vsphere_read_snapshot_used_bytes")
    def read_snapshot_used_bytes(self, loc: SnapshotLocation) -> int:
        def read(si):
            try:
                return read_used_bytes(si, properties.virtual_machine(si, loc.vm_moref), loc.snapshot_moref)
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(loc.vm_moref)
        return self.session.run(read)
