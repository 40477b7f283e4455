"""Activities against the Kubernetes API for a VirtualMachine: its snapshot tree status
(`status.currentSnapshot`, `status.rootSnapshots`, each snapshot's `status.children`), its snapshots' storage
usage (`status.storage.usage.snapshots`) and its revert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kube.annotations import operation_annotations
from activities.kube.bound_vms import BoundVMs
from activities.kube.events import EventRecorder
from activities.vm_yaml import decode_vm_yaml
from activities.written_trees import tree_shape, written_trees
from api import SnapshotReference, VirtualMachine, VirtualMachineSnapshot, messages
from api.conditions import remove_condition, set_false
from api.errors import ErrorType
from api.meta import kube_time_from
from api.names import (
    FAILURE_DEADLINE_ANNOTATION,
    IMPORTED_SNAPSHOT_ANNOTATION,
    EventReason,
    RevertReason,
    VMConditionType,
)
from api.operation_policy import OperationDefaults, failure_deadline
from contract.payloads import (
    Operation,
    RevertConditionChange,
    RevertPlan,
    SnapshotNode,
    SnapshotTree,
    TreeSync,
    VMRef,
    VMRestore,
    VMTarget,
)
from runtime.kube import Kube
from runtime.last_written import LastWritten
from runtime.telemetry import WorkflowLinks


def _reference(node: SnapshotNode, managed: dict[str, str]) -> SnapshotReference:
    name = managed.get(node.moref)
    return SnapshotReference.managed(name) if name else SnapshotReference.unmanaged()


def _dump(refs: list[SnapshotReference] | None) -> list[dict[str, Any]] | None:
    return [r.to_kube() for r in refs] if refs else None


def managed_snapshots(snapshots: list[VirtualMachineSnapshot], claimed: dict[str, str]) -> dict[str, str]:
    """vSphere snapshot → the name of the object that owns it: the one whose status.uniqueID records it (or the
    create recording it right now, `claimed`). A vSphere snapshot that only shares an object's name is
    Unmanaged: someone else made it."""
    return {**{s.status.unique_id: s.name for s in snapshots if s.status.unique_id and s.name}, **claimed}


def vm_tree_status(tree: SnapshotTree, managed: dict[str, str]) -> tuple[SnapshotReference | None,
                                                                         list[SnapshotReference]]:
    current_node = tree.by_moref(tree.current)
    current = _reference(current_node, managed) if current_node else None
    return current, [_reference(n, managed) for n in tree.roots]


def snapshot_children(tree: SnapshotTree, managed: dict[str, str]) -> dict[str, list[SnapshotReference]]:
    """The direct children of every managed snapshot in the tree, by the owning object's name."""
    return {managed[n.moref]: [_reference(c, managed) for c in n.children] for n in tree.walk() if n.moref in managed}


# a sync re-lists the VM's snapshots after writing, and writes again if an object recorded its uniqueID meanwhile
TREE_SYNC_ROUNDS = 3


