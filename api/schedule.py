"""The VirtualMachineSnapshotSchedule object (vmsnap.io/v1alpha1): snapshots of a set of VMs taken on a cron
schedule, pruned by retention rules. Models, the whole spec check (admission's and the bridge's), and the names
a schedule gives to what it makes (Temporal Schedule ID, snapshot names). Pure: no I/O, no clock.

The snapshot template is VirtualMachineSnapshot's own fields (api.virtualmachinesnapshot.QuiesceSpec, checked by
api.duration as a snapshot's are), so a template passes exactly when a snapshot made from it would.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from .conditions import Condition, get_condition, is_true
from .cron import ParsedSchedule, parse_schedule
from .duration import parse_duration_seconds, quiesce_timeout_problem
from .limits import MAX_SNAPSHOT_NAME_LENGTH
from .meta import ApiModel, KubeObject, KubeTime
from .retention import RetentionRules
from .schedule_names import (
    SCHEDULE_API_VERSION,
    SCHEDULE_KIND,
    SPEC_RETENTION_MAX_AGE_PATH,
    SPEC_RETENTION_PATH,
    SPEC_SCHEDULE_PATH,
    SPEC_SPREAD_WINDOW_PATH,
    SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH,
    SPEC_TIME_ZONE_PATH,
    SPEC_VM_NAMES_PATH,
    SPEC_VM_SELECTOR_PATH,
    ScheduleConditionType,
    ScheduleReason,
)
from .virtualmachinesnapshot import QuiesceSpec

DEFAULT_TIME_ZONE = "UTC"
DEFAULT_FAILED_RUNS_BEFORE_SUSPEND = 3
# how far back a run missed while Temporal was down is still made up for: one interval, so at most one is
# (Temporal's own floor is 10 s)
MIN_CATCHUP_WINDOW = timedelta(seconds=10)

# --- messages (the CRD's CEL rules say the same where CEL can check) -----------------------------------------

VMS_EXACTLY_ONE = f"exactly one of {SPEC_VM_SELECTOR_PATH} and {SPEC_VM_NAMES_PATH} must be set"
RETENTION_KEEPS_NOTHING = (f"{SPEC_RETENTION_PATH} keeps nothing: set keepLast, hourly, daily, weekly or monthly "
                           f"above 0, or maxAge")


def unknown_time_zone(zone: str) -> str:
    return f"{SPEC_TIME_ZONE_PATH} {zone!r} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"


def spread_longer_than_interval(window: str, interval_seconds: int) -> str:
    return (f"{SPEC_SPREAD_WINDOW_PATH} {window!r} is longer than the shortest time between two runs of "
            f"{SPEC_SCHEDULE_PATH} ({timedelta(seconds=interval_seconds)}): a run would still be creating when "
            f"the next one is due")


# --- models ---------------------------------------------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(ApiModel):
    match_labels: dict[str, str] | None = Field(default=None, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, alias="matchExpressions")

    def to_query(self) -> str:
        """The selector as a list call's labelSelector string."""
        terms = [f"{k}={v}" for k, v in sorted((self.match_labels or {}).items())]
        for e in self.match_expressions or []:
            values = ",".join(e.values or [])
            terms.append({"In": f"{e.key} in ({values})", "NotIn": f"{e.key} notin ({values})",
                          "Exists": e.key, "DoesNotExist": f"!{e.key}"}[e.operator])
        return ",".join(terms)


class SnapshotTemplate(ApiModel):
    memory: bool | None = None
    quiesce: QuiesceSpec | None = None
    description: str | None = None


class Retention(ApiModel):
    keep_last: int | None = Field(default=None, alias="keepLast")
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    # a duration: Go (`168h`), words or ISO-8601 (`P7D`), as api.duration reads it
    max_age: str | None = Field(default=None, alias="maxAge")

    def rules(self) -> RetentionRules:
        """ValueError naming spec.retention.maxAge if it does not parse."""
        max_age = None
        if self.max_age is not None:
            max_age = timedelta(seconds=float(parse_duration_seconds(self.max_age,
                                                                     field=SPEC_RETENTION_MAX_AGE_PATH)))
        return RetentionRules(keep_last=self.keep_last or 0, hourly=self.hourly or 0, daily=self.daily or 0,
                              weekly=self.weekly or 0, monthly=self.monthly or 0, max_age=max_age)


class VirtualMachineSnapshotScheduleSpec(ApiModel):
    schedule: str = ""
    time_zone: str | None = Field(default=None, alias="timeZone")
    vm_selector: LabelSelector | None = Field(default=None, alias="vmSelector")
    vm_names: list[str] | None = Field(default=None, alias="vmNames")
    template: SnapshotTemplate = Field(default_factory=SnapshotTemplate)
    retention: Retention = Field(default_factory=Retention)
    suspend: bool | None = None
    failed_runs_before_suspend: int | None = Field(default=None, alias="failedRunsBeforeSuspend")
    spread_window: str | None = Field(default=None, alias="spreadWindow")

    @property
    def zone_name(self) -> str:
        return self.time_zone or DEFAULT_TIME_ZONE

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    @property
    def failed_runs_limit(self) -> int:
        """Consecutive failed runs that suspend the schedule; 0 never does."""
        value = self.failed_runs_before_suspend
        return DEFAULT_FAILED_RUNS_BEFORE_SUSPEND if value is None else value

    @property
    def spread_seconds(self) -> float:
        if not self.spread_window:
            return 0.0
        return float(parse_duration_seconds(self.spread_window, field=SPEC_SPREAD_WINDOW_PATH))

    def parsed_schedule(self) -> ParsedSchedule:
        return parse_schedule(self.schedule)

    def catchup_window(self) -> timedelta:
        return max(MIN_CATCHUP_WINDOW, timedelta(seconds=self.parsed_schedule().min_interval_seconds))


