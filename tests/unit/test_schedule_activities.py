"""The scheduled run's Kubernetes steps (activities/kube_schedule.py) over an in-memory cluster: a VM at vSphere's
per-VM limit is skipped with the reason; pruning deletes only the schedule's own snapshots, never one a VM's
spec.currentSnapshotName names, never one made by hand (the label alone is not enough), never one still being
made, failed ones by keepFailed, a deselected VM's by the same rules; a create failed for any of its reasons ends
the wait; the record counts each VM's failed runs in a row and reports the VMs at the limit (condition, Events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest

from activities.kube_schedule import KubeScheduleActivities
from api import VirtualMachine
from api.names import SNAPSHOT_PLURAL, VM_PLURAL, SnapshotReason
from api.schedule import VirtualMachineSnapshotSchedule
from api.schedule_names import (
    SCHEDULE_LABEL,
    SCHEDULE_RUN_LABEL,
    SCHEDULE_UID_ANNOTATION,
    SCHEDULED_TIME_ANNOTATION,
    RunResult,
    ScheduleConditionType,
    ScheduleEventReason,
    ScheduleReason,
)
from contract.schedule_payloads import PruneRequest, RunRecord, RunRequest, RunSnapshots, ScheduleRef

NS, UID = "team-a", "uid-1"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def snapshot(name: str, vm: str, *, ours: bool = True, labelled: bool = True, ready: bool = True,
             at: datetime = T0, failed: str = "", deleting: bool = False) -> dict[str, Any]:
    """`failed`: the reason on Created (not Ready then)."""
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"u-{name}", "labels": {}, "annotations": {}}
    if labelled:
        meta["labels"] |= {SCHEDULE_LABEL: "nightly", SCHEDULE_RUN_LABEL: at.strftime("%Y%m%dt%H%M%Sz")}
    if ours:
        meta["annotations"] |= {SCHEDULE_UID_ANNOTATION: UID,
                                SCHEDULED_TIME_ANNOTATION: at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    ready = ready and not failed
    conditions = [{"type": "VirtualMachineSnapshotReady", "status": "True" if ready else "False",
                   "reason": "True" if ready else "VirtualMachineSnapshotWaitingForCreation", "message": "",
                   "lastTransitionTime": "2026-12-01T00:00:00Z"}]
    if failed:
        conditions.append({"type": "VirtualMachineSnapshotCreated", "status": "False", "reason": failed,
                           "message": "it went wrong", "lastTransitionTime": "2026-12-01T00:00:00Z"})
    return {"apiVersion": "vmoperator.vmware.com/v1alpha6", "kind": "VirtualMachineSnapshot", "metadata": meta,
            "spec": {"vmName": vm}, "status": {"conditions": conditions}}


def vm(name: str, current: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "vmoperator.vmware.com/v1alpha6", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NS}, "spec": {"currentSnapshotName": current} if current else {}}


def activities(vms: list[dict], snapshots: list[dict], **spec: Any) -> tuple[KubeScheduleActivities, list[str]]:
    schedule = VirtualMachineSnapshotSchedule.model_validate({
        "metadata": {"name": "nightly", "namespace": NS, "uid": UID, "generation": 1},
        "spec": {"schedule": "@daily", "vmNames": [v["metadata"]["name"] for v in vms],
                 "retention": {"keepLast": 1}, **spec}})
    kube = mock.MagicMock()
    kube.get_vm.side_effect = lambda ns, name: next(
        (VirtualMachine.model_validate(v) for v in vms if v["metadata"]["name"] == name), None)
    kube.list_vms.side_effect = lambda ns: [VirtualMachine.model_validate(v) for v in vms]

    def list_objects(plural: str, namespace: str, label_selector: str | None = None) -> list[dict]:
        items = snapshots if plural == SNAPSHOT_PLURAL else vms if plural == VM_PLURAL else []
        for term in (label_selector or "").split(",") if label_selector else ():
            key, value = term.split("=")
            items = [i for i in items if i["metadata"]["labels"].get(key) == value]
        return items
    kube.list_objects.side_effect = list_objects
    deleted: list[str] = []
    kube.get_schedule.return_value = schedule
    kube.delete_object.side_effect = lambda plural, ns, name, uid: deleted.append(name) or True
    run = KubeScheduleActivities(kube, mock.MagicMock())
    return run, deleted


def test_a_vm_at_the_per_vm_limit_is_skipped_with_the_reason():
    full = [snapshot(f"s{i}", "full-vm", ours=False, labelled=False) for i in range(32)]
    run, _ = activities([vm("full-vm"), vm("ok-vm")], full)
    plan = run.plan_run(RunRequest(schedule=ScheduleRef(namespace=NS, name="nightly"), scheduled_time=T0))
    assert plan is not None
    by_vm = {t.vm: t for t in plan.targets}
    assert "32 snapshots" in by_vm["full-vm"].skip_reason
    assert by_vm["ok-vm"].skip_reason == ""
    assert plan.schedule.uid == UID


def test_a_missing_vm_is_skipped():
    run, _ = activities([vm("here")], [], vmNames=["here", "gone"])
    plan = run.plan_run(RunRequest(schedule=ScheduleRef(namespace=NS, name="nightly"), scheduled_time=T0))
    assert plan is not None
    assert {t.vm: bool(t.skip_reason) for t in plan.targets} == {"here": False, "gone": True}


def test_pruning_spares_what_is_not_its_own_not_ready_or_current():
    snaps = [snapshot("old-1", "a", at=T0), snapshot("old-2", "a", at=T0 + timedelta(days=1)),
             snapshot("new", "a", at=T0 + timedelta(days=2)),
             snapshot("by-hand", "a", ours=False, at=T0 - timedelta(days=9)),      # labelled, made by hand
             snapshot("pending", "a", ready=False, at=T0 - timedelta(days=8)),     # not Ready
             snapshot("current", "b", at=T0), snapshot("b-new", "b", at=T0 + timedelta(days=2))]
    run, deleted = activities([vm("a"), vm("b", current="current")], snaps)
    outcome = run.prune(PruneRequest(schedule=ScheduleRef(namespace=NS, name="nightly", uid=UID),
                                     now=T0 + timedelta(days=3)))
    assert sorted(deleted) == ["old-1", "old-2"] == outcome.pruned
    assert outcome.kept == 3  # new, current (named by b's spec.currentSnapshotName), b-new


def test_a_schedule_of_another_uid_prunes_nothing():
    run, deleted = activities([vm("a")], [snapshot("old", "a"), snapshot("new", "a", at=T0 + timedelta(days=1))])
    outcome = run.prune(PruneRequest(schedule=ScheduleRef(namespace=NS, name="nightly", uid="another"),
                                     now=T0 + timedelta(days=2)))
    assert deleted == [] and outcome.pruned == []


def prune(run: KubeScheduleActivities, days: int = 30):
    return run.prune(PruneRequest(schedule=ScheduleRef(namespace=NS, name="nightly", uid=UID),
                                  now=T0 + timedelta(days=days)))


def test_failed_snapshots_are_pruned_to_keep_failed_per_vm_the_newest_staying():
    day = timedelta(days=1)
    snaps = [snapshot(f"a-fail-{i}", "a", failed=SnapshotReason.TOOLS_NOT_RUNNING, at=T0 + i * day)
             for i in range(3)]
    snaps += [snapshot("a-ok", "a", at=T0 + 3 * day), snapshot("a-ok-old", "a", at=T0 - day),
              snapshot("b-fail-0", "b", failed=SnapshotReason.CREATION_FAILED, at=T0),
              snapshot("b-fail-1", "b", failed=SnapshotReason.DEADLINE_EXCEEDED, at=T0 + day),
              snapshot("b-making", "b", ready=False, at=T0 - 5 * day),                    # still being made
              snapshot("b-gone", "b", failed=SnapshotReason.QUIESCE_FAILED, at=T0 - 6 * day, deleting=True),
              snapshot("b-by-hand", "b", ours=False, failed=SnapshotReason.CREATION_FAILED, at=T0 - 9 * day)]
    run, deleted = activities([vm("a"), vm("b")], snaps)
    outcome = prune(run)
    # default keepFailed 1: each VM's newest failure stays; keepLast 1 for the Ready ones, as before
    assert sorted(deleted) == outcome.pruned == ["a-fail-0", "a-fail-1", "a-ok-old", "b-fail-0"]
    assert outcome.kept == 1  # Ready ones only: a-ok


@pytest.mark.parametrize(("keep_failed", "left"), [(0, set()), (2, {"f-1", "f-2"}), (5, {"f-0", "f-1", "f-2"})])
def test_keep_failed_is_the_rule_for_failed_ones(keep_failed: int, left: set[str]):
    snaps = [snapshot(f"f-{i}", "a", failed=SnapshotReason.CREATION_FAILED, at=T0 + timedelta(hours=i))
             for i in range(3)]
    run, deleted = activities([vm("a")], snaps, retention={"keepLast": 1, "keepFailed": keep_failed})
    prune(run)
    assert {"f-0", "f-1", "f-2"} - set(deleted) == left


def test_a_deselected_vms_snapshots_follow_the_same_rules_nothing_more():
    """A VM no longer selected (here: no longer in vmNames) is not forgotten: its snapshots stay under the rules
    they were made by (keepLast still keeps its newest, maxAge still ages them out, keepFailed still applies);
    being deselected deletes nothing by itself."""
    snaps = [snapshot("old-1", "left", at=T0), snapshot("old-2", "left", at=T0 + timedelta(hours=1)),
             snapshot("old-3", "left", at=T0 + timedelta(hours=2)),
             snapshot("old-f", "left", failed=SnapshotReason.CREATION_FAILED, at=T0),
             snapshot("old-f2", "left", failed=SnapshotReason.CREATION_FAILED, at=T0 + timedelta(hours=1))]
    run, deleted = activities([vm("stays"), vm("left")], snaps, vmNames=["stays"],
                              retention={"keepLast": 2, "maxAge": "72h"})
    assert sorted(prune(run, days=1).pruned) == ["old-1", "old-f"] == sorted(deleted)
    deleted.clear()
    run, deleted = activities([vm("stays"), vm("left")], snaps, vmNames=["stays"],
                              retention={"keepLast": 2, "maxAge": "72h"})
    assert sorted(prune(run, days=4).pruned) == ["old-1", "old-2", "old-3", "old-f"]  # aged out; keepFailed holds


def test_any_create_failed_reason_ends_the_wait_with_the_reason():
    stamp = T0.strftime("%Y%m%dt%H%M%Sz")
    snaps = [snapshot("quiet", "a", failed=SnapshotReason.TOOLS_NOT_RUNNING), snapshot("fine", "b"),
             snapshot("making", "c", ready=False)]
    run, _ = activities([vm("a"), vm("b"), vm("c")], snaps)
    states = run.read_snapshots(RunSnapshots(schedule=ScheduleRef(namespace=NS, name="nightly", uid=UID),
                                             stamp=stamp))
    assert states["quiet"].failed == "ToolsNotRunning: it went wrong" and not states["quiet"].ready
    assert states["fine"].ready and not states["fine"].failed
    assert not states["making"].ready and not states["making"].failed


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the apiserver applies runtime.kube_schedule's status writes: a key left out is kept, null
    removes it, a list is replaced whole."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class Recorded:
    """The schedule's status as the record writes it (update_schedule_status over one stored object, merge-patched
    as the apiserver does)."""

    def __init__(self, run: KubeScheduleActivities, **spec: Any):
        self.obj = VirtualMachineSnapshotSchedule.model_validate({
            "metadata": {"name": "nightly", "namespace": NS, "uid": UID, "generation": 1},
            "spec": {"schedule": "@daily", "vmNames": ["a", "b"], "retention": {"keepLast": 1}, **spec}})

        def update(namespace: str, name: str, mutate) -> VirtualMachineSnapshotSchedule:
            current = VirtualMachineSnapshotSchedule.model_validate(self.obj.to_kube())
            if mutate(current):
                self.obj = VirtualMachineSnapshotSchedule.model_validate(
                    merge_patch(self.obj.to_kube(), {"status": current.status.to_kube()}))
            return self.obj
        run.kube.update_schedule_status.side_effect = update
        self.run, self.runs = run, 0

    def record(self, *, succeeded: list[str], failed: dict[str, str], skipped: dict[str, str] | None = None,
               workflow_id: str | None = None) -> bool:
        self.runs += 1
        at = T0 + timedelta(days=self.runs)
        return self.run.record_run(RunRecord(
            schedule=ScheduleRef(namespace=NS, name="nightly", uid=UID), workflow_id=workflow_id or f"run-{self.runs}",
            scheduled_time=at, finished_time=at, created=len(succeeded), failed_vms=failed,
            skipped_vms=skipped or {}, succeeded_vms=succeeded,
            result=RunResult.PARTIALLY_FAILED if failed and succeeded else RunResult.FAILED if failed
            else RunResult.SUCCEEDED))

    def condition(self):
        return self.obj.condition(ScheduleConditionType.VMS_FAILING)

    def failing_events(self) -> list[str]:
        return [c.args[2] for c in self.run.events.record.call_args_list if c.args[1] == ScheduleEventReason.VM_FAILING]


def test_a_vm_failing_three_runs_in_a_row_is_reported_until_it_succeeds():
    run, _ = activities([vm("a"), vm("b")], [])
    status = Recorded(run)
    for _ in range(2):
        assert status.record(succeeded=["a"], failed={"b": "ToolsNotRunning: no Tools"}) is False
        assert status.condition().status == "False" and status.failing_events() == []
    assert status.obj.status.failing_vms[0].consecutive_failures == 2
    status.record(succeeded=["a"], failed={"b": "ToolsNotRunning: no Tools"})
    condition = status.condition()
    assert (condition.status, condition.reason) == ("True", ScheduleReason.TOO_MANY_FAILED_SNAPSHOTS)
    assert condition.message == "b: 3 failed runs in a row, last: ToolsNotRunning: no Tools"
    (event,) = status.failing_events()
    assert "'b'" in event and "3 failed runs in a row" in event and "ToolsNotRunning: no Tools" in event
    assert "since 2026-12-02T02:00:00Z" in event, "the first failed run's time"
    assert status.obj.status.consecutive_failed_runs == 0, "partially failed runs never suspend the schedule"

    # a retried record (same workflow) counts nothing twice
    status.runs -= 1
    status.record(succeeded=["a"], failed={"b": "ToolsNotRunning: no Tools"}, workflow_id="run-3")
    assert status.obj.status.failing_vms[0].consecutive_failures == 3

    status.record(succeeded=["a"], failed={}, skipped={"b": "at the limit"})  # skipped: still failing, no event
    assert status.condition().status == "True" and len(status.failing_events()) == 2  # the retry's, then none
    status.record(succeeded=["a"], failed={"b": "CreationFailed: disk full"})
    assert status.obj.status.failing_vms[0].consecutive_failures == 4
    assert "4 failed runs" in status.failing_events()[-1] and "disk full" in status.condition().message
    status.record(succeeded=["a", "b"], failed={})
    condition = status.condition()
    assert (condition.status, condition.reason) == ("False", ScheduleReason.NO_VMS_FAILING)
    assert status.obj.status.failing_vms == []
    last = status.obj.status.last_run
    assert last is not None and (last.failed_vms, last.skipped_vms) == ([], []), "no earlier run's VMs left over"


def test_no_report_when_vm_failures_before_alert_is_zero_and_a_deselected_vm_is_forgotten():
    run, _ = activities([vm("a"), vm("b")], [])
    status = Recorded(run, vmFailuresBeforeAlert=0)
    for _ in range(5):
        status.record(succeeded=["a"], failed={"b": "CreationFailed: x"})
    assert status.condition().status == "False" and status.failing_events() == []
    assert status.obj.status.failing_vms[0].consecutive_failures == 5, "still counted, in case it is turned on"
    status.record(succeeded=["a"], failed={})  # b is no longer in the run: not the schedule's to report
    assert status.obj.status.failing_vms == []
