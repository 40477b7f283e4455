"""The bridge's side of VirtualMachineSnapshotSchedule: one Temporal Schedule per object, following it.

Created, updated, paused and resumed as the object changes (and at every resync: the Schedule converges to the
object whatever was missed), deleted with the object. The Schedule's ID is deterministic
(`vm-snapshot-schedule/<ns>/<name>`), so a second bridge or a restarted one finds it; its action starts
ScheduledSnapshotRun with the object's reference; overlap SKIP (a run still going when the next is due: the next
is skipped); the catch-up window is the schedule's shortest interval, so a run missed while Temporal was down is
made up once, not many times. The bridge writes the object's Ready and Suspended conditions and next run time;
the runs write the rest (workflows/scheduled_run.py). VMsFailing is the runs' (status.failingVMs), but the bridge
brings it up to date when an edit of spec.vmFailuresBeforeAlert changes what it says, and exports it as the gauge
vmsnap_schedule_failing_vms. A Schedule whose object went while no bridge watched is deleted by its own next
run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from api.conditions import set_condition, set_false, set_true
from api.schedule import (
    VirtualMachineSnapshotSchedule,
    alerting_vms,
    spec_problems,
    vms_failing_condition_stale,
    with_vms_failing_condition,
)
from api.schedule_names import (
    ScheduleConditionType,
    ScheduleReason,
)
from bridge import metrics
from bridge.object_sync import ObjectSync
from contract.names import SCHEDULED_RUN_WORKFLOW, run_workflow_id_prefix, temporal_schedule_id
from contract.schedule_payloads import ScheduleRef
from runtime import search_attributes as sa
from runtime.informer import Event
from runtime.kube import Kube

log = logging.getLogger("vmsnap.bridge.schedules")


def desired_schedule(schedule: VirtualMachineSnapshotSchedule, task_queue: str) -> Schedule:
    """The Temporal Schedule for a valid object."""
    namespace, name = schedule.namespace or "", schedule.name or ""
    spec = schedule.spec
    parsed = spec.parsed_schedule()
    when = (ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=parsed.every_seconds))])
            if parsed.every_seconds else
            ScheduleSpec(cron_expressions=[parsed.cron or ""], time_zone_name=spec.zone_name))
    action = ScheduleActionStartWorkflow(
        SCHEDULED_RUN_WORKFLOW, args=[ScheduleRef(namespace=namespace, name=name, uid=schedule.metadata.uid or "")],
        id=run_workflow_id_prefix(namespace, name), task_queue=task_queue,
        typed_search_attributes=sa.for_schedule(namespace, name),
        static_summary=f"scheduled snapshots of {namespace}/{name} ({spec.schedule})")
    return Schedule(action=action, spec=when,
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP,
                                          catchup_window=spec.catchup_window()),
                    state=ScheduleState(paused=schedule.should_be_paused, note=_note(schedule)))


def _note(schedule: VirtualMachineSnapshotSchedule) -> str:
    """The Schedule's Notes in the Temporal UI: why it is paused, or whose it is (an edit made in the UI would be
    overwritten at the next sync)."""
    if schedule.spec.suspend:
        return "suspended by spec.suspend"
    if schedule.auto_suspended:
        return "suspended after too many failed runs"
    return (f"kept by vmsnap for VirtualMachineSnapshotSchedule {schedule.namespace}/{schedule.name}: "
            "change that object, not this Schedule")


def fingerprint(schedule: VirtualMachineSnapshotSchedule, task_queue: str) -> tuple[Any, ...]:
    """What the Temporal Schedule depends on: nothing else in the object needs it changed (the runs read the
    template, the VMs and the retention rules from the object itself)."""
    spec = schedule.spec
    return (schedule.metadata.uid, spec.schedule, spec.zone_name, schedule.should_be_paused, task_queue)


class ScheduleSync(ObjectSync):
    what = "schedule"

    def __init__(self, client: Client, task_queue: str, kube: Kube):
        super().__init__()
        self.client = client
        self.task_queue = task_queue
        self.kube = kube
        self._applied: dict[str, tuple[Any, ...]] = {}   # Schedule ID → fingerprint last applied


    async def handle(self, event: Event) -> None:
        schedule = VirtualMachineSnapshotSchedule.model_validate(event.obj)
        namespace, name = schedule.namespace or "", schedule.name or ""
        schedule_id = temporal_schedule_id(namespace, name)
        if event.kind == "DELETED" or schedule.metadata.is_being_deleted:
            with contextlib.suppress(KeyError):  # never had a value (no event seen since this bridge started)
                metrics.SCHEDULE_FAILING_VMS.remove(namespace, name)
            await self._delete(schedule_id)
            return
        metrics.SCHEDULE_FAILING_VMS.labels(namespace, name).set(len(alerting_vms(schedule)))
        if schedule.status.failing_vms and vms_failing_condition_stale(schedule, datetime.now(UTC)):
            await self._write_vms_failing(namespace, name, schedule.metadata.uid)
        problems = spec_problems(schedule.spec)
        if problems:
            await self._delete(schedule_id)  # it no longer describes a schedule; its snapshots stay
            await self._write_status(namespace, name, schedule.metadata.uid,
                                     problems=[message for _, message in problems])
            return
        wanted = fingerprint(schedule, self.task_queue)
        if self._applied.get(schedule_id) == wanted:
            return
        desired = desired_schedule(schedule, self.task_queue)
        try:
            handle = await self.client.create_schedule(schedule_id, desired)
            log.info("created Temporal Schedule %s", schedule_id)
        except ScheduleAlreadyRunningError:
            handle = self.client.get_schedule_handle(schedule_id)
            await handle.update(lambda _: ScheduleUpdate(schedule=desired))
            paused = (await handle.describe()).schedule.state.paused
            if paused != desired.state.paused:
                await (handle.pause(note=desired.state.note) if desired.state.paused
                       else handle.unpause(note=desired.state.note))
        except RPCError as error:
            await self._write_status(namespace, name, schedule.metadata.uid, sync_error=str(error))
            raise
        next_run = None
        if not desired.state.paused:
            times = (await handle.describe()).info.next_action_times
            next_run = min(times) if times else None
        self._applied[schedule_id] = wanted
        await self._write_status(namespace, name, schedule.metadata.uid, next_run=next_run)

    async def _delete(self, schedule_id: str) -> None:
        self._applied.pop(schedule_id, None)
        try:
            await self.client.get_schedule_handle(schedule_id).delete()
            log.info("deleted Temporal Schedule %s", schedule_id)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise

    async def _write_vms_failing(self, namespace: str, name: str, uid: str | None) -> None:
        """VMsFailing as status.failingVMs and the current spec say (an edit of spec.vmFailuresBeforeAlert)."""
        def mutate(schedule: VirtualMachineSnapshotSchedule) -> bool:
            now = datetime.now(UTC)
            if schedule.metadata.uid != uid or not vms_failing_condition_stale(schedule, now):
                return False
            schedule.status.conditions = with_vms_failing_condition(schedule, now)
            return True

        await asyncio.to_thread(self.kube.update_schedule_status, namespace, name, mutate)

    async def _write_status(self, namespace: str, name: str, uid: str | None, *, problems: list[str] | None = None,
                            sync_error: str | None = None, next_run: datetime | None = None) -> None:
        now = datetime.now(UTC)

        def mutate(schedule: VirtualMachineSnapshotSchedule) -> bool:
            if schedule.metadata.uid != uid:
                return False
            status, generation = schedule.status, schedule.metadata.generation
            before = status.to_kube()
            conditions = status.conditions
            ready = ScheduleConditionType.READY
            if problems:
                conditions = set_false(conditions, ready, ScheduleReason.INVALID_SPEC, "; ".join(problems), now,
                                       generation)
            elif sync_error:
                conditions = set_false(conditions, ready, ScheduleReason.SCHEDULE_SYNC_FAILED, sync_error, now,
                                       generation)
            else:
                conditions = set_true(conditions, ready, now, generation)
                suspended = ScheduleConditionType.SUSPENDED
                if schedule.spec.suspend:
                    conditions = set_condition(conditions, suspended, "True", ScheduleReason.SUSPENDED_BY_SPEC,
                                               "spec.suspend is true", now, generation)
                elif not schedule.auto_suspended:
                    if status.consecutive_failed_runs:
                        status.consecutive_failed_runs = 0  # resumed by an edit: counting starts again
                    conditions = set_false(conditions, suspended, ScheduleReason.NOT_SUSPENDED, "", now,
                                           generation)
                status.next_run_time = next_run
            status.conditions = conditions
            status.observed_generation = generation
            return status.to_kube() != before  # an unchanged status is not written (no watch event, no loop)

        await asyncio.to_thread(self.kube.update_schedule_status, namespace, name, mutate)
