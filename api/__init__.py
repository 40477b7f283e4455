"""The VirtualMachineSnapshot API (VM Operator's, group vmoperator.vmware.com, versions v1alpha5 and v1alpha6).

The one place where the project spells the API's strings and rules. Pure Python (stdlib + pydantic), no I/O and
no clock, so workflows, activities, the bridge and its webhook can all import it.

Modules:
  names       group, kinds, labels, annotations, finalizer, condition types, reasons, enumerations, field paths
  limits      vSphere's limits (quiesce 5–240 min, default 10, 80-character names, 32 snapshots per VM)
  messages    the exact condition and refusal messages
  duration    quiesce timeout parsing (Go, words, ISO-8601), rounding to minutes, bounds
  quantity    Kubernetes quantities: parse PVC sizes, print `25Gi` and `"12226581330"`
  conditions  metav1.Condition and pure set/get functions
  meta        base model, object metadata, timestamps
  virtualmachinesnapshot, virtualmachine   the two objects
"""

from . import messages, names
from .conditions import (
                         Condition,
                         get_condition,
                         get_reason,
                         is_false,
                         is_true,
                         remove_condition,
                         set_condition,
                         set_false,
                         set_true,
                         set_unknown,
)
from .duration import (
                         ACCEPTED_FORMS,
                         TIMEOUT_PATTERN,
                         format_minutes,
                         minutes_rounded_up,
                         parse_duration_seconds,
                         parse_timeout_minutes,
                         quiesce_minutes_or_default,
                         quiesce_timeout_bounds_problem,
                         quiesce_timeout_problem,
)
from .limits import (
                         DEFAULT_QUIESCE_TIMEOUT_MINUTES,
                         MAX_QUIESCE_TIMEOUT_MINUTES,
                         MAX_SNAPSHOT_NAME_LENGTH,
                         MAX_SNAPSHOTS_PER_VM,
                         MIN_QUIESCE_TIMEOUT_MINUTES,
                         RECOMMENDED_MAX_SNAPSHOTS_PER_VM,
                         snapshot_count_refusal,
                         snapshot_count_warning,
                         snapshot_name_length_problem,
)
from .meta import ApiModel, KubeTime, ObjectMeta, OwnerReference, QuantityText, format_kube_time, kube_time
from .names import (
                         API_VERSION,
                         API_VERSIONS,
                         GROUP,
                         SERVED_VERSIONS,
                         VERSION,
                         ConditionStatus,
                         ControllerSharingMode,
                         CSIVolumeSync,
                         PowerState,
                         RevertReason,
                         SnapshotConditionType,
                         SnapshotReason,
                         SnapshotReferenceType,
                         VMConditionType,
                         VolumeType,
)
from .quantity import format_binary_bytes, format_plain_bytes, parse_quantity, quantity_bytes
from .virtualmachine import (
                         HardwareSpec,
                         HardwareStatus,
                         InstanceVolumeClaim,
                         MemoryAllocationStatus,
                         PersistentVolumeClaimSource,
                         SCSIControllerSpec,
                         VirtualMachine,
                         VirtualMachineSpec,
                         VirtualMachineStatus,
                         VMSnapshotUsage,
                         VMStorageStatus,
                         VMStorageUsage,
                         VolumeSpec,
                         VolumeStatus,
)
from .virtualmachinesnapshot import (
                         QuiesceSpec,
                         RequestedStorage,
                         SnapshotReference,
                         SnapshotStorageStatus,
                         VirtualMachineSnapshot,
                         VirtualMachineSnapshotSpec,
                         VirtualMachineSnapshotStatus,
)

__all__ = [
    "messages", "names",
    "Condition", "get_condition", "get_reason", "is_false", "is_true", "remove_condition", "set_condition",
    "set_false", "set_true", "set_unknown",
    "ACCEPTED_FORMS", "TIMEOUT_PATTERN", "format_minutes", "minutes_rounded_up", "parse_duration_seconds",
    "parse_timeout_minutes", "quiesce_minutes_or_default", "quiesce_timeout_bounds_problem",
    "quiesce_timeout_problem",
    "DEFAULT_QUIESCE_TIMEOUT_MINUTES", "MAX_QUIESCE_TIMEOUT_MINUTES", "MAX_SNAPSHOT_NAME_LENGTH",
    "MAX_SNAPSHOTS_PER_VM", "MIN_QUIESCE_TIMEOUT_MINUTES", "RECOMMENDED_MAX_SNAPSHOTS_PER_VM",
    "snapshot_count_refusal", "snapshot_count_warning", "snapshot_name_length_problem",
    "ApiModel", "KubeTime", "ObjectMeta", "OwnerReference", "QuantityText", "format_kube_time", "kube_time",
    "API_VERSION", "API_VERSIONS", "GROUP", "SERVED_VERSIONS", "VERSION", "ConditionStatus", "ControllerSharingMode",
    "CSIVolumeSync", "PowerState", "RevertReason", "SnapshotConditionType", "SnapshotReason", "SnapshotReferenceType",
    "VMConditionType", "VolumeType",
    "format_binary_bytes", "format_plain_bytes", "parse_quantity", "quantity_bytes",
    "HardwareSpec", "HardwareStatus", "InstanceVolumeClaim", "MemoryAllocationStatus", "PersistentVolumeClaimSource",
    "SCSIControllerSpec", "VirtualMachine", "VirtualMachineSpec", "VirtualMachineStatus", "VMSnapshotUsage",
    "VMStorageStatus", "VMStorageUsage", "VolumeSpec", "VolumeStatus",
    "QuiesceSpec", "RequestedStorage", "SnapshotReference", "SnapshotStorageStatus", "VirtualMachineSnapshot",
    "VirtualMachineSnapshotSpec", "VirtualMachineSnapshotStatus",
]