class LastRun(ApiModel):
    scheduled_time: KubeTime | None = Field(default=None, alias="scheduledTime")
    finished_time: KubeTime | None = Field(default=None, alias="finishedTime")
    result: str | None = None
    created: int | None = None
    failed: int | None = None
    skipped: int | None = None
    pruned: int | None = None
    failed_vms: list[str] | None = Field(default=None, alias="failedVMs")
    skipped_vms: list[str] | None = Field(default=None, alias="skippedVMs")
    workflow_id: str | None = Field(default=None, alias="workflowID")


class VirtualMachineSnapshotScheduleStatus(ApiModel):
    conditions: list[Condition] | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_run_time: KubeTime | None = Field(default=None, alias="lastRunTime")
    next_run_time: KubeTime | None = Field(default=None, alias="nextRunTime")
    last_run: LastRun | None = Field(default=None, alias="lastRun")
    consecutive_failed_runs: int | None = Field(default=None, alias="consecutiveFailedRuns")
    snapshots_kept: int | None = Field(default=None, alias="snapshotsKept")


class VirtualMachineSnapshotSchedule(KubeObject):
    api_version: str = Field(default=SCHEDULE_API_VERSION, alias="apiVersion")
    kind: str = SCHEDULE_KIND
    spec: VirtualMachineSnapshotScheduleSpec = Field(default_factory=VirtualMachineSnapshotScheduleSpec)
    status: VirtualMachineSnapshotScheduleStatus = Field(default_factory=VirtualMachineSnapshotScheduleStatus)

    def condition(self, condition_type: str) -> Condition | None:
        return get_condition(self.status.conditions, condition_type)

    @property
    def auto_suspended(self) -> bool:
        """Suspended by its own failed runs at the current generation: an edit of the spec (a new generation)
        resumes it."""
        c = self.condition(ScheduleConditionType.SUSPENDED)
        return (c is not None and is_true(self.status.conditions, ScheduleConditionType.SUSPENDED)
                and c.reason == ScheduleReason.TOO_MANY_FAILED_RUNS
                and c.observed_generation == self.metadata.generation)

    @property
    def should_be_paused(self) -> bool:
        return bool(self.spec.suspend) or self.auto_suspended


# --- the whole check ------------------------------------------------------------------------------------------


def spec_problems(spec: VirtualMachineSnapshotScheduleSpec) -> list[tuple[str, str]]:
    """Every reason the spec cannot be scheduled, as (field path, message naming the field); empty when it can.
    The webhook refuses with them; the bridge reports them as Ready=False (for an object admitted without it)."""
    problems: list[tuple[str, str]] = []
    parsed: ParsedSchedule | None = None
    try:
        parsed = parse_schedule(spec.schedule)
    except ValueError as error:
        problems.append((SPEC_SCHEDULE_PATH, str(error)))
    try:
        ZoneInfo(spec.zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append((SPEC_TIME_ZONE_PATH, unknown_time_zone(spec.zone_name)))
    if (spec.vm_selector is None) == (spec.vm_names is None):
        problems.append((SPEC_VM_SELECTOR_PATH, VMS_EXACTLY_ONE))
    quiesce = spec.template.quiesce
    if quiesce is not None and (problem := quiesce_timeout_problem(quiesce.timeout,
                                                                   field=SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH)):
        problems.append((SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH, problem))
    try:
        if not spec.retention.rules().keeps_something:
            problems.append((SPEC_RETENTION_PATH, RETENTION_KEEPS_NOTHING))
    except ValueError as error:
        problems.append((SPEC_RETENTION_MAX_AGE_PATH, str(error)))
    if spec.spread_window:
        try:
            spread = spec.spread_seconds
        except ValueError as error:
            problems.append((SPEC_SPREAD_WINDOW_PATH, str(error)))
        else:
            if parsed is not None and spread > parsed.min_interval_seconds:
                problems.append((SPEC_SPREAD_WINDOW_PATH,
                                 spread_longer_than_interval(spec.spread_window, parsed.min_interval_seconds)))
    return problems


# --- names ----------------------------------------------------------------------------------------------------


def temporal_schedule_id(namespace: str, name: str) -> str:
    """One Temporal Schedule per object."""
    return f"vm-snapshot-schedule/{namespace}/{name}"


def run_workflow_id_prefix(namespace: str, name: str) -> str:
    """Temporal appends each run's scheduled time to it."""
    return f"scheduled-snapshot-run/{namespace}/{name}"


def run_stamp(scheduled: datetime) -> str:
    """The run's scheduled time (UTC, seconds) as a label value and name part: `20261203t120500z`."""
    return scheduled.astimezone(UTC).strftime("%Y%m%dt%H%M%Sz")


def scheduled_snapshot_name(schedule: str, vm: str, scheduled: datetime) -> str:
    """Deterministic per (schedule, VM, run), so a retried run finds the snapshot it made instead of making a
    second; a DNS subdomain of at most 80 characters (the vSphere name limit). Readable prefix, cut to fit, and a
    hash of the full triple so two cut prefixes never collide."""
    stamp = run_stamp(scheduled)
    digest = hashlib.sha256(f"{schedule}\0{vm}\0{stamp}".encode()).hexdigest()[:6]
    room = MAX_SNAPSHOT_NAME_LENGTH - len(stamp) - len(digest) - 2
    prefix = re.sub("[^a-z0-9-]", "-", f"{schedule}-{vm}".lower())[:room].strip("-") or "s"
    return f"{prefix}-{stamp}-{digest}"
