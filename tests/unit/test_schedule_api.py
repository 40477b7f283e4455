"""The VirtualMachineSnapshotSchedule API (api/schedule.py, api/cron.py): what the schedule expression accepts and
its shortest interval, the whole spec check (each refusal naming its field), the names a schedule gives, the
failing-VM bookkeeping (failed runs in a row per VM, the VMsFailing condition, the bridge's gauge and its rewrite
of the condition after an edit), and the CRD saying what the Python says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from api.cron import parse_schedule
from api.duration import TIMEOUT_PATTERN
from api.limits import MAX_SNAPSHOT_NAME_LENGTH, VM_NAME_PATTERN
from api.schedule import (
    DEFAULT_KEEP_FAILED,
    DEFAULT_VM_FAILURES_BEFORE_ALERT,
    MAX_KEEP_FAILED,
    RETENTION_KEEPS_NOTHING,
    VMS_EXACTLY_ONE,
    FailingVM,
    LabelSelector,
    VirtualMachineSnapshotSchedule,
    VirtualMachineSnapshotScheduleSpec,
    VirtualMachineSnapshotScheduleStatus,
    alerting_vms,
    failing_after_run,
    failure_text,
    scheduled_snapshot_name,
    spec_problems,
    vms_failing_condition_stale,
    with_vms_failing_condition,
)
from api.schedule_names import (
    SCHEDULE_CRD_NAME,
    SCHEDULE_GROUP,
    SCHEDULE_KIND,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_VERSION,
    ScheduleConditionType,
    ScheduleReason,
)

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy/components/schedules/crds/vmsnap.io_virtualmachinesnapshotschedules.yaml"


def spec(**fields) -> VirtualMachineSnapshotScheduleSpec:
    return VirtualMachineSnapshotScheduleSpec.model_validate(
        {"schedule": "0 2 * * *", "vmNames": ["vm-a"], "retention": {"keepLast": 3}, **fields})


@pytest.mark.parametrize(("text", "seconds"), [
    ("0 2 * * *", 86400), ("*/15 * * * *", 900), ("0,30 8-18 * * 1-5", 1800), ("0 9 * * mon-fri", 86400),
    ("@hourly", 3600), ("@daily", 86400), ("@weekly", 7 * 86400), ("@monthly", 28 * 86400),
    ("0 0 29 2 *", 1461 * 86400), ("@every 5s", 5), ("@every 1h30m", 5400), ("@every PT6H", 6 * 3600),
    ("0 12 * * 7", 7 * 86400), ("5 4 * jan,jul *", 86400),
])
def test_accepted_schedules_and_their_shortest_interval(text: str, seconds: int):
    assert parse_schedule(text).min_interval_seconds == seconds


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"), ("* * * *", "has 4 fields"), ("60 * * * *", "minute '60' is out of range 0-59"),
    ("0 24 * * *", "hour '24' is out of range"), ("0 0 0 * *", "day-of-month '0' is out of range 1-31"),
    ("0 0 * 13 *", "month '13'"), ("0 0 * * 8", "day-of-week '8'"), ("0 0 31 2 *", "never fires"),
    ("*/0 * * * *", "step"), ("5-1 * * * *", "ends before it starts"), ("@often", "unknown macro"),
    ("@every", "needs a duration"), ("@every 0.5s", "whole number of seconds"), ("@every 5", "needs a unit"),
    ("0 0 * * foo", "not a number or a name"),
])
def test_refused_schedules_name_the_field(text: str, says: str):
    with pytest.raises(ValueError) as refusal:
        parse_schedule(text)
    assert str(refusal.value).startswith("spec.schedule")
    assert says in str(refusal.value)


def test_a_good_spec_has_no_problems():
    assert spec_problems(spec(timeZone="Europe/Paris", template={"memory": True, "quiesce": {"timeout": "10min"}},
                              spreadWindow="10m", retention={"daily": 7, "maxAge": "P30D"})) == []
    assert spec_problems(spec(vmNames=None, vmSelector={"matchLabels": {"tier": "db"}})) == []


@pytest.mark.parametrize(("fields", "path"), [
    ({"schedule": "61 * * * *"}, "spec.schedule"),
    ({"timeZone": "Mars/Olympus_Mons"}, "spec.timeZone"),
    ({"timeZone": "../../etc/passwd"}, "spec.timeZone"),
    ({"template": {"quiesce": {"timeout": "2m"}}}, "spec.template.quiesce.timeout"),
    ({"template": {"quiesce": {"timeout": "5h"}}}, "spec.template.quiesce.timeout"),
    ({"template": {"quiesce": {"timeout": "ten"}}}, "spec.template.quiesce.timeout"),
    ({"retention": {}}, "spec.retention"),
    ({"retention": {"keepLast": 0, "daily": 0}}, "spec.retention"),
    ({"retention": {"maxAge": "soon"}}, "spec.retention.maxAge"),
    ({"schedule": "@every 5m", "spreadWindow": "6m"}, "spec.spreadWindow"),
    ({"schedule": "*/15 * * * *", "spreadWindow": "1h"}, "spec.spreadWindow"),
    ({"spreadWindow": "later"}, "spec.spreadWindow"),
    ({"vmSelector": {"matchLabels": {"a": "b"}}}, "spec.vmSelector"),
    ({"retention": {"keepLast": 3, "keepFailed": -1}}, "spec.retention.keepFailed"),
    ({"retention": {"keepLast": 3, "keepFailed": MAX_KEEP_FAILED + 1}}, "spec.retention.keepFailed"),
    ({"vmFailuresBeforeAlert": -2}, "spec.vmFailuresBeforeAlert"),
])
def test_each_refusal_names_its_field(fields: dict, path: str):
    problems = spec_problems(spec(**fields))
    assert len(problems) == 1, problems
    field, message = problems[0]
    assert field == path
    assert message.startswith(path) or f" {path} " in f" {message} "


def test_keep_failed_and_the_vm_alert_are_defaulted_and_zero_is_allowed():
    default = spec()
    assert default.retention.failed_to_keep == DEFAULT_KEEP_FAILED == 1
    assert default.vm_failures_limit == DEFAULT_VM_FAILURES_BEFORE_ALERT == 3
    zero = spec(retention={"keepLast": 3, "keepFailed": 0}, vmFailuresBeforeAlert=0)
    assert spec_problems(zero) == []
    assert (zero.retention.failed_to_keep, zero.vm_failures_limit) == (0, 0)
    assert spec_problems(spec(retention={"keepLast": 3, "keepFailed": MAX_KEEP_FAILED}),) == []
    # keepFailed alone keeps no Ready snapshot: retention still has to keep something
    assert spec_problems(spec(retention={"keepFailed": 3})) == [("spec.retention", RETENTION_KEEPS_NOTHING)]


def test_a_template_refused_as_a_snapshot_is_refused_as_a_template():
    from api.virtualmachinesnapshot import VirtualMachineSnapshotSpec
    for timeout in ("4m", "241m", "-5m", "PT1M"):
        as_snapshot = VirtualMachineSnapshotSpec.model_validate({"vmName": "v", "quiesce": {"timeout": timeout}})
        assert as_snapshot.quiesce_problem() is not None
        assert spec_problems(spec(template={"quiesce": {"timeout": timeout}}))


def test_retention_that_keeps_nothing_and_exactly_one_vm_source_messages():
    assert spec_problems(spec(retention={})) == [("spec.retention", RETENTION_KEEPS_NOTHING)]
    assert spec_problems(spec(vmNames=None)) == [("spec.vmSelector", VMS_EXACTLY_ONE)]


def test_snapshot_names_are_deterministic_short_and_valid():
    at = datetime(2026, 12, 3, 12, 5, 0, tzinfo=UTC)
    assert scheduled_snapshot_name("nightly", "db-1", at) == scheduled_snapshot_name("nightly", "db-1", at)
    assert scheduled_snapshot_name("nightly", "db-1", at).startswith("nightly-db-1-20261203t120500z-")
    assert scheduled_snapshot_name("nightly", "db-1", at) != scheduled_snapshot_name("nightly", "db-2", at)
    long_a = scheduled_snapshot_name("s" * 63, "v" * 62 + "a", at)
    long_b = scheduled_snapshot_name("s" * 63, "v" * 62 + "b", at)
    assert long_a != long_b
    import re
    for name in (long_a, scheduled_snapshot_name("a.b", "vm.with.dots", at)):
        assert len(name) <= MAX_SNAPSHOT_NAME_LENGTH
        assert re.fullmatch(VM_NAME_PATTERN, name), name


def test_label_selector_as_a_query():
    selector = LabelSelector.model_validate({"matchLabels": {"tier": "db", "env": "prod"}, "matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a", "b"]}, {"key": "skip", "operator": "DoesNotExist"}]})
    assert selector.to_query() == "env=prod,tier=db,zone in (a,b),!skip"


def test_auto_suspension_lasts_until_the_spec_changes():
    obj = {"metadata": {"name": "s", "generation": 4}, "spec": {"schedule": "@daily", "vmNames": ["a"],
                                                                 "retention": {"keepLast": 1}},
           "status": {"conditions": [{"type": "Suspended", "status": "True", "reason": "TooManyFailedRuns",
                                      "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z",
                                      "observedGeneration": 4}]}}
    assert VirtualMachineSnapshotSchedule.model_validate(obj).should_be_paused
    obj["metadata"]["generation"] = 5
    assert not VirtualMachineSnapshotSchedule.model_validate(obj).should_be_paused


# --- the CRD says what api/ says --------------------------------------------------------------------------------

def crd() -> dict:
    return yaml.safe_load(CRD.read_text())


def test_crd_names():
    c = crd()
    assert c["metadata"]["name"] == SCHEDULE_CRD_NAME
    assert c["spec"]["group"] == SCHEDULE_GROUP
    assert c["spec"]["names"]["kind"] == SCHEDULE_KIND
    assert c["spec"]["names"]["plural"] == SCHEDULE_PLURAL
    assert tuple(c["spec"]["names"]["shortNames"]) == SCHEDULE_SHORT_NAMES
    assert [v["name"] for v in c["spec"]["versions"]] == [SCHEDULE_VERSION]


def test_crd_rules_say_what_the_python_says():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_schema = schema["properties"]["spec"]
    timeout = spec_schema["properties"]["template"]["properties"]["quiesce"]["properties"]["timeout"]
    assert timeout["x-kubernetes-validations"][0]["rule"] == f"self.matches('{TIMEOUT_PATTERN}')"
    assert spec_schema["properties"]["retention"]["x-kubernetes-validations"][0]["message"] == RETENTION_KEEPS_NOTHING
    assert spec_schema["x-kubernetes-validations"][0]["message"] == VMS_EXACTLY_ONE
    # every spec field of the model is in the schema, and the other way round
    model_fields = {f.alias or n for n, f in VirtualMachineSnapshotScheduleSpec.model_fields.items()}
    assert model_fields == set(spec_schema["properties"])
    keep_failed = spec_schema["properties"]["retention"]["properties"]["keepFailed"]
    assert (keep_failed["type"], keep_failed["minimum"], keep_failed["maximum"]) == ("integer", 0, MAX_KEEP_FAILED)
    assert f"Default {DEFAULT_KEEP_FAILED}" in keep_failed["description"]
    alert = spec_schema["properties"]["vmFailuresBeforeAlert"]
    assert (alert["type"], alert["minimum"]) == ("integer", 0) and "maximum" not in alert
    assert f"Default {DEFAULT_VM_FAILURES_BEFORE_ALERT}" in alert["description"]
    assert "default" not in keep_failed and "default" not in alert, "defaulted by the code, not stored"
    status_schema = schema["properties"]["status"]
    assert {f.alias or n for n, f in VirtualMachineSnapshotScheduleStatus.model_fields.items()} == set(
        status_schema["properties"])
    failing = status_schema["properties"]["failingVMs"]["items"]
    assert {f.alias or n for n, f in FailingVM.model_fields.items()} == set(failing["properties"])
    columns = {c["name"]: c for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    failing_type = ScheduleConditionType.VMS_FAILING
    assert columns["VMs Failing"]["jsonPath"] == f'.status.conditions[?(@.type=="{failing_type}")].status'


# --- failed snapshots and failing VMs ---------------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_a_create_failed_for_good_by_any_of_its_reasons_is_a_failure_and_nothing_else_is():
    from api import VirtualMachineSnapshot
    from api.names import CREATE_FAILED_REASONS, SnapshotReason

    def snapshot(status: str, reason: str, message: str = "") -> VirtualMachineSnapshot:
        return VirtualMachineSnapshot.model_validate({"metadata": {"name": "s"}, "spec": {"vmName": "v"}, "status": {
            "conditions": [{"type": "VirtualMachineSnapshotCreated", "status": status, "reason": reason,
                            "message": message, "lastTransitionTime": "2026-12-01T00:00:00Z"}]}})
    for reason in CREATE_FAILED_REASONS:
        condition = snapshot("False", reason, "why").create_failure
        assert condition is not None and failure_text(condition) == f"{reason}: why"
    assert failure_text(snapshot("False", SnapshotReason.TOOLS_NOT_RUNNING).create_failure) == "ToolsNotRunning"
    assert snapshot("False", SnapshotReason.CREATION_IN_PROGRESS).create_failure is None  # still being made
    assert snapshot("True", "True").create_failure is None
    assert VirtualMachineSnapshot.model_validate({"metadata": {"name": "new"}}).create_failure is None


def test_failed_runs_in_a_row_are_counted_per_vm_and_a_success_ends_them():
    from datetime import timedelta
    runs = [T0 + timedelta(days=i) for i in range(4)]
    failing = failing_after_run(None, succeeded=["a"], failed={"b": "CreationFailed: disk full"}, skipped=[],
                                at=runs[0])
    assert [(v.name, v.consecutive_failures, v.failing_since) for v in failing] == [("b", 1, runs[0])]
    failing = failing_after_run(failing, succeeded=["a"], failed={"b": "ToolsNotRunning: no Tools"}, skipped=[],
                                at=runs[1])
    (b,) = failing
    assert (b.consecutive_failures, b.failing_since, b.last_failure) == (2, runs[0], "ToolsNotRunning: no Tools")
    # skipped (e.g. at the per-VM limit): neither a failure nor a success
    assert failing_after_run(failing, succeeded=["a"], failed={}, skipped=["b"], at=runs[2]) == failing
    # made again: its streak ends
    assert failing_after_run(failing, succeeded=["a", "b"], failed={}, skipped=[], at=runs[2]) == []
    # no longer in the run at all (deselected, or no longer in vmNames): no longer the schedule's to report
    assert failing_after_run(failing, succeeded=["a"], failed={}, skipped=[], at=runs[2]) == []
    # a long failure is cut; the list is by name
    many = failing_after_run(None, succeeded=[], failed={"z": "x" * 5000, "c": "y"}, skipped=[], at=runs[3])
    assert [v.name for v in many] == ["c", "z"] and len(many[1].last_failure) < 1000


def schedule_with(failing: list[tuple[str, int]], **spec_fields) -> VirtualMachineSnapshotSchedule:
    return VirtualMachineSnapshotSchedule.model_validate({
        "metadata": {"name": "nightly", "namespace": "team-a", "uid": "u-1", "generation": 2},
        "spec": {"schedule": "0 2 * * *", "vmNames": ["a", "b", "c"], "retention": {"keepLast": 3}, **spec_fields},
        "status": {"failingVMs": [{"name": n, "consecutiveFailures": k, "failingSince": "2026-12-01T02:00:00Z",
                                   "lastFailure": f"ToolsNotRunning: {n}"} for n, k in failing]}})


def test_the_vms_failing_condition_names_the_vms_at_the_limit_and_clears():
    now = T0
    obj = schedule_with([("a", 1), ("b", 3), ("c", 4)])
    assert [v.name for v in alerting_vms(obj)] == ["b", "c"]
    condition = next(c for c in with_vms_failing_condition(obj, now) if c.type == ScheduleConditionType.VMS_FAILING)
    assert (condition.status, condition.reason) == ("True", ScheduleReason.TOO_MANY_FAILED_SNAPSHOTS)
    assert condition.message.startswith("b: 3 failed runs in a row, last: ToolsNotRunning: b; c: 4")
    assert " a:" not in condition.message and condition.observed_generation == 2
    assert vms_failing_condition_stale(obj, now)
    obj.status.conditions = with_vms_failing_condition(obj, now)
    assert not vms_failing_condition_stale(obj, now)

    obj.status.failing_vms = [FailingVM(name="a", consecutive_failures=2)]  # b and c made their snapshots
    condition = next(c for c in with_vms_failing_condition(obj, now) if c.type == ScheduleConditionType.VMS_FAILING)
    assert (condition.status, condition.reason, condition.message) == ("False", ScheduleReason.NO_VMS_FAILING, "")
    # 0: never reported; a lower limit: reported at once
    assert alerting_vms(schedule_with([("b", 9)], vmFailuresBeforeAlert=0)) == []
    assert [v.name for v in alerting_vms(schedule_with([("a", 1)], vmFailuresBeforeAlert=1))] == ["a"]


def test_the_condition_names_at_most_ten_vms_and_says_how_many_more():
    obj = schedule_with([(f"vm-{i:02d}", 3) for i in range(12)])
    condition = next(c for c in with_vms_failing_condition(obj, T0) if c.type == ScheduleConditionType.VMS_FAILING)
    assert "vm-09" in condition.message and "vm-10" not in condition.message
    assert condition.message.endswith("and 2 more (status.failingVMs)")


# --- the Temporal Schedule the bridge keeps ---------------------------------------------------------------------

def schedule_object(**spec_fields) -> VirtualMachineSnapshotSchedule:
    return VirtualMachineSnapshotSchedule.model_validate({
        "metadata": {"name": "nightly", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"schedule": "0 2 * * *", "vmNames": ["vm-a"], "retention": {"keepLast": 3}, **spec_fields}})


def test_the_temporal_schedule_follows_the_object():
    from datetime import timedelta

    from temporalio.client import ScheduleOverlapPolicy

    from bridge.schedules import desired_schedule, fingerprint

    cron = desired_schedule(schedule_object(timeZone="Europe/Paris"), "q")
    assert list(cron.spec.cron_expressions) == ["0 2 * * *"] and cron.spec.time_zone_name == "Europe/Paris"
    assert cron.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert cron.policy.catchup_window == timedelta(days=1)  # one interval: a missed run is made up once
    assert not cron.state.paused
    assert cron.action.id == "scheduled-snapshot-run/team-a/nightly" and cron.action.task_queue == "q"

    every = desired_schedule(schedule_object(schedule="@every 5s"), "q")
    assert [i.every for i in every.spec.intervals] == [timedelta(seconds=5)] and not every.spec.cron_expressions
    assert every.policy.catchup_window == timedelta(seconds=10)  # Temporal's floor

    assert desired_schedule(schedule_object(suspend=True), "q").state.paused
    base = fingerprint(schedule_object(), "q")
    assert fingerprint(schedule_object(retention={"keepLast": 9}, template={"memory": True}), "q") == base
    assert fingerprint(schedule_object(schedule="@hourly"), "q") != base
    assert fingerprint(schedule_object(suspend=True), "q") != base


async def test_the_bridge_exports_the_failing_vms_and_rewrites_the_condition_after_an_edit():
    """The gauge follows each schedule's status as the bridge sees it (removed with the schedule); an edit of
    spec.vmFailuresBeforeAlert brings VMsFailing up to date at once (no run needed), and an up-to-date condition is
    not written again."""
    from unittest import mock

    from prometheus_client import REGISTRY

    from bridge.schedules import ScheduleSync, fingerprint
    from runtime.informer import Event

    stored = schedule_with([("a", 3), ("b", 1)])
    stored.status.conditions = with_vms_failing_condition(stored, T0)
    writes: list[VirtualMachineSnapshotSchedule] = []

    def update_schedule_status(namespace, name, mutate):
        current = VirtualMachineSnapshotSchedule.model_validate(stored.to_kube())
        if mutate(current):
            writes.append(current)
        return current

    temporal = mock.MagicMock()
    temporal.get_schedule_handle.return_value.delete = mock.AsyncMock()
    sync = ScheduleSync(temporal, "q", mock.MagicMock())
    sync.kube = mock.MagicMock()
    sync.kube.update_schedule_status.side_effect = update_schedule_status

    async def deliver(obj: VirtualMachineSnapshotSchedule, kind: str = "MODIFIED") -> None:
        sync._applied["vm-snapshot-schedule/team-a/nightly"] = fingerprint(obj, "q")  # Temporal is up to date
        await sync.handle(Event(kind, "virtualmachinesnapshotschedules", obj.to_kube()))

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("vmsnap_schedule_failing_vms", {"namespace": "team-a", "schedule": "nightly"})

    await deliver(stored)
    assert gauge() == 1 and writes == []  # "a" at the limit; the condition already says so
    stored.spec.vm_failures_before_alert = 1  # an edit: both VMs are now past it
    await deliver(stored)
    assert gauge() == 2
    (written,) = writes
    condition = written.condition(ScheduleConditionType.VMS_FAILING)
    assert condition is not None and condition.status == "True" and "b: 1 failed run in a row" in condition.message
    await deliver(stored, "DELETED")
    assert gauge() is None
    temporal.get_schedule_handle.return_value.delete.assert_awaited()


def test_a_status_field_emptied_is_written_as_null_not_left_stale():
    """Status writes are merge patches, which keep what they leave out: a paused schedule's nextRunTime set to None
    (or a run's emptied list) is written as an explicit null, so the server drops it."""
    from unittest import mock

    from runtime.kube import Kube

    stored = schedule_object(suspend=True)
    stored.status.next_run_time = T0
    stored.metadata.resource_version = "7"
    kube = Kube(mock.MagicMock())
    kube.custom = mock.MagicMock()
    kube.custom.get_namespaced_custom_object.return_value = stored.to_kube()
    kube.custom.patch_namespaced_custom_object_status.return_value = stored.to_kube()

    def pause(schedule: VirtualMachineSnapshotSchedule) -> bool:
        schedule.status.next_run_time = None
        schedule.status.observed_generation = 2
        return True
    kube.update_schedule_status("team-a", "nightly", pause)
    ((*_, patch), _) = kube.custom.patch_namespaced_custom_object_status.call_args
    assert patch == {"metadata": {"resourceVersion": "7"}, "status": {"nextRunTime": None, "observedGeneration": 2}}
