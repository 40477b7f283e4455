"""The scheduled run's Kubernetes steps (activities/kube_schedule.py) over an in-memory cluster: a VM at vSphere's
per-VM limit is skipped with the reason, and pruning deletes only the schedule's own Ready snapshots, never one a
VM's spec.currentSnapshotName names, never one made by hand (the label alone is not enough)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from activities.kube_schedule import KubeScheduleActivities
from activities.schedule_payloads import PruneRequest, RunRequest, ScheduleRef
from api import VirtualMachine
from api.names import SNAPSHOT_PLURAL, VM_PLURAL
from api.schedule import VirtualMachineSnapshotSchedule
from api.schedule_names import SCHEDULE_LABEL, SCHEDULE_UID_ANNOTATION, SCHEDULED_TIME_ANNOTATION

NS, UID = "team-a", "uid-1"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def snapshot(name: str, vm: str, *, ours: bool = True, labelled: bool = True, ready: bool = True,
             at: datetime = T0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": f"u-{name}", "labels": {}, "annotations": {}}
    if labelled:
        meta["labels"][SCHEDULE_LABEL] = "nightly"
    if ours:
        meta["annotations"] |= {SCHEDULE_UID_ANNOTATION: UID,
                                SCHEDULED_TIME_ANNOTATION: at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    conditions = [{"type": "VirtualMachineSnapshotReady", "status": "True" if ready else "False",
                   "reason": "True" if ready else "VirtualMachineSnapshotWaitingForCreation", "message": "",
                   "lastTransitionTime": "2026-12-01T00:00:00Z"}]
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
        if label_selector:
            key, value = label_selector.split("=")
            items = [i for i in items if i["metadata"]["labels"].get(key) == value]
        return items
    kube.list_objects.side_effect = list_objects
    deleted: list[str] = []
    run = KubeScheduleActivities(kube, mock.MagicMock())
    run.schedules = mock.MagicMock()
    run.schedules.get_schedule.return_value = schedule
    run.schedules.delete_snapshot.side_effect = lambda ns, name, uid: deleted.append(name) or True
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
