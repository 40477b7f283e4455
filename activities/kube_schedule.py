"""A scheduled run's Kubernetes steps: read the schedule and its VMs, create one VirtualMachineSnapshot per VM,
read their states, prune by retention (Ready snapshots by the retention rules, failed ones by keepFailed), record
the run on the schedule's status (with each VM's failed runs in a row, the VMsFailing condition and its Events).
Each is convergent (a lost workflow task re-runs it): creates find the snapshot an earlier attempt made by its
deterministic name and the schedule's UID, deletes carry the snapshot's UID as a precondition, the record
recognises its own workflow ID."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from temporalio import activity

from activities.kube.events import EventRecorder
from api import VirtualMachineSnapshot
from api.conditions import set_condition, set_true
from api.duration import quiesce_minutes_or_default
from api.limits import MAX_SNAPSHOTS_PER_VM
from api.meta import format_kube_time, kube_time_from
from api.names import (
    API_VERSION,
    SNAPSHOT_KIND,
    SNAPSHOT_PLURAL,
    VM_NAME_LABEL,
    VM_PLURAL,
)
from api.retention import Taken, failed_to_prune, to_prune
from api.schedule import (
    LastRun,
    VirtualMachineSnapshotSchedule,
    alerting_vms,
    failing_after_run,
    failure_text,
    run_stamp,
    scheduled_snapshot_name,
    with_vms_failing_condition,
)
from api.schedule_messages import (
    MAX_NAMED,
    auto_suspended,
    run_message,
    skipped_at_limit,
    skipped_message,
    snapshot_not_ours,
    vm_failing,
    vm_not_found,
)
from api.schedule_names import (
    RUN_EVENT_REASONS,
    SCHEDULE_LABEL,
    SCHEDULE_RUN_LABEL,
    SCHEDULE_UID_ANNOTATION,
    SCHEDULED_TIME_ANNOTATION,
    RunResult,
    ScheduleConditionType,
    ScheduleEventReason,
    ScheduleReason,
)
from api.virtualmachine import VirtualMachine
from contract.schedule_payloads import (
    CreateOutcome,
    CreateRequest,
    PruneOutcome,
    PruneRequest,
    RunPlan,
    RunRecord,
    RunRequest,
    RunSnapshots,
    ScheduleRef,
    SnapshotState,
    VMTarget,
)
from runtime.kube import Kube, KubeError


class KubeScheduleActivities:
    def __init__(self, kube: Kube, events: EventRecorder):
        self.kube = kube
        self.events = events

    def _own(self, ref: ScheduleRef) -> VirtualMachineSnapshotSchedule | None:
        schedule = self.kube.get_schedule(ref.namespace, ref.name)
        if schedule is None or (ref.uid and schedule.metadata.uid != ref.uid):
            return None
        return schedule

    @activity.defn(name="kube_plan_scheduled_run")
    def plan_run(self, request: RunRequest) -> RunPlan | None:
        """The VMs this run snapshots, each with its snapshot's name or the reason it is skipped; None when the
        schedule object is gone (or is another object of that name)."""
        ref = request.schedule
        schedule = self._own(ref)
        if schedule is None:
            return None
        spec, name = schedule.spec, ref.name
        if spec.vm_names is not None:
            vms: dict[str, VirtualMachine | None] = {n: self.kube.get_vm(ref.namespace, n) for n in spec.vm_names}
        else:
            selector = spec.vm_selector.to_query() if spec.vm_selector else ""
            items = self.kube.list_objects(VM_PLURAL, ref.namespace,
                                           **({"label_selector": selector} if selector else {}))
            vms = {vm.name or "": vm for vm in map(VirtualMachine.model_validate, items)}
        counts: dict[str, int] = defaultdict(int)
        names: set[str] = set()
        for item in self.kube.list_objects(SNAPSHOT_PLURAL, ref.namespace):
            snapshot = VirtualMachineSnapshot.model_validate(item)
            counts[snapshot.vm_name or ""] += 1
            names.add(snapshot.name or "")
        targets = []
        for vm_name in sorted(vms):
            snapshot_name = scheduled_snapshot_name(name, vm_name, request.scheduled_time)
            skip = ""
            if vms[vm_name] is None:
                skip = vm_not_found(vm_name)
            elif snapshot_name not in names and counts[vm_name] >= MAX_SNAPSHOTS_PER_VM:
                skip = skipped_at_limit(vm_name, counts[vm_name])
            targets.append(VMTarget(vm=vm_name, snapshot=snapshot_name, skip_reason=skip))
        quiesce = spec.template.quiesce
        return RunPlan(schedule=ScheduleRef(namespace=ref.namespace, name=name, uid=schedule.metadata.uid or ""),
                       stamp=run_stamp(request.scheduled_time), spread_seconds=spec.spread_seconds,
                       quiesce_minutes=None if quiesce is None else quiesce_minutes_or_default(quiesce.timeout),
                       targets=targets)

    @activity.defn(name="kube_create_scheduled_snapshot")
    def create_snapshot(self, request: CreateRequest) -> CreateOutcome:
        target, ref = request.target, request.schedule
        outcome = CreateOutcome(vm=target.vm, snapshot=target.snapshot)
        schedule = self._own(ref)
        if schedule is None:
            return outcome.model_copy(update={"error": "the schedule was deleted during the run"})
        template = schedule.spec.template
        spec = {"vmName": target.vm, **template.to_kube()}
        spec.setdefault("description", f"taken by {schedule.kind} {ref.name}")
        body = {
            "apiVersion": API_VERSION, "kind": SNAPSHOT_KIND,
            "metadata": {"name": target.snapshot, "namespace": ref.namespace,
                         "labels": {SCHEDULE_LABEL: ref.name, SCHEDULE_RUN_LABEL: request.stamp,
                                    VM_NAME_LABEL: target.vm},
                         "annotations": {SCHEDULE_UID_ANNOTATION: ref.uid,
                                         SCHEDULED_TIME_ANNOTATION: format_kube_time(request.scheduled_time)}},
            "spec": spec,
        }
        try:
            self.kube.create_object(SNAPSHOT_PLURAL, ref.namespace, body)
        except KubeError as e:
            if e.status == 409:
                existing = self.kube.get_snapshot(ref.namespace, target.snapshot)
                if existing is not None and existing.metadata.annotation(SCHEDULE_UID_ANNOTATION) == ref.uid:
                    return outcome  # made by an earlier attempt of this run
                return outcome.model_copy(update={"error": snapshot_not_ours(target.snapshot)})
            if e.status in (400, 403, 422):  # refused by admission or the schema: retrying would not help
                return outcome.model_copy(update={"error": e.message or e.reason})
            raise
        return outcome

    @activity.defn(name="kube_read_scheduled_snapshots")
    def read_snapshots(self, run: RunSnapshots) -> dict[str, SnapshotState]:
        """This run's snapshots by name: Ready, failed for good (any reason of CREATE_FAILED_REASONS on Created:
        vSphere's fault, a guest that did not quiesce, the deadline; as `<reason>: <message>`) or neither yet."""
        selector = f"{SCHEDULE_LABEL}={run.schedule.name},{SCHEDULE_RUN_LABEL}={run.stamp}"
        states: dict[str, SnapshotState] = {}
        for item in self.kube.list_objects(SNAPSHOT_PLURAL, run.schedule.namespace, label_selector=selector):
            snapshot = VirtualMachineSnapshot.model_validate(item)
            failure = snapshot.create_failure
            states[snapshot.name or ""] = SnapshotState(ready=snapshot.is_ready,
                                                        failed="" if failure is None else failure_text(failure))
        return states

    @activity.defn(name="kube_prune_scheduled_snapshots")
    def prune(self, request: PruneRequest) -> PruneOutcome:
        """Delete, through the normal path (the object; the bridge and the VM's queue do the rest), the schedule's
        own snapshots its rules do not keep: Ready ones by the retention rules, failed ones (Created failed for
        good) by keepFailed, each VM's apart, whether or not the VM is still selected; never one still being made,
        never one a VM's spec.currentSnapshotName names. `kept` counts the Ready ones kept."""
        ref = request.schedule
        schedule = self._own(ref)
        if schedule is None:
            return PruneOutcome()
        rules, zone = schedule.spec.retention.rules(), schedule.spec.zone
        keep_failed = schedule.spec.retention.failed_to_keep
        protected = {vm.spec.current_snapshot_name for vm in self.kube.list_vms(ref.namespace)
                     if vm.spec.current_snapshot_name}
        ready: dict[str, list[VirtualMachineSnapshot]] = defaultdict(list)
        failed: dict[str, list[VirtualMachineSnapshot]] = defaultdict(list)
        own = f"{SCHEDULE_LABEL}={ref.name}"
        for item in self.kube.list_objects(SNAPSHOT_PLURAL, ref.namespace, label_selector=own):
            snapshot = VirtualMachineSnapshot.model_validate(item)
            if snapshot.metadata.annotation(SCHEDULE_UID_ANNOTATION) != ref.uid or snapshot.is_being_deleted:
                continue
            if snapshot.is_ready:
                ready[snapshot.vm_name or ""].append(snapshot)
            elif snapshot.create_failure is not None:
                failed[snapshot.vm_name or ""].append(snapshot)
        outcome = PruneOutcome()
        for snapshots in ready.values():
            taken = [Taken(s.name or "", _taken_at(s)) for s in snapshots]
            doomed = set(to_prune(taken, rules, request.now, zone)) - protected
            outcome.kept += len(snapshots) - len(doomed)
            self._delete(ref, snapshots, doomed, outcome)
        for snapshots in failed.values():
            doomed = set(failed_to_prune([Taken(s.name or "", _taken_at(s)) for s in snapshots], keep_failed))
            self._delete(ref, snapshots, doomed - protected, outcome)
        outcome.pruned.sort()
        return outcome

    def _delete(self, ref: ScheduleRef, snapshots: list[VirtualMachineSnapshot], doomed: set[str],
                outcome: PruneOutcome) -> None:
        for snapshot in snapshots:
            if snapshot.name in doomed:
                self.kube.delete_object(SNAPSHOT_PLURAL, ref.namespace, snapshot.name or "",
                                        snapshot.metadata.uid or "")
                outcome.pruned.append(snapshot.name or "")

    @activity.defn(name="kube_record_scheduled_run")
    def record_run(self, record: RunRecord) -> bool:
        """The run onto the schedule's status, and its Events. Each VM's failed runs in a row are counted in
        status.failingVMs (the durable record: the failed objects themselves are pruned), and VMsFailing names the
        VMs at spec.vmFailuresBeforeAlert, each with a Warning Event while it keeps failing. True when this run
        suspends the schedule (too many failed runs in a row): the workflow then pauses the Temporal Schedule."""
        ref = record.schedule
        now = datetime.now(UTC)
        suspends = False

        def mutate(schedule: VirtualMachineSnapshotSchedule) -> bool:
            nonlocal suspends
            status = schedule.status
            if status.last_run is not None and status.last_run.workflow_id == record.workflow_id:
                suspends = schedule.auto_suspended
                return False  # recorded by an earlier attempt
            failures = (status.consecutive_failed_runs or 0) + 1 if record.result == RunResult.FAILED else 0
            status.consecutive_failed_runs = failures
            status.last_run_time = record.scheduled_time
            status.next_run_time = record.next_run_time
            status.snapshots_kept = record.kept
            status.last_run = LastRun(
                scheduled_time=record.scheduled_time, finished_time=record.finished_time, result=record.result,
                created=record.created, failed=len(record.failed_vms), skipped=len(record.skipped_vms),
                pruned=len(record.pruned), failed_vms=sorted(record.failed_vms),
                skipped_vms=sorted(record.skipped_vms), workflow_id=record.workflow_id)
            # lists written empty, never left out: the status is merge-patched, so a key left out would keep the
            # previous run's VMs
            status.failing_vms = failing_after_run(status.failing_vms, succeeded=record.succeeded_vms,
                                                   failed=record.failed_vms, skipped=record.skipped_vms,
                                                   at=record.scheduled_time)
            status.conditions = with_vms_failing_condition(schedule, now)
            limit = schedule.spec.failed_runs_limit
            suspends = bool(limit) and failures >= limit and not schedule.spec.suspend
            if suspends:
                status.conditions = set_condition(
                    status.conditions, ScheduleConditionType.SUSPENDED, "True",
                    ScheduleReason.TOO_MANY_FAILED_RUNS, auto_suspended(failures, record.failed_vms), now,
                    schedule.metadata.generation)
                status.next_run_time = None
            status.conditions = set_true(status.conditions, ScheduleConditionType.READY, now,
                                         schedule.metadata.generation)
            return True

        schedule = self.kube.update_schedule_status(ref.namespace, ref.name, mutate)
        if schedule is not None and schedule.metadata.uid == ref.uid:
            reason = RUN_EVENT_REASONS[record.result]
            self.events.record(schedule, reason, run_message(record.result, record.created, record.failed_vms,
                                                             len(record.skipped_vms), record.pruned),
                               warning=record.result != RunResult.SUCCEEDED)
            if record.skipped_vms:
                self.events.record(schedule, ScheduleEventReason.VMS_SKIPPED, skipped_message(record.skipped_vms),
                                   warning=True)
            if suspends:
                self.events.record(schedule, ScheduleEventReason.SUSPENDED,
                                   auto_suspended(schedule.status.consecutive_failed_runs or 0, record.failed_vms),
                                   warning=True)
            # one per VM that failed again at or past the limit (the first MAX_NAMED: the condition names them all)
            for vm in [vm for vm in alerting_vms(schedule) if vm.name in record.failed_vms][:MAX_NAMED]:
                since = format_kube_time(vm.failing_since) if vm.failing_since else "?"
                self.events.record(schedule, ScheduleEventReason.VM_FAILING,
                                   vm_failing(vm.name, vm.consecutive_failures, since, vm.last_failure),
                                   warning=True)
        return suspends


def _taken_at(snapshot: VirtualMachineSnapshot) -> datetime:
    stamped = snapshot.metadata.annotation(SCHEDULED_TIME_ANNOTATION)
    if stamped:
        return kube_time_from(stamped)
    return snapshot.metadata.creation_timestamp or kube_time_from(None)

