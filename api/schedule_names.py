"""Every string of the VirtualMachineSnapshotSchedule API (ours: group vmsnap.io), spelled once.

The kind lives in our own group, not VM Operator's: VM Operator has no schedule, and a kind of ours in its group
would collide with whatever it adds later. v1alpha1: the API is new and may still change.
"""

from __future__ import annotations

from enum import StrEnum

SCHEDULE_GROUP = "vmsnap.io"
SCHEDULE_VERSION = "v1alpha1"
SCHEDULE_API_VERSION = f"{SCHEDULE_GROUP}/{SCHEDULE_VERSION}"
SCHEDULE_KIND = "VirtualMachineSnapshotSchedule"
SCHEDULE_LIST_KIND = "VirtualMachineSnapshotScheduleList"
SCHEDULE_PLURAL = "virtualmachinesnapshotschedules"
SCHEDULE_SINGULAR = "virtualmachinesnapshotschedule"
# `vmsnapshotschedule` mirrors VirtualMachineSnapshot's `vmsnapshot`; `vmss` is the one people will type
SCHEDULE_SHORT_NAMES: tuple[str, ...] = ("vmsnapshotschedule", "vmss")
SCHEDULE_CRD_NAME = f"{SCHEDULE_PLURAL}.{SCHEDULE_GROUP}"

# --- on the snapshots a schedule makes ------------------------------------------------------------------------

# The schedule's name: selects a schedule's snapshots (a label value, so schedule names are at most 63 long).
SCHEDULE_LABEL = "vmsnap.io/schedule"
# The run that made the snapshot (its scheduled time, UTC, as in the snapshot's name): selects one run's snapshots.
SCHEDULE_RUN_LABEL = "vmsnap.io/schedule-run"
# The schedule object's UID: what makes a snapshot the schedule's own work. A label can be put on any snapshot by
# hand; retention deletes only snapshots carrying both the label and this UID. No ownerReference on purpose:
# garbage collection would delete the snapshots with the schedule, and deleting a schedule keeps them.
SCHEDULE_UID_ANNOTATION = "vmsnap.io/schedule-uid"
# The run's scheduled time (RFC 3339, UTC): the time retention rules bucket by (not the creation time, which the
# spread window moves).
SCHEDULED_TIME_ANNOTATION = "vmsnap.io/scheduled-time"

# --- conditions, reasons, events ------------------------------------------------------------------------------


class ScheduleConditionType(StrEnum):
    READY = "Ready"            # the Temporal Schedule follows the object's spec
    SUSPENDED = "Suspended"    # no run is started (spec.suspend, or too many failed runs in a row)
    # some VM's scheduled snapshot failed spec.vmFailuresBeforeAlert runs in a row (message: which VMs, why)
    VMS_FAILING = "VMsFailing"


class ScheduleReason(StrEnum):
    INVALID_SPEC = "InvalidSpec"                       # Ready=False: the spec cannot be scheduled (message: why)
    SCHEDULE_SYNC_FAILED = "ScheduleSyncFailed"        # Ready=False: Temporal refused or could not be reached
    NOT_SUSPENDED = "NotSuspended"                     # Suspended=False
    SUSPENDED_BY_SPEC = "SuspendedBySpec"              # Suspended=True: spec.suspend
    TOO_MANY_FAILED_RUNS = "TooManyFailedRuns"         # Suspended=True: failedRunsBeforeSuspend reached
    TOO_MANY_FAILED_SNAPSHOTS = "TooManyFailedSnapshots"  # VMsFailing=True: a VM reached vmFailuresBeforeAlert
    NO_VMS_FAILING = "NoVMsFailing"                    # VMsFailing=False


class RunResult(StrEnum):
    SUCCEEDED = "Succeeded"              # every matching VM got its snapshot (skipped ones aside)
    PARTIALLY_FAILED = "PartiallyFailed"  # some snapshots were made, some failed
    FAILED = "Failed"                    # snapshots failed and none was made


class ScheduleEventReason(StrEnum):
    RUN_SUCCEEDED = "ScheduledRunSucceeded"
    RUN_PARTIALLY_FAILED = "ScheduledRunPartiallyFailed"
    RUN_FAILED = "ScheduledRunFailed"
    VMS_SKIPPED = "ScheduledRunSkippedVMs"
    SUSPENDED = "ScheduleSuspended"
    # Warning, one per VM and run while the VM's snapshot has failed vmFailuresBeforeAlert or more runs in a row
    VM_FAILING = "ScheduledVMFailing"


RUN_EVENT_REASONS: dict[str, ScheduleEventReason] = {
    RunResult.SUCCEEDED: ScheduleEventReason.RUN_SUCCEEDED,
    RunResult.PARTIALLY_FAILED: ScheduleEventReason.RUN_PARTIALLY_FAILED,
    RunResult.FAILED: ScheduleEventReason.RUN_FAILED,
}

# --- field paths used in refusals -----------------------------------------------------------------------------

SPEC_SCHEDULE_PATH = "spec.schedule"
SPEC_TIME_ZONE_PATH = "spec.timeZone"
SPEC_VM_SELECTOR_PATH = "spec.vmSelector"
SPEC_VM_NAMES_PATH = "spec.vmNames"
SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH = "spec.template.quiesce.timeout"
SPEC_RETENTION_PATH = "spec.retention"
SPEC_RETENTION_MAX_AGE_PATH = "spec.retention.maxAge"
SPEC_RETENTION_KEEP_FAILED_PATH = "spec.retention.keepFailed"
SPEC_VM_FAILURES_BEFORE_ALERT_PATH = "spec.vmFailuresBeforeAlert"
SPEC_SPREAD_WINDOW_PATH = "spec.spreadWindow"
