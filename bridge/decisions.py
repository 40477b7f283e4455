"""What a watched object asks for, decided from the object alone (pure, so it is unit-tested on its own).
The CR's status is the primary record of what is done; Temporal's workflow IDs are the second line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api import VirtualMachine, VirtualMachineSnapshot
from api.conditions import Condition
from api.group_snapshot_names import GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION
from api.names import (
    CSI_VOLUME_SYNC_ANNOTATION,
    VM_PLURAL,
    WORKFLOW_ID_ANNOTATION,
    CSIVolumeSync,
    RevertReason,
)
from contract.payloads import Operation, OperationKind, VMRef, vm_queue_workflow_id


@dataclass(frozen=True)
class SignalCSISynced:
    """Tell a waiting CreateSnapshot that the CSI driver answered."""
    workflow_id: str


@dataclass(frozen=True)
class StopVMOperations:
    """The VirtualMachine is being deleted: its queue cancels the running operation (its vCenter task too) and
    drops the creates and reverts not yet started."""
    workflow_id: str


def snapshot_actions(obj: dict[str, Any]) -> list[Operation | SignalCSISynced]:
    snapshot = VirtualMachineSnapshot.model_validate(obj)
    meta, vm_name = snapshot.metadata, snapshot.vm_name
    if not vm_name or not meta.uid or not meta.name or not meta.namespace:
        return []
    vm = VMRef(namespace=meta.namespace, name=vm_name)
    if snapshot.is_being_deleted:
        if not snapshot.has_finalizer:
            return []
        # Ready is a create's last write: after it, the create has nothing left to do
        running = not snapshot.is_ready
        return [Operation(kind=OperationKind.DELETE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid,
                          summary=f"delete snapshot {meta.name} of {vm_name}", stop_create=running,
                          cancel_create=running)]
    if snapshot.is_created:
        if snapshot.csi_volume_sync == CSIVolumeSync.COMPLETED and not snapshot.is_csi_synced:
            create = Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid)
            return [SignalCSISynced(create.workflow_id)]
        return []
    if snapshot.create_failure is not None:
        return []  # a finished attempt that failed: the condition says why; delete and recreate to retry
    return [Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid,
                      summary=snapshot.summary())]


def vm_actions(obj: dict[str, Any], deleted: bool = False) -> list[Operation | StopVMOperations]:
    """A revert per VM generation while spec.currentSnapshotName is set; an abort (empty name) when it was
    cleared and a failed revert's condition is still on the VM; its operations stopped once it is being deleted
    (or is gone: `deleted`)."""
    vm = VirtualMachine.model_validate(obj)
    meta = vm.metadata
    if not meta.name or not meta.namespace:
        return []
    ref = VMRef(namespace=meta.namespace, name=meta.name)
    if deleted or vm.metadata.is_being_deleted:
        return [StopVMOperations(vm_queue_workflow_id(ref))]
    generation = meta.generation or 0
    target = vm.requested_snapshot_name
    if target:
        return [Operation(kind=OperationKind.REVERT, vm=ref, snapshot_name=target, vm_generation=generation,
                          summary=f"revert {meta.name} to snapshot {target}")]
    condition = vm.revert_condition
    if condition is not None and not vm.spec.current_snapshot_name and not _revert_finishing(vm, condition):
        return [Operation(kind=OperationKind.REVERT, vm=ref, snapshot_name="", vm_generation=generation,
                          summary=f"abort revert of {meta.name}")]
    return []


def _revert_finishing(vm: VirtualMachine, condition: Condition) -> bool:
    """The request was cleared by the revert itself: the VM was restored (which clears spec.currentSnapshotName)
    by the revert whose InProgress condition is still on, and that revert removes the condition next. No abort
    is needed then (each would be a workflow of its own, after every revert)."""
    if condition.reason != RevertReason.IN_PROGRESS or condition.observed_generation is None:
        return False
    restored_by = vm.metadata.annotation(WORKFLOW_ID_ANNOTATION) or ""
    prefix = Operation(kind=OperationKind.REVERT, vm=VMRef(namespace=vm.namespace or "", name=vm.name or ""),
                       snapshot_name="", vm_generation=condition.observed_generation).workflow_id
    head, _, generation = prefix.rpartition("//")  # revert-snapshot/<ns>/<vm>/<snapshot>/g<generation>
    return restored_by.startswith(head + "/") and restored_by.endswith("/" + generation)


# --- what the decisions read: the dispatcher's lanes and the informers' cache are keyed and trimmed by it -------

def vm_key(plural: str, obj: dict[str, Any]) -> tuple[str, str, str]:
    """The VM whose queue the object's operations go to, as the dispatcher's lane key: a snapshot's spec.vmName
    (what `snapshot_actions` uses), a VM's own name. A snapshot without spec.vmName asks for nothing; it gets a
    lane of its own."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    if plural == VM_PLURAL:
        return ("vm", namespace, meta.get("name") or "")
    vm_name = (obj.get("spec") or {}).get("vmName")
    return ("vm", namespace, vm_name) if vm_name else ("snapshot", namespace, meta.get("name") or "")


_META_READ = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
              "deletionTimestamp", "finalizers")


def _trimmed_meta(meta: dict[str, Any], annotations: tuple[str, ...]) -> dict[str, Any]:
    out = {k: meta[k] for k in _META_READ if k in meta}
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in annotations}
    if kept:
        out["annotations"] = kept
    return out


def snapshot_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a VirtualMachineSnapshot that `snapshot_actions` reads (metadata without managedFields, labels
    or other annotations; the spec; status conditions), and a group member's parent span: what the bridge caches
    and hands over."""
    out: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "spec") if k in obj}
    out["metadata"] = _trimmed_meta(obj.get("metadata") or {}, (CSI_VOLUME_SYNC_ANNOTATION,
                                                                GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION))
    conditions = (obj.get("status") or {}).get("conditions")
    if conditions is not None:
        out["status"] = {"conditions": conditions}
    return out


def vm_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of a VirtualMachine that `vm_actions` reads (metadata without managedFields, labels or
    annotations; spec.currentSnapshotName; status conditions). A VM Operator VM's spec and status are large
    (network, bootstrap, volumes…) and none of it matters here."""
    out: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    out["metadata"] = _trimmed_meta(obj.get("metadata") or {}, (WORKFLOW_ID_ANNOTATION,))
    spec = obj.get("spec") or {}
    if "currentSnapshotName" in spec:
        out["spec"] = {"currentSnapshotName": spec["currentSnapshotName"]}
    conditions = (obj.get("status") or {}).get("conditions")
    if conditions is not None:
        out["status"] = {"conditions": conditions}
    return out
