"""What a watched object asks for, decided from the object alone (pure, so it is unit-tested on its own).
The CR's status is the primary record of what is done; Temporal's workflow IDs are the second line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api import VirtualMachine, VirtualMachineSnapshot
from api.names import CSIVolumeSync, SnapshotConditionType, SnapshotReason
from api.operations import Operation, OperationKind, VMRef


@dataclass(frozen=True)
class SignalCSISynced:
    """Tell a waiting CreateSnapshot that the CSI driver answered."""
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
        return [Operation(kind=OperationKind.DELETE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid,
                          summary=f"delete snapshot {meta.name} of {vm_name}")]
    if snapshot.is_created:
        if snapshot.csi_volume_sync == CSIVolumeSync.COMPLETED and not snapshot.is_csi_synced:
            create = Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid)
            return [SignalCSISynced(create.workflow_id)]
        return []
    created = snapshot.condition(SnapshotConditionType.CREATED)
    if created is not None and created.reason == SnapshotReason.CREATION_FAILED:
        return []  # a finished attempt that failed: the condition says why; delete and recreate to retry
    return [Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=meta.name, snapshot_uid=meta.uid,
                      summary=snapshot.summary())]


def vm_actions(obj: dict[str, Any]) -> list[Operation]:
    """A revert per VM generation while spec.currentSnapshotName is set; an abort (empty name) when it was
    cleared and a failed revert's condition is still on the VM."""
    vm = VirtualMachine.model_validate(obj)
    meta = vm.metadata
    if not meta.name or not meta.namespace or vm.metadata.is_being_deleted:
        return []
    ref = VMRef(namespace=meta.namespace, name=meta.name)
    generation = meta.generation or 0
    target = vm.requested_snapshot_name
    if target:
        return [Operation(kind=OperationKind.REVERT, vm=ref, snapshot_name=target, vm_generation=generation,
                          summary=f"revert {meta.name} to snapshot {target}")]
    if vm.revert_condition is not None and not vm.spec.current_snapshot_name:
        return [Operation(kind=OperationKind.REVERT, vm=ref, snapshot_name="", vm_generation=generation,
                          summary=f"abort revert of {meta.name}")]
    return []
