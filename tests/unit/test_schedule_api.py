"""The VirtualMachineSnapshotSchedule API (api/schedule.py, api/cron.py): what the schedule expression accepts and
its shortest interval, the whole spec check (each refusal naming its field), the names a schedule gives, and the
CRD saying what the Python says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from api.cron import parse_schedule
from api.duration import TIMEOUT_PATTERN
from api.limits import MAX_SNAPSHOT_NAME_LENGTH, VM_NAME_PATTERN
from api.schedule import (
    RETENTION_KEEPS_NOTHING,
    VMS_EXACTLY_ONE,
    LabelSelector,
    VirtualMachineSnapshotSchedule,
    VirtualMachineSnapshotScheduleSpec,
    scheduled_snapshot_name,
    spec_problems,
)
from api.schedule_names import (
    SCHEDULE_CRD_NAME,
    SCHEDULE_GROUP,
    SCHEDULE_KIND,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_VERSION,
)

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy/base/crds/vmsnap.io_virtualmachinesnapshotschedules.yaml"


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
])
def test_each_refusal_names_its_field(fields: dict, path: str):
    problems = spec_problems(spec(**fields))
    assert len(problems) == 1, problems
    field, message = problems[0]
    assert field == path
    assert message.startswith(path) or f" {path} " in f" {message} "


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
