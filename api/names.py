"""Every string of the VirtualMachineSnapshot API, spelled once.

The values are VM Operator's (vmware-tanzu/vm-operator: api/v1alpha6 and its snapshot controller):
a cluster running VM Operator and a cluster running this service must see the same group, kinds, labels,
annotations, condition types and reasons. The rest of the project imports these names and never re-spells them.
"""

from __future__ import annotations

from enum import StrEnum

# --- group, version, kinds -----------------------------------------------------------------------------------

GROUP = "vmoperator.vmware.com"
# Every version our CRDs serve, oldest first: the guide's v1alpha5 and v1alpha6, which VM Operator stores. The
# two schemas are the same (VM Operator's v1alpha6 snapshot API is v1alpha5's), so the CRDs convert with
# strategy None, and the webhooks admit both.
SERVED_VERSIONS: tuple[str, ...] = ("v1alpha5", "v1alpha6")
# The version our CRDs store, and the one this product's own clients (worker, bridge, webhook reads) read and
# write: VM Operator's storage version and conversion hub, so on a cluster with VM Operator nothing we read or
# write goes through a conversion (a revert writes a VM's whole spec: a down-conversion could drop fields that
# only the newest version has).
VERSION = "v1alpha6"
API_VERSION = f"{GROUP}/{VERSION}"
API_VERSIONS: tuple[str, ...] = tuple(f"{GROUP}/{v}" for v in SERVED_VERSIONS)

SNAPSHOT_KIND = "VirtualMachineSnapshot"
SNAPSHOT_LIST_KIND = "VirtualMachineSnapshotList"
SNAPSHOT_PLURAL = "virtualmachinesnapshots"
SNAPSHOT_SINGULAR = "virtualmachinesnapshot"
SNAPSHOT_SHORT_NAME = "vmsnapshot"
SNAPSHOT_CRD_NAME = f"{SNAPSHOT_PLURAL}.{GROUP}"

VM_KIND = "VirtualMachine"
VM_LIST_KIND = "VirtualMachineList"
VM_PLURAL = "virtualmachines"
VM_SINGULAR = "virtualmachine"
VM_SHORT_NAME = "vm"
VM_CRD_NAME = f"{VM_PLURAL}.{GROUP}"

# --- VM Operator's own snapshot controller (runtime/coexistence.py) -------------------------------------------

# VM Operator (pkg/config/capabilities) turns its VirtualMachineSnapshot controller and webhooks on with this
# Supervisor capability. It acts on the same objects and adds the same finalizer (SNAPSHOT_FINALIZER), so where it
# is on this product stands aside: two controllers would take every snapshot twice.
VM_OPERATOR_SNAPSHOT_CAPABILITY = "supports_VM_service_VM_snapshots"
# Where VM Operator reads it: the cluster-scoped Capabilities object, status.supervisor[<capability>].activated as
# the Supervisor's capability controller computes it (external/capabilities/api/v1alpha1)...
CAPABILITIES_GROUP = "iaas.vmware.com"
CAPABILITIES_VERSION = "v1alpha1"
CAPABILITIES_PLURAL = "capabilities"
CAPABILITIES_CRD_NAME = f"{CAPABILITIES_PLURAL}.{CAPABILITIES_GROUP}"
SUPERVISOR_CAPABILITIES_NAME = "supervisor-capabilities"
# ... and, on Supervisors before the Capabilities API, the ConfigMap whose data maps a capability to "true".
CAPABILITIES_CONFIG_MAP_NAMESPACE = "kube-system"
CAPABILITIES_CONFIG_MAP_NAME = "wcp-cluster-capabilities"

# --- finalizers, labels, annotations -------------------------------------------------------------------------

# On the snapshot before any vSphere work, so a snapshot is never orphaned in vCenter.
SNAPSHOT_FINALIZER = "vmoperator.vmware.com/virtualmachinesnapshot"
# The vSphere CSI driver's own finalizer on snapshots; it waits for ours to go first. We never add it.
CSI_SYNC_VOLUME_FINALIZER = "cns.vmware.com/syncvolume"

# Mirrors spec.vmName so snapshots of one VM can be selected by label.
VM_NAME_LABEL = "snapshot.vmoperator.vmware.com/vm-name"

