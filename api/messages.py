"""Condition and refusal messages whose exact words are part of VM Operator's behaviour (reference §2–§3).

Kept next to the reasons so users and tools that match on VM Operator's messages see the same text here.
The last section holds our own admission messages, said both by the CRDs' CEL rules and by the webhook.
Messages computed from a value (duration parsing, bounds, counts) live with the code that computes them.
"""

from __future__ import annotations

from .duration import ACCEPTED_FORMS
from .limits import MAX_QUIESCE_TIMEOUT_MINUTES, MAX_VM_NAME_LENGTH, MIN_QUIESCE_TIMEOUT_MINUTES
from .names import (
    QUIESCE_FALLBACK_ANNOTATION,
    SPEC_MEMORY_PATH,
    SPEC_QUEISCE_PATH,
    SPEC_QUEISCE_TIMEOUT_PATH,
    SPEC_QUIESCE_PATH,
    SPEC_QUIESCE_TIMEOUT_PATH,
    SPEC_VM_NAME_PATH,
    VM_KIND,
    VM_NAME_LABEL,
    QuiesceFallback,
)

# --- snapshot admission (reference §2.2) ------------------------------------------------------------------------

VM_NAME_REQUIRED = "vmName must be provided"
FIELD_IMMUTABLE = "field is immutable"
SNAPSHOT_OF_VKS_NODE_FORBIDDEN = "snapshots are not allowed for VKS/TKG nodes"


def vm_name_label_mismatch(vm_name: str) -> str:
    return f'must match {SPEC_VM_NAME_PATH} "{vm_name}"'


def unsupported_scsi_sharing_mode(bus_number: int, sharing_mode: str) -> str:
    return (f"controller type SCSIControllers bus {bus_number} is using unsupported sharingMode for snapshot: "
            f"{sharing_mode}")


# --- VM admission, revert rules (reference §2.3) -----------------------------------------------------------------

CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN = "creating VM with current snapshot is not allowed"
CURRENT_SNAPSHOT_NAME_EMPTY = "currentSnapshotName cannot be empty"
REVERT_ALREADY_IN_PROGRESS = "a snapshot revert is already in progress"
REVERT_OF_VKS_NODE_FORBIDDEN = "snapshot revert is not allowed for VKS nodes"

# --- snapshot conditions (reference §3.2, §3.3) -------------------------------------------------------------------

CREATION_IN_PROGRESS = "snapshot in progress"
CREATION_WAITING_FOR_DISK_REGISTRATION = (
    "Snapshot cannot be created until all unmanaged disk registrations complete")
CSI_SYNC_REQUESTED = "Sync CSI volume requested"
READY_WAITING_FOR_DISK_REGISTRATION = "Snapshot is not ready because disk registration hasn't been completed"
READY_WAITING_FOR_CREATION = "Snapshot is not ready because it doesn't have created condition"
READY_WAITING_FOR_CSI_SYNC = "Snapshot is not ready because CSI volume sync hasn't been completed"

# --- revert condition on the VM (reference §3.8) ------------------------------------------------------------------

REVERT_IN_PROGRESS = "snapshot revert in progress"
REVERT_SKIPPED_FOR_VKS_NODE = "Skipping snapshot revert for VKS node"
NO_VM_YAML_IN_SNAPSHOT = "no VM YAML in snapshot config"
# Appended to vSphere's own revert error when the fault says a CSI VolumeSnapshot lies on the revert path.
REVERT_CROSSES_CSI_VOLUME_SNAPSHOT = (
    " The virtual machine cannot be reverted when crossing a CSI VolumeSnapshot."
    " VolumeSnapshots should be deleted before retrying the revert.")


def revert_failed_to_get_snapshot(snapshot_name: str, error: str) -> str:
    return f'failed to get snapshot object "{snapshot_name}": {error}'


def revert_skipped_not_ready(snapshot_name: str) -> str:
    return f'skipping revert for not-ready snapshot "{snapshot_name}"'


def revert_failed_to_find_vsphere_snapshot(snapshot_name: str, error: str) -> str:
    return f'failed to find vSphere snapshot "{snapshot_name}": {error}'


def revert_failed_to_restore_vm(error: str) -> str:
    return f"failed to restore vm spec and metadata from snapshot: {error}"


# --- ours: said by the CRD's CEL rules and by the webhook alike (a unit test keeps the CRD's text equal) ----------

