"""The VirtualMachineSnapshotSchedule object (vmsnap.io/v1alpha1): snapshots of a set of VMs taken on a cron
schedule, pruned by retention rules. Models, the whole spec check (admission's and the bridge's), the names a
schedule gives to what it makes (Temporal Schedule ID, snapshot names), and the failing-VM bookkeeping (which VMs'
snapshots failed how many runs in a row, and the VMsFailing condition that follows from it). Pure: no I/O, no
clock.

The snapshot template is VirtualMachineSnapshot's own fields (api.virtualmachinesnapshot.QuiesceSpec, checked by
api.duration as a snapshot's are), so a template passes exactly when a snapshot made from it would.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from .conditions import Condition, get_condition, is_true, set_condition
from .cron import ParsedSchedule, parse_schedule
from .duration import parse_duration_seconds, quiesce_timeout_problem
from .limits import MAX_SNAPSHOT_NAME_LENGTH, MAX_SNAPSHOTS_PER_VM
from .meta import ApiModel, KubeObject, KubeTime, kube_time
from .names import ConditionStatus
from .retention import RetentionRules
from .schedule_messages import vms_failing
from .schedule_names import (
    SCHEDULE_API_VERSION,
    SCHEDULE_KIND,
    SPEC_RETENTION_KEEP_FAILED_PATH,
    SPEC_RETENTION_MAX_AGE_PATH,
    SPEC_RETENTION_PATH,
    SPEC_SCHEDULE_PATH,
    SPEC_SPREAD_WINDOW_PATH,
    SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH,
    SPEC_TIME_ZONE_PATH,
    SPEC_VM_FAILURES_BEFORE_ALERT_PATH,
    SPEC_VM_NAMES_PATH,
    SPEC_VM_SELECTOR_PATH,
    ScheduleConditionType,
    ScheduleReason,
)
from .virtualmachinesnapshot import QuiesceSpec

DEFAULT_TIME_ZONE = "UTC"
DEFAULT_FAILED_RUNS_BEFORE_SUSPEND = 3
# failed snapshot objects kept per VM: the newest failure stays visible (`kubectl describe vmsnapshot`)
DEFAULT_KEEP_FAILED = 1
# a failed object counts towards the VM's snapshots like any other (the skip at vSphere's per-VM limit)
MAX_KEEP_FAILED = MAX_SNAPSHOTS_PER_VM
# runs in a row a VM's snapshot failed before the schedule says so (VMsFailing, a Warning Event, the metric)
DEFAULT_VM_FAILURES_BEFORE_ALERT = 3
# a failure's text kept per failing VM in the status (vSphere's messages can be long)
MAX_FAILURE_TEXT = 300
# how far back a run missed while Temporal was down is still made up for: one interval, so at most one is
# (Temporal's own floor is 10 s)
MIN_CATCHUP_WINDOW = timedelta(seconds=10)

# --- messages (the CRD's CEL rules say the same where CEL can check) -----------------------------------------

VMS_EXACTLY_ONE = f"exactly one of {SPEC_VM_SELECTOR_PATH} and {SPEC_VM_NAMES_PATH} must be set"
RETENTION_KEEPS_NOTHING = (f"{SPEC_RETENTION_PATH} keeps nothing: set keepLast, hourly, daily, weekly or monthly "
                           f"above 0, or maxAge")


def not_a_count(path: str, value: int, most: int | None = None) -> str:
    bounds = "0 or more" if most is None else f"from 0 to {most}"
    return f"{path} {value} must be a whole number {bounds}"


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
    # failed snapshot objects of each VM kept (the newest ones); the rest are pruned. Default DEFAULT_KEEP_FAILED.
    keep_failed: int | None = Field(default=None, alias="keepFailed")

    @property
    def failed_to_keep(self) -> int:
        return DEFAULT_KEEP_FAILED if self.keep_failed is None else self.keep_failed

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
    vm_failures_before_alert: int | None = Field(default=None, alias="vmFailuresBeforeAlert")

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
    def vm_failures_limit(self) -> int:
        """Runs in a row a VM's snapshot failed before it is reported (VMsFailing); 0 never reports."""
        value = self.vm_failures_before_alert
        return DEFAULT_VM_FAILURES_BEFORE_ALERT if value is None else value

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


class FailingVM(ApiModel):
    """A VM whose scheduled snapshot failed in the last runs that reached it (a skipped run leaves it as it is)."""

    name: str
    consecutive_failures: int = Field(alias="consecutiveFailures")
    # the scheduled time of the first failed run of this streak: the VM has no new snapshot since
    failing_since: KubeTime | None = Field(default=None, alias="failingSince")
    # the last failure: the snapshot's condition reason and message, or why the create was refused
    last_failure: str = Field(default="", alias="lastFailure")