# The handshake with the vSphere CSI driver: we write `requested`, the driver answers `completed`.
CSI_VOLUME_SYNC_ANNOTATION = "csi.vsphere.volume.sync"


class CSIVolumeSync(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"


# Set by the Mobility service on snapshots imported with a VM: a revert may approximate the VM spec
# when the snapshot carries no VM YAML.
IMPORTED_SNAPSHOT_ANNOTATION = "vmoperator.vmware.com/imported-snapshot"
# Objects carrying it bypass the validating webhook (not CEL), as in VM Operator.
SKIP_VALIDATION_ANNOTATION = "vmoperator.vmware.com.protected/skip-validation"
# VM Operator's marker on a VM between the vSphere revert and the Kubernetes restore. VM Operator leaves it
# behind after a failed revert and the VM stays blocked; this service must never leave it behind.
SNAPSHOT_REVERT_IN_PROGRESS_ANNOTATION = "vmoperator.vmware.com/snapshot-revert-in-progress"
# Makes a VKS node's YAML backed up into ExtraConfig despite its CAPI labels.
FORCE_ENABLE_BACKUP_ANNOTATION = "vmoperator.vmware.com/force-enable-backup"

# A VM with any of these label keys (any value) is a VKS/TKG node: it can be neither snapshotted nor reverted.
CAPI_CLUSTER_ROLE_LABELS: tuple[str, ...] = ("capw.vmware.com/cluster.role", "capv.vmware.com/cluster.role")

# Removed from the VM YAML before it is stored in the snapshot: both change without the VM changing.
LAST_APPLIED_CONFIGURATION_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
TOPOLOGY_ZONE_LABEL = "topology.kubernetes.io/zone"

# Ours: the trace of the operation that last worked on the object, to jump from kubectl to the trace viewer.
TRACE_ID_ANNOTATION = "vmsnap.io/trace-id"
# Ours: the Temporal workflow of the operation that last worked on the object (its ID, and a link into the
# Temporal UI when the deployment knows the UI's address), so `kubectl describe` leads straight to it.
WORKFLOW_ID_ANNOTATION = "vmsnap.io/workflow-id"
WORKFLOW_URL_ANNOTATION = "vmsnap.io/workflow-url"
# Ours: the vCenter VM (its managed object ID) a snapshot was taken of, recorded before any vSphere work, so a
# delete still finds the vSphere snapshot when the VirtualMachine object is already gone (standalone clusters,
# where deleting the object does not delete the vCenter VM).
VSPHERE_VM_ANNOTATION = "vmsnap.io/vsphere-vm"

# Ours: per-object choices about what happens when an operation cannot finish (api/operation_policy.py reads
# them; the snapshot webhook refuses bad values, naming the annotation). On a VirtualMachineSnapshot they govern
# its create; on a VirtualMachine, its reverts.
# The longest an operation may take, from the object's creation (a create) or the revert's start: a duration.
FAILURE_DEADLINE_ANNOTATION = "vmsnap.io/failure-deadline"
# What a create does when the guest cannot be quiesced: `fail` (the default) or `crash-consistent`.
QUIESCE_FALLBACK_ANNOTATION = "vmsnap.io/quiesce-fallback"


class QuiesceFallback(StrEnum):
    FAIL = "fail"                          # the snapshot fails with the reason the guest did not freeze
    CRASH_CONSISTENT = "crash-consistent"  # taken again without quiescing, and reported as crash-consistent


# --- vSphere ExtraConfig ---------------------------------------------------------------------------------------

# gzip+base64 YAML of the VirtualMachine object, refreshed before each snapshot so that a revert restores it.
VM_RESOURCE_YAML_EXTRA_CONFIG_KEY = "vmservice.virtualmachine.resource.yaml"
# Ours: the UID of the VirtualMachineSnapshot object a create is for, written into the VM's ExtraConfig in the
# same reconfigure as the YAML, just before the snapshot task, so the snapshot's own config carries it. It is how
# a retried create recognises the snapshot its earlier attempt made, and how a delete knows a snapshot is its
# own: a snapshot someone else made with the same name never carries this object's UID.
SNAPSHOT_OWNER_EXTRA_CONFIG_KEY = "vmsnap.snapshot.owner-uid"

# --- enumerations ----------------------------------------------------------------------------------------------


class PowerState(StrEnum):
    POWERED_ON = "PoweredOn"
    POWERED_OFF = "PoweredOff"
    SUSPENDED = "Suspended"


class SnapshotReferenceType(StrEnum):
    # A snapshot with a VirtualMachineSnapshot object of the same name in the VM's namespace.
    MANAGED = "Managed"
    # A snapshot made directly in vCenter; its reference carries no name.
    UNMANAGED = "Unmanaged"


class VolumeType(StrEnum):
    CLASSIC = "Classic"
    MANAGED = "Managed"


class ControllerSharingMode(StrEnum):
    NONE = "None"
    PHYSICAL = "Physical"
    VIRTUAL = "Virtual"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# --- conditions ------------------------------------------------------------------------------------------------


class SnapshotConditionType(StrEnum):
    CREATED = "VirtualMachineSnapshotCreated"
    CSI_SYNCED = "VirtualMachineSnapshotCSISynced"
    READY = "VirtualMachineSnapshotReady"


# Ours, beside VM Operator's three: present only while a requested delete cannot finish in vCenter (the object
# and its finalizer stay until it does).
SNAPSHOT_DELETED_CONDITION = "VirtualMachineSnapshotDeleted"
# Ours: what the snapshot vCenter made captured (its tree node, never the request). The reason is the consistency
# (ConsistencyReason); the status is False when that is less than the spec asked for, and the message says why.
# VM Operator's schema keeps any condition type, so this survives its CRD where a new status field would not.
SNAPSHOT_CONSISTENCY_CONDITION = "VirtualMachineSnapshotConsistency"


class ConsistencyReason(StrEnum):
    """What a snapshot captured, as the reason of its Consistency condition."""

    # the guest was quiesced by VMware Tools (file systems flushed, VSS writers on Windows): application-consistent
    APPLICATION_CONSISTENT = "ApplicationConsistent"
    APPLICATION_CONSISTENT_WITH_MEMORY = "ApplicationConsistentWithMemory"
    # a running guest, not quiesced: what a power cut would leave on disk
    CRASH_CONSISTENT = "CrashConsistent"
    CRASH_CONSISTENT_WITH_MEMORY = "CrashConsistentWithMemory"
    # the VM was powered off: its disks were at rest (nothing to quiesce, no memory)
    POWERED_OFF = "PoweredOff"


class VMConditionType(StrEnum):
    # Present only after a failed revert; the steady state is no condition at all.
    SNAPSHOT_REVERT_SUCCEEDED = "VirtualMachineSnapshotRevertSucceeded"


# Every True condition carries this reason and an empty message (the guide's status example).
TRUE_REASON = "True"


class SnapshotReason(StrEnum):
    """Reasons of False snapshot conditions."""

    # Created
    CREATION_IN_PROGRESS = "VirtualMachineSnapshotCreationInProgress"
    CREATION_FAILED = "VirtualMachineSnapshotCreationFailed"
    # Created and Ready
    WAITING_FOR_DISK_REGISTRATION = "VirtualMachineSnapshotWaitingForDiskRegistration"
    # CSISynced
    CSI_SYNC_IN_PROGRESS = "VirtualMachineSnapshotCSISyncInProgress"
    # Ready
    WAITING_FOR_CREATION = "VirtualMachineSnapshotWaitingForCreation"
    WAITING_FOR_CSI_SYNC = "VirtualMachineSnapshotWaitingForCSISync"
    # Deleted (ours): vCenter refused or kept failing the removal; retried on a slower schedule
    DELETION_FAILED = "VirtualMachineSnapshotDeletionFailed"
    # Created and Ready (ours): the guest could not be quiesced, and the object did not ask for the crash-consistent
    # fallback; vSphere made nothing
    TOOLS_NOT_RUNNING = "ToolsNotRunning"
    QUIESCE_FAILED = "QuiesceFailed"
    QUIESCE_TIMED_OUT = "QuiesceTimedOut"
    # Created (or CSISynced) and Ready (ours): the create passed its failure deadline; the message names the step
    DEADLINE_EXCEEDED = "DeadlineExceeded"


# A create that ended with one of these on Created is over: the bridge never starts it again (delete and recreate
# the object to retry), and Ready repeats the reason rather than "waiting for creation".
CREATE_FAILED_REASONS = frozenset({SnapshotReason.CREATION_FAILED, SnapshotReason.TOOLS_NOT_RUNNING,
                                   SnapshotReason.QUIESCE_FAILED, SnapshotReason.QUIESCE_TIMED_OUT,
                                   SnapshotReason.DEADLINE_EXCEEDED})
# vSphere's faults (their type names) for a guest that did not freeze, and the reason each becomes. Reference
# (vSphere API): ToolsUnavailable, Tools not running; ApplicationQuiesceFault, a pre-freeze script or VSS writer
# failed; FilesystemQuiesceFault, the freeze outlasted the time vSphere holds off I/O in the frozen guest.
QUIESCE_FAULT_REASONS: dict[str, SnapshotReason] = {
    "ToolsUnavailable": SnapshotReason.TOOLS_NOT_RUNNING,
    "ApplicationQuiesceFault": SnapshotReason.QUIESCE_FAILED,
    "FilesystemQuiesceFault": SnapshotReason.QUIESCE_TIMED_OUT,
}
# ... and of those, ours: Ready repeats them (VM Operator's own CreationFailed keeps Ready's waiting reason)
READY_REPEATS_REASONS = CREATE_FAILED_REASONS - {SnapshotReason.CREATION_FAILED}


class RevertReason(StrEnum):
    """Reasons of a False VirtualMachineSnapshotRevertSucceeded condition on the VM."""

    IN_PROGRESS = "VirtualMachineSnapshotRevertInProgress"
    TASK_FAILED = "VirtualMachineSnapshotRevertTaskFailed"
    FAILED_INVALID_VM_MANIFEST = "VirtualMachineSnapshotRevertFailedInvalidVMManifest"
    SKIPPED = "VirtualMachineSnapshotRevertSkipped"
    FAILED = "VirtualMachineSnapshotRevertFailed"
    # ours: the revert passed its failure deadline before vCenter reverted; the VM keeps its previous state
    DEADLINE_EXCEEDED = "DeadlineExceeded"


class EventReason(StrEnum):
    """Reasons of the Kubernetes Events we record for transitions that have no failure reason of their own
    (a failure's event carries the condition's reason)."""

    SNAPSHOT_CREATED = "SnapshotCreated"
    CSI_VOLUMES_SYNCED = "CSIVolumesSynced"
    SNAPSHOT_READY = "SnapshotReady"
    SNAPSHOT_DELETED = "SnapshotDeleted"
    # a vSphere snapshot of the same name that this object did not make was already on the VM: ours was made
    # beside it (vSphere allows duplicate names) and is tracked by its reference; the other one is left alone
    SAME_NAME_SNAPSHOT_LEFT_ALONE = "SameNameSnapshotLeftAlone"
    SNAPSHOT_REVERTED = "SnapshotReverted"
    # what the snapshot captured differs from what the spec asked for (the message says why)
    SNAPSHOT_CONSISTENCY = "SnapshotConsistency"
    # a delete came while the create was still running: the create was cancelled (and what it made removed)
    CREATE_CANCELLED = "SnapshotCreateCancelled"


# --- field paths used in refusals ------------------------------------------------------------------------------

SPEC_VM_NAME_PATH = "spec.vmName"
SPEC_MEMORY_PATH = "spec.memory"
SPEC_QUIESCE_PATH = "spec.quiesce"
# The guide's third example spells the field this way; we accept it as an alias of spec.quiesce.
SPEC_QUEISCE_PATH = "spec.queisce"
SPEC_QUIESCE_TIMEOUT_PATH = "spec.quiesce.timeout"
SPEC_QUEISCE_TIMEOUT_PATH = "spec.queisce.timeout"
METADATA_NAME_PATH = "metadata.name"
VM_NAME_LABEL_PATH = f"metadata.labels[{VM_NAME_LABEL}]"
SPEC_CURRENT_SNAPSHOT_NAME_PATH = "spec.currentSnapshotName"