def _timeout_messages(path: str) -> tuple[str, str]:
    accepted = (f"vSphere accepts {MIN_QUIESCE_TIMEOUT_MINUTES} to {MAX_QUIESCE_TIMEOUT_MINUTES} minutes")
    return (f"{path} must be a duration: {ACCEPTED_FORMS}; {accepted}",
            f"{path} must not be negative: {accepted}")


VM_NAME_MUST_BE_PROVIDED = f"{SPEC_VM_NAME_PATH} must be provided"
VM_NAME_IMMUTABLE = f"{SPEC_VM_NAME_PATH} is immutable"
VM_NAME_NOT_A_VM_NAME = (
    f"{SPEC_VM_NAME_PATH} must be a valid {VM_KIND} name: lowercase letters, digits, '-' and '.', starting and "
    f"ending with a letter or digit (a DNS-1123 subdomain)")
VM_NAME_TOO_LONG_FOR_LABEL = (
    f"{SPEC_VM_NAME_PATH} must be at most {MAX_VM_NAME_LENGTH} characters: it is copied into the label "
    f"{VM_NAME_LABEL}, and a label value has at most {MAX_VM_NAME_LENGTH}")
MEMORY_IMMUTABLE = f"{SPEC_MEMORY_PATH} is immutable"
QUIESCE_IMMUTABLE = f"{SPEC_QUIESCE_PATH} is immutable"
QUIESCE_ALIAS_CONFLICT = (f"{SPEC_QUIESCE_PATH} and {SPEC_QUEISCE_PATH} are both set and differ: set only one "
                          f"({SPEC_QUEISCE_PATH} is accepted as a misspelling of {SPEC_QUIESCE_PATH})")
QUIESCE_TIMEOUT_MALFORMED, QUIESCE_TIMEOUT_NEGATIVE = _timeout_messages(SPEC_QUIESCE_TIMEOUT_PATH)
QUEISCE_TIMEOUT_MALFORMED, QUEISCE_TIMEOUT_NEGATIVE = _timeout_messages(SPEC_QUEISCE_TIMEOUT_PATH)


# --- ours: snapshot ownership and deletes that cannot finish --------------------------------------------------------

def same_name_snapshot_left_alone(name: str, ours: str, others: list[str]) -> str:
    return (f'the VM already has a vSphere snapshot named "{name}" that this object did not make '
            f'({", ".join(others)}): it is left alone, and this object\'s snapshot was made beside it as {ours} '
            f"(vSphere allows several snapshots with one name; this object tracks its own by that reference)")


# what a delete did in vCenter, in the SnapshotDeleted Event
DELETED_REMOVED = "removed"
DELETED_NOT_IN_VCENTER = "not in vCenter"
DELETED_NOTHING_IN_VCENTER = "nothing in vCenter (no vCenter VM recorded)"


def deletion_failed(error: str, attempt: int, next_attempt: str) -> str:
    return (f"vCenter did not remove the snapshot: {error} (attempt {attempt}; next attempt at {next_attempt}; "
            f"the object stays until it is removed; removing the finalizer by hand leaves the vSphere snapshot "
            f"in vCenter)")


# --- ours: why a create cannot start, and why a lookup in vCenter failed ------------------------------------------

def vm_not_found(vm_name: str, namespace: str) -> str:
    return f'VirtualMachine "{vm_name}" not found in namespace "{namespace}"'


def vm_not_in_vsphere_yet(vm_name: str) -> str:
    return f'VirtualMachine "{vm_name}" has not been created in vSphere yet (no uniqueID)'


def vm_has_no_unique_id(vm_name: str) -> str:
    return f'VirtualMachine "{vm_name}" has no uniqueID'


def vcenter_vm_not_found(vm_moref: str) -> str:
    return f"virtual machine {vm_moref} not found in vCenter"


NO_SNAPSHOTS_FOR_VM = "no snapshots for this VM"


def vsphere_snapshot_not_found(name: str, moref: str | None = None) -> str:
    return f'snapshot "{name}" ({moref}) not found' if moref else f'snapshot "{name}" not found'


def vsphere_snapshot_ambiguous(name: str, count: int) -> str:
    return f'"{name}" resolves to {count} snapshots'


def snapshot_task_returned_nothing(name: str) -> str:
    return f'the task creating snapshot "{name}" returned no snapshot'