class VirtualMachineSnapshotScheduleStatus(ApiModel):
    conditions: list[Condition] | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    last_run_time: KubeTime | None = Field(default=None, alias="lastRunTime")
    next_run_time: KubeTime | None = Field(default=None, alias="nextRunTime")
    last_run: LastRun | None = Field(default=None, alias="lastRun")
    consecutive_failed_runs: int | None = Field(default=None, alias="consecutiveFailedRuns")
    snapshots_kept: int | None = Field(default=None, alias="snapshotsKept")
    failing_vms: list[FailingVM] | None = Field(default=None, alias="failingVMs")


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
    keep_failed = spec.retention.keep_failed
    if keep_failed is not None and not 0 <= keep_failed <= MAX_KEEP_FAILED:
        problems.append((SPEC_RETENTION_KEEP_FAILED_PATH,
                         not_a_count(SPEC_RETENTION_KEEP_FAILED_PATH, keep_failed, MAX_KEEP_FAILED)))
    alert_after = spec.vm_failures_before_alert
    if alert_after is not None and alert_after < 0:
        problems.append((SPEC_VM_FAILURES_BEFORE_ALERT_PATH,
                         not_a_count(SPEC_VM_FAILURES_BEFORE_ALERT_PATH, alert_after)))
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


# --- failed snapshots and failing VMs -------------------------------------------------------------------------


def failure_text(condition: Condition) -> str:
    """`<reason>: <message>`, as a run reports a failed snapshot."""
    return f"{condition.reason}: {condition.message}" if condition.message else condition.reason


def failing_after_run(previous: Sequence[FailingVM] | None, *, succeeded: Iterable[str],
                      failed: Mapping[str, str], skipped: Iterable[str], at: datetime) -> list[FailingVM]:
    """The failing VMs once a run scheduled at `at` is recorded: a VM whose snapshot failed counts one more run
    (its streak starting at `at` if it is new) with this failure, one whose snapshot was made is dropped, one the
    run skipped stays as it was, one the run did not reach at all (no longer selected or named) is dropped: the
    schedule no longer answers for it. By name."""
    before = {vm.name: vm for vm in previous or ()}
    kept = set(skipped)
    after = {name: vm for name, vm in before.items() if name in kept}
    for name, why in failed.items():
        streak = before.get(name)
        since = streak.failing_since if streak is not None and streak.failing_since else kube_time(at)
        after[name] = FailingVM(name=name, consecutive_failures=(streak.consecutive_failures if streak else 0) + 1,
                                failing_since=since, last_failure=why[:MAX_FAILURE_TEXT])
    for name in succeeded:
        after.pop(name, None)
    return [after[name] for name in sorted(after)]


def alerting_vms(schedule: VirtualMachineSnapshotSchedule) -> list[FailingVM]:
    """The failing VMs at or past spec.vmFailuresBeforeAlert (none when it is 0)."""
    limit = schedule.spec.vm_failures_limit
    if not limit:
        return []
    return [vm for vm in schedule.status.failing_vms or () if vm.consecutive_failures >= limit]


def with_vms_failing_condition(schedule: VirtualMachineSnapshotSchedule, now: datetime) -> list[Condition]:
    """The status's conditions with VMsFailing as the failing VMs and the spec say (True naming the VMs at or past
    the limit, False otherwise). Both writers (a run's record, the bridge after an edit) use it, so they agree."""
    alerting = alerting_vms(schedule)
    conditions, generation = schedule.status.conditions, schedule.metadata.generation
    if alerting:
        return set_condition(conditions, ScheduleConditionType.VMS_FAILING, ConditionStatus.TRUE,
                             ScheduleReason.TOO_MANY_FAILED_SNAPSHOTS,
                             vms_failing([(vm.name, vm.consecutive_failures, vm.last_failure) for vm in alerting]),
                             now, generation)
    return set_condition(conditions, ScheduleConditionType.VMS_FAILING, ConditionStatus.FALSE,
                         ScheduleReason.NO_VMS_FAILING, "", now, generation)


def vms_failing_condition_stale(schedule: VirtualMachineSnapshotSchedule, now: datetime) -> bool:
    """True when VMsFailing (its status, reason or message) is not what the status and the spec say."""
    wanted = get_condition(with_vms_failing_condition(schedule, now), ScheduleConditionType.VMS_FAILING)
    current = schedule.condition(ScheduleConditionType.VMS_FAILING)
    return (current is None or wanted is None
            or (current.status, current.reason, current.message) != (wanted.status, wanted.reason, wanted.message))