class KubeVMActivities:
    def __init__(self, kube: Kube, namespace: str = "", written: LastWritten[str, str] | None = None,
                 bound_vms: BoundVMs | None = None):
        self.kube = kube
        self.namespace = namespace  # "" = every namespace
        self.written = written or written_trees()
        self.bound_vms = bound_vms

    @activity.defn(name="kube_list_vm_targets")
    def list_vm_targets(self, morefs: list[str] | None) -> list[VMTarget]:
        """VirtualMachine objects bound to these vCenter VMs (all bound ones when `morefs` is None)."""
        if self.bound_vms is not None and self.bound_vms.synced:
            return self.bound_vms.targets(morefs)
        wanted = set(morefs) if morefs is not None else None
        return [VMTarget(vm=VMRef(namespace=vm.namespace, name=vm.name), vm_moref=vm.status.unique_id)
                for vm in self.kube.list_vms(self.namespace)
                if vm.status.unique_id and (wanted is None or vm.status.unique_id in wanted)]

    @activity.defn(name="kube_sync_snapshot_tree")
    def sync_snapshot_tree(self, sync: TreeSync) -> None:
        """Write vCenter's tree onto the VM and its snapshots. A vSphere snapshot is Managed when an object of
        this VM records it as its own (VM Operator matches by name only, which would claim a snapshot someone
        else made with that name). Two syncs of one VM may run at once (an operation's, the live tree's): each
        re-lists the objects after writing, so a uniqueID recorded meanwhile is never overwritten by a stale
        view — unless the operation asking holds the VM's queue, when no uniqueID but its own `claimed` one can
        be recorded meanwhile."""
        ns = sync.vm.namespace
        listed = self.kube.list_vm_snapshots(ns, sync.vm.name)
        managed = managed_snapshots(listed, sync.claimed)
        for _ in range(TREE_SYNC_ROUNDS):
            self._write_tree(sync, managed, {s.name: s for s in listed})
            if not sync.queue_held:
                listed = self.kube.list_vm_snapshots(ns, sync.vm.name)
                again = managed_snapshots(listed, sync.claimed)
                if again != managed:
                    managed = again
                    continue
            if sync.vm_moref:  # vCenter's report of this very tree needs no second sync (the change feed)
                self.written.remember(sync.vm_moref, tree_shape(sync.tree))
            return

    def _write_tree(self, sync: TreeSync, managed: dict[str, str],
                    listed: dict[str | None, VirtualMachineSnapshot]) -> None:
        ns = sync.vm.namespace
        current, roots = vm_tree_status(sync.tree, managed)

        def write_vm(vm: VirtualMachine) -> bool:
            before = (_dump([vm.status.current_snapshot] if vm.status.current_snapshot else None),
                      _dump(vm.status.root_snapshots))
            vm.status.current_snapshot = current
            vm.status.root_snapshots = roots or None
            # status.storage.usage.snapshots, in the same write (a tree read without usage leaves it as it is)
            usage = sync.tree.usage
            usage_changed = usage is not None and vm.status.set_snapshot_usage(usage.vm_bytes, usage.volume_bytes)
            return before != (_dump([current] if current else None), _dump(roots)) or usage_changed

        self.kube.update_vm(ns, sync.vm.name, write_vm, status=True)

        for name, children in snapshot_children(sync.tree, managed).items():
            def write_children(s: VirtualMachineSnapshot, children: list[SnapshotReference] = children) -> bool:
                if _dump(s.status.children) == _dump(children):
                    return False
                s.status.children = children or None
                return True
            # the objects as just listed: no GET each (a 409 reads again); those already right are not written
            seen = listed.get(name)
            if seen is not None and _dump(seen.status.children) == _dump(children):
                continue
            self.kube.update_snapshot(ns, name, write_children, status=True, current=seen)


def _refuse(reason: str, message: str) -> ApplicationError:
    """A revert that cannot go ahead: the reason becomes the VM condition's reason."""
    return ApplicationError(message, reason, type=ErrorType.REVERT_REFUSED, non_retryable=True)


def approximate_vm_spec(current: VirtualMachine) -> dict[str, Any]:
    """For an imported snapshot without VM YAML (reference §3.8): keep what identifies the VM and its
    placement, drop what the snapshot cannot vouch for (class, image, volumes)."""
    spec = {k: v for k, v in current.spec.to_kube().items()
            if k not in ("className", "imageName", "volumes", "currentSnapshotName")}
    spec["powerOffMode"] = "TrySoft"
    return spec