def snapshot_missing_after_task(name: str, moref: str) -> str:
    return f'snapshot "{name}" ({moref}) is not in the tree after its task'


# --- ours: revert preflight (the reasons are VM Operator's) ----------------------------------------------------------

def snapshot_object_not_found(snapshot_name: str) -> str:
    return f'VirtualMachineSnapshot "{snapshot_name}" not found'


def snapshot_of_another_vm(snapshot_vm: str | None, vm_name: str) -> str:
    return f'it is a snapshot of VirtualMachine "{snapshot_vm}", not "{vm_name}"'


def revert_crosses_volume_snapshots(names: list[str], snapshot_name: str) -> str:
    return (f"CSI VolumeSnapshot {', '.join(names)} of the VM's volumes was taken after snapshot "
            f'"{snapshot_name}".' + REVERT_CROSSES_CSI_VOLUME_SNAPSHOT)


def reverted(snapshot_name: str, snapshot_moref: str, power_state: str) -> str:
    return f"reverted to snapshot {snapshot_name} ({snapshot_moref}); power state {power_state}"


def condition_is_true(condition_type: str) -> str:
    return f"{condition_type} is True"


# --- ours: storage accounting --------------------------------------------------------------------------------------

def vm_has_no_memory_or_storage_class(vm_name: str) -> str:
    return (f'VirtualMachine "{vm_name}" reports no memory size or storage class '
            "(status.hardware.memory.total, spec.storageClass)")


def classic_disk_without_size(volume_name: str) -> str:
    return f'classic disk "{volume_name}" has no size or the VM has no spec.storageClass'


def claim_without_class_or_request(claim_name: str) -> str:
    return f'PersistentVolumeClaim "{claim_name}" has no storage class or request'


def unsupported_volume_type(volume_name: str, volume_type: str) -> str:
    return f'volume "{volume_name}" has unsupported volume type "{volume_type}"'


VM_YAML_HAS_NO_SPEC = "the stored VM YAML has no spec"


# --- ours: what a snapshot captured (the Consistency condition's message and the Event when it differs) -------------

CONSISTENCY_QUIESCED = "the guest was quiesced by VMware Tools before the snapshot (application-consistent)"
CONSISTENCY_NOT_QUIESCED = "the guest was running and not quiesced (crash-consistent)"
CONSISTENCY_POWERED_OFF = "the VM was powered off: its disks were at rest"
CONSISTENCY_WITH_MEMORY = "; its memory was captured, so a revert resumes the running VM"
# why it differs from the spec
QUIESCE_SKIPPED_POWERED_OFF = (
    "quiescing was asked for, but the VM was powered off: vSphere does not quiesce a powered-off guest (its disks "
    "were at rest, which is at least as consistent)")
MEMORY_SKIPPED_POWERED_OFF = "memory was asked for, but the VM was powered off: there was no memory to capture"
QUIESCE_NOT_DONE = "quiescing was asked for, but vSphere reports the snapshot as not quiesced"


def quiesce_fell_back(reason: str, error: str) -> str:
    return (f"quiescing failed ({reason}: {error}); the snapshot was taken again without quiescing, as "
            f"{QUIESCE_FALLBACK_ANNOTATION} asks: it is crash-consistent")


# --- ours: a guest that will not freeze (the create fails; vSphere made nothing) ------------------------------------

def quiesce_refused(error: str) -> str:
    return (f"{error} (vSphere made no snapshot; to take a crash-consistent one instead, set the annotation "
            f"{QUIESCE_FALLBACK_ANNOTATION}: {QuiesceFallback.CRASH_CONSISTENT}, or leave out {SPEC_QUIESCE_PATH})")


# --- ours: deadlines and cancellations -------------------------------------------------------------------------------

def deadline_exceeded(deadline: str, limit: str, step: str, undone: str) -> str:
    return f"the operation did not finish by its deadline {deadline} ({limit}); it was at step: {step}. {undone}"


CREATE_UNDONE = "The vCenter task was cancelled and nothing this create made was left in vCenter."
CREATE_KEPT_FOR_CSI = ("The vSphere snapshot exists and is kept; the CSI driver has not answered the volume sync "
                       "(the snapshot becomes Ready if it still does; delete the object to remove it).")
REVERT_UNDONE = "The vCenter task was cancelled: the VM keeps its previous state."
