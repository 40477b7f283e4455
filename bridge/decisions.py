"""What a watched object asks for, decided from the object alone (pure, so it is unit-tested on its own).
The CR's status is the primary record of what is done; Temporal's workflow IDs are the second line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api import VirtualMachineSnapshot
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