class KubeVMRevertActivities:
    def __init__(self, kube: Kube, events: EventRecorder, links: WorkflowLinks = WorkflowLinks(),
                 defaults: OperationDefaults = OperationDefaults()):
        self.kube = kube
        self.events = events
        self.links = links
        self.defaults = defaults

    @activity.defn(name="kube_prepare_revert")
    def prepare_revert(self, op: Operation) -> RevertPlan | None:
        """Preflight on the Kubernetes side; None when the request is gone or superseded (an abort)."""
        vm = self.kube.get_vm(op.vm.namespace, op.vm.name)
        if vm is None or vm.metadata.generation != op.vm_generation or \
                vm.requested_snapshot_name != op.snapshot_name:
            return None
        if vm.is_vks_node:
            raise _refuse(RevertReason.SKIPPED, messages.REVERT_SKIPPED_FOR_VKS_NODE)
        snapshot = self.kube.get_snapshot(op.vm.namespace, op.snapshot_name)
        if snapshot is None:
            raise _refuse(RevertReason.FAILED, messages.revert_failed_to_get_snapshot(
                op.snapshot_name, messages.snapshot_object_not_found(op.snapshot_name)))
        if snapshot.vm_name != op.vm.name:
            raise _refuse(RevertReason.FAILED, messages.revert_failed_to_get_snapshot(
                op.snapshot_name, messages.snapshot_of_another_vm(snapshot.vm_name, op.vm.name)))
        if not snapshot.is_ready:
            raise _refuse(RevertReason.SKIPPED, messages.revert_skipped_not_ready(op.snapshot_name))
        blocking = self._volume_snapshots_after(vm, snapshot)
        if blocking:
            raise _refuse(RevertReason.FAILED, messages.revert_crosses_volume_snapshots(blocking, op.snapshot_name))
        if not vm.status.unique_id:
            raise _refuse(RevertReason.FAILED, messages.vm_has_no_unique_id(op.vm.name))
        try:  # the VM's own annotation: only a VM that bypassed admission has one that does not parse
            deadline, limit = failure_deadline(vm.metadata.annotation(FAILURE_DEADLINE_ANNOTATION), self.defaults, None)
        except ValueError as e:
            raise _refuse(RevertReason.FAILED, str(e)) from e
        return RevertPlan(vm=op.vm, vm_moref=vm.status.unique_id, snapshot_name=op.snapshot_name,
                          snapshot_moref=snapshot.status.unique_id,
                          imported=snapshot.metadata.annotation(IMPORTED_SNAPSHOT_ANNOTATION) is not None,
                          deadline=datetime.now(UTC) + deadline, deadline_limit=limit)

    def _volume_snapshots_after(self, vm: VirtualMachine, snapshot: VirtualMachineSnapshot) -> list[str]:
        """CSI VolumeSnapshots of the VM's PVCs taken after the target: vSphere cannot revert across them."""
        claims = {v.persistent_volume_claim.claim_name for v in vm.spec.volumes or []
                  if v.persistent_volume_claim and v.persistent_volume_claim.claim_name}
        taken = snapshot.metadata.creation_timestamp
        if not claims or taken is None:
            return []
        return sorted(f'"{vs["metadata"]["name"]}"' for vs in self.kube.list_volume_snapshots(vm.namespace or "")
                      if (vs.get("spec", {}).get("source") or {}).get("persistentVolumeClaimName") in claims
                      and kube_time_from(vs["metadata"].get("creationTimestamp")) > taken)

    @activity.defn(name="kube_set_revert_condition")
    def set_revert_condition(self, change: RevertConditionChange) -> None:
        now = datetime.now(UTC)

        def write(vm: VirtualMachine) -> bool:
            if change.generation is not None and vm.metadata.generation != change.generation:
                return False  # a newer request (or an abort) owns the condition now
            before = [c.model_dump() for c in vm.status.conditions or []]
            if change.reason is None:
                vm.status.conditions = remove_condition(vm.status.conditions, VMConditionType.SNAPSHOT_REVERT_SUCCEEDED)
            else:
                vm.status.conditions = set_false(vm.status.conditions, VMConditionType.SNAPSHOT_REVERT_SUCCEEDED,
                                                 change.reason, change.message, now, vm.metadata.generation)
            return [c.model_dump() for c in vm.status.conditions or []] != before

        written = self.kube.update_vm(change.vm.namespace, change.vm.name, write, status=True)
        if written is not None and change.reason is not None:
            self.events.record(written, change.reason, change.message,
                               warning=change.reason != RevertReason.IN_PROGRESS)

    @activity.defn(name="kube_restore_vm_from_snapshot")
    def restore_vm(self, restore: VMRestore) -> None:
        """The VM object becomes what the snapshot captured: its spec, labels and annotations, without
        spec.currentSnapshotName, with the power state the VM came back in."""
        # the revert's trace and workflow, so `kubectl get vm -o yaml` leads to them
        operation = {k: v for k, v in operation_annotations(self.links).items() if v is not None}

        def write(vm: VirtualMachine) -> bool:
            if restore.vm_yaml is not None:
                try:
                    stored = decode_vm_yaml(restore.vm_yaml)
                except Exception as e:  # noqa: BLE001 - any decoding problem is an invalid manifest
                    raise ApplicationError(messages.revert_failed_to_restore_vm(str(e)),
                                           type=ErrorType.INVALID_VM_MANIFEST, non_retryable=True) from e
                spec, meta = dict(stored.get("spec") or {}), stored.get("metadata") or {}
                labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
            else:
                spec, labels, annotations = approximate_vm_spec(vm), {}, {}
            spec.pop("currentSnapshotName", None)
            spec["powerState"] = restore.power_state
            annotations = {**annotations, **operation}
            restored = VirtualMachine.model_validate({**vm.to_kube(), "spec": spec})
            vm.spec = restored.spec
            vm.metadata.labels = labels or None
            vm.metadata.annotations = annotations or None
            return True

        written = self.kube.update_vm(restore.vm.namespace, restore.vm.name, write)
        if written is not None:
            self.events.record(written, EventReason.SNAPSHOT_REVERTED,
                               messages.reverted(restore.snapshot_name, restore.snapshot_moref, restore.power_state))


