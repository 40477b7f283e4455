"""Activities against vCenter (pyvmomi) for a VM's snapshots. Blocking calls run in the worker's thread pool
(these are sync activities); every wait heartbeats, and the running task's reference is the heartbeat
detail, so a retried attempt re-attaches to the task instead of starting a second one."""

from __future__ import annotations

from pyVmomi import vim, vmodl
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.vsphere import properties
from activities.vsphere.session import VSphereSession
from activities.vsphere.snapshots import read_tree, read_used_bytes
from activities.vsphere.tasks import TaskFailed, running_snapshot_tasks, wait_for_task
from api.names import VM_RESOURCE_YAML_EXTRA_CONFIG_KEY
from api.operations import SnapshotLocation, SnapshotNode, SnapshotTree, VMYamlBackup, VSphereSnapshotRequest

# ApplicationError types the workflows turn into conditions
VSPHERE_TASK_FAILED = "VSphereTaskFailed"
VM_NOT_FOUND = "VSphereVMNotFound"
AMBIGUOUS_SNAPSHOT = "VSphereSnapshotAmbiguous"


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


class VSphereSnapshotActivities:
    def __init__(self, session: VSphereSession):
        self.session = session

    @staticmethod
    def _finish_earlier_tasks(si, vm: vim.VirtualMachine, step: str) -> None:
        """Re-attach to the task an earlier attempt started (from its heartbeat), then wait out any other
        snapshot task running on the VM (an attempt that died before heartbeating, or one started in vCenter):
        vSphere runs one snapshot task per VM, and only after them does a lookup by name tell the truth."""
        recorded = _recorded_task(si)
        if recorded is not None:
            try:
                wait_for_task(si, recorded, _heartbeat_progress(recorded, step))
            except (vmodl.fault.ManagedObjectNotFound, TaskFailed):
                # forgotten by vCenter, or failed transiently (why this attempt is a retry): look up by name
                pass
        for running in running_snapshot_tasks(si, vm):
            try:
                wait_for_task(si, running, _heartbeat_progress(running, f"{step}: waiting for a running task"))
            except TaskFailed:
                pass  # not ours to report; the lookup by name decides

    @activity.defn(name="vsphere_store_vm_yaml")
    def store_vm_yaml(self, backup: VMYamlBackup) -> None:
        """Write the VM object's YAML into the VM's ExtraConfig, so the next snapshot captures it."""
        def store(si):
            vm = properties.virtual_machine(si, backup.vm_moref)
            try:
                extra = properties.retrieve(si, vm, ["config.extraConfig"]).get("config.extraConfig") or []
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(backup.vm_moref)
            if any(o.key == VM_RESOURCE_YAML_EXTRA_CONFIG_KEY and o.value == backup.vm_yaml for o in extra):
                return
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=VM_RESOURCE_YAML_EXTRA_CONFIG_KEY,
                                                                         value=backup.vm_yaml)])
            task = vm.ReconfigVM_Task(spec)
            activity.heartbeat({"task": task._moId, "step": "store VM YAML"})
            try:
                wait_for_task(si, task, _heartbeat_progress(task, "store VM YAML"))
            except TaskFailed as e:
                raise _task_failed(e) from e
        self.session.run(store)

    @activity.defn(name="vsphere_create_snapshot")
    def create_snapshot(self, req: VSphereSnapshotRequest) -> SnapshotNode:
        """Find the snapshot by name, or create it with CreateSnapshotEx_Task (quiesce timeout in minutes)."""
        def create(si) -> SnapshotNode:
            vm = properties.virtual_machine(si, req.vm_moref)
            try:
                self._finish_earlier_tasks(si, vm, "create snapshot")
                existing = self._find_one(si, vm, req.name)
                if existing is not None:
                    return existing
                task = self._start_create(vm, req)
                activity.heartbeat({"task": task._moId, "step": "create snapshot", "progress": 0})
                wait_for_task(si, task, _heartbeat_progress(task, "create snapshot"))
            except vmodl.fault.ManagedObjectNotFound:
                raise _vm_not_found(req.vm_moref)
            except TaskFailed as e:
                raise _task_failed(e) from e
            created = self._find_one(si, vm, req.name)
            if created is None:
                raise ApplicationError(f'snapshot "{req.name}" is not in the tree after its task succeeded')
            return created
        return self.session.run(create)

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
        matches = read_tree(si, vm).find(name)
        if len(matches) > 1:
            raise ApplicationError(f'"{name}" resolves to {len(matches)} snapshots', type=AMBIGUOUS_SNAPSHOT,
                                   non_retryable=True)
        return matches[0] if matches else None

    @activity.defn(name="vsphere_read_snapshot_tree")
    def read_snapshot_tree(self, vm_moref: str) -> SnapshotTree | None:
        """The VM's snapshot tree; None when the VM is not in vCenter."""
        def read(si):
            try:
                return read_tree(si, properties.virtual_machine(si, vm_moref))
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
