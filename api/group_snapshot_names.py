"""Every string of the VirtualMachineGroupSnapshot API (ours: group vmsnap.io, beside the schedule kind), spelled
once: the kind, the label and annotation its member snapshots carry, conditions, reasons, Events, field paths.

No peer snapshots several VMs as one restorable point; vSphere has no multi-VM snapshot call, so the kind is ours.
v1alpha1: the API is new and may still change.
"""

from __future__ import annotations

from enum import StrEnum

from .schedule_names import SCHEDULE_GROUP, SCHEDULE_VERSION

GROUP_SNAPSHOT_GROUP = SCHEDULE_GROUP
GROUP_SNAPSHOT_VERSION = SCHEDULE_VERSION
GROUP_SNAPSHOT_API_VERSION = f"{GROUP_SNAPSHOT_GROUP}/{GROUP_SNAPSHOT_VERSION}"
GROUP_SNAPSHOT_KIND = "VirtualMachineGroupSnapshot"
GROUP_SNAPSHOT_LIST_KIND = "VirtualMachineGroupSnapshotList"
GROUP_SNAPSHOT_PLURAL = "virtualmachinegroupsnapshots"
GROUP_SNAPSHOT_SINGULAR = "virtualmachinegroupsnapshot"
# `vmgroupsnapshot` mirrors VirtualMachineSnapshot's `vmsnapshot`; `vmgs` is the one people will type
GROUP_SNAPSHOT_SHORT_NAMES: tuple[str, ...] = ("vmgroupsnapshot", "vmgs")
GROUP_SNAPSHOT_CRD_NAME = f"{GROUP_SNAPSHOT_PLURAL}.{GROUP_SNAPSHOT_GROUP}"

# VM Operator's VirtualMachineGroup, read (never written) for spec.vmGroupName: its spec.bootOrder[].members, each a
# VirtualMachine or a nested VirtualMachineGroup, by name, in the same namespace
VM_GROUP_KIND = "VirtualMachineGroup"
VM_GROUP_PLURAL = "virtualmachinegroups"
VM_GROUP_VERSION = "v1alpha5"

# members per group: a group is a restorable point of one application, not a fleet (a schedule is for fleets)
MAX_GROUP_MEMBERS = 64
# the longest time allowed between the first and the last member's snapshot (vCenter's create times)
DEFAULT_MAX_SKEW = "30s"
# how long the whole group may take, from the object's creation, before it is undone
DEFAULT_GROUP_DEADLINE = "30m"

# --- on the member snapshots ----------------------------------------------------------------------------------

# The group's name: selects a group's members (a label value, so group names are at most 63 long).
GROUP_SNAPSHOT_LABEL = "vmsnap.io/group-snapshot"
# The group object's UID: what makes a snapshot the group's own member (with the ownerReference, which garbage
# collection follows when the group is deleted). A label can be put on any snapshot by hand; the saga deletes only
# members carrying this UID.
GROUP_SNAPSHOT_UID_ANNOTATION = "vmsnap.io/group-snapshot-uid"
# The saga's span that made the member (W3C traceparent): the bridge starts the member's create under it, so the
# group is one trace with one create per member in it.
GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION = "vmsnap.io/group-snapshot-traceparent"

# --- conditions, reasons, events ------------------------------------------------------------------------------


class GroupConditionType(StrEnum):
    READY = "Ready"  # every member is Ready and the skew within spec.maxSkew (False: why not, or not yet)
    # spec.revert: every member's VM reverted to its member snapshot, in name order (False: in progress, or which
    # member failed; the members after it were not reverted)
    REVERTED = "Reverted"


class GroupReason(StrEnum):
    INVALID_SPEC = "InvalidSpec"              # the spec cannot be taken (admitted without the webhook)
    IN_PROGRESS = "InProgress"                # the saga is running (message: its phase)
    PREFLIGHT_FAILED = "PreflightFailed"      # a member cannot be snapshotted: nothing was taken
    MEMBER_FAILED = "MemberFailed"            # a member's snapshot failed: every member was removed
    SKEW_EXCEEDED = "SkewExceeded"            # the members' create times lie further apart than spec.maxSkew
    DEADLINE_EXCEEDED = "DeadlineExceeded"    # the group was not Ready within spec.deadline
    COMPENSATING = "Compensating"             # removing the members already taken (message: why)
    REVERT_IN_PROGRESS = "RevertInProgress"   # Reverted=False: the members are being reverted, one by one
    REVERT_FAILED = "RevertFailed"            # Reverted=False: a member's revert failed (message: which, why)


# the reasons after which the group is done for good (no saga runs again for the object)
FINAL_FAILURE_REASONS = frozenset({GroupReason.INVALID_SPEC, GroupReason.PREFLIGHT_FAILED, GroupReason.MEMBER_FAILED,
                                   GroupReason.SKEW_EXCEEDED, GroupReason.DEADLINE_EXCEEDED})


class GroupPhase(StrEnum):
    PREFLIGHT = "Preflight"
    TAKING = "Taking"
    READY = "Ready"
    COMPENSATING = "Compensating"
    FAILED = "Failed"


class GroupEventReason(StrEnum):
    STARTED = "GroupSnapshotStarted"
    READY = "GroupSnapshotReady"
    PREFLIGHT_FAILED = "GroupSnapshotPreflightFailed"
    COMPENSATING = "GroupSnapshotCompensating"
    FAILED = "GroupSnapshotFailed"
    REVERTED = "GroupSnapshotReverted"
    REVERT_FAILED = "GroupSnapshotRevertFailed"


# --- field paths used in refusals -----------------------------------------------------------------------------

GROUP_SPEC_VM_NAMES_PATH = "spec.vmNames"
GROUP_SPEC_VM_SELECTOR_PATH = "spec.vmSelector"
GROUP_SPEC_VM_GROUP_NAME_PATH = "spec.vmGroupName"
GROUP_SPEC_MAX_SKEW_PATH = "spec.maxSkew"
GROUP_SPEC_DEADLINE_PATH = "spec.deadline"
GROUP_SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH = "spec.template.quiesce.timeout"
GROUP_SPEC_REVERT_PATH = "spec.revert"
