"""The error types activities raise (as `ApplicationError.type`) and the workflows branch on: spelled once here,
so the side that raises and the side that decides never drift apart."""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    # vCenter
    VSPHERE_TASK_FAILED = "VSphereTaskFailed"          # the task ended in a vSphere fault (its message is vSphere's)
    VM_NOT_FOUND = "VSphereVMNotFound"                 # the VM's uniqueID names no vCenter VM
    SNAPSHOT_AMBIGUOUS = "VSphereSnapshotAmbiguous"    # several snapshots of a name and none recorded
    SNAPSHOT_NOT_FOUND = "VSphereSnapshotNotFound"
    SNAPSHOT_MISSING_AFTER_TASK = "VSphereSnapshotMissingAfterTask"
    # Kubernetes
    PRECONDITION_FAILED = "SnapshotPreconditionFailed"  # the snapshot or its VM cannot be snapshotted (yet)
    REVERT_REFUSED = "RevertRefused"                    # detail: the reason for the VM's condition
    INVALID_VM_MANIFEST = "InvalidVMManifest"           # the VM YAML in the snapshot cannot be restored
