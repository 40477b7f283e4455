"""ScheduledSnapshotRun: one run of a VirtualMachineSnapshotSchedule, started by its Temporal Schedule (overlap
SKIP: never two at once). Lists the matching VMs, skips those at vSphere's per-VM limit, creates one
VirtualMachineSnapshot per VM (deterministic names: a retried or replayed run finds what it made), spread over
the spread window with durable timers, waits until each is Ready or failed, prunes by the retention rules (the
failed objects by keepFailed) and records the run on the schedule's status, which also counts each VM's failed
runs in a row (the VMsFailing condition). The snapshots themselves are made by the ordinary path (the bridge sees
the objects, the VM's queue runs CreateSnapshot), so the deployment-wide vCenter cap applies to them too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_schedule import KubeScheduleActivities
    from activities.temporal_schedule import ScheduleTemporalActivities
    from api.schedule_messages import not_ready_in_time
    from api.schedule_names import RunResult
    from contract.names import SCHEDULED_RUN_WORKFLOW, temporal_schedule_id
    from contract.schedule_payloads import (
        CreateOutcome,
        CreateRequest,
        PruneRequest,
        RunPlan,
        RunRecord,
        RunRequest,
        RunSnapshots,
        RunSummary,
        SchedulePause,
        ScheduleRef,
        VMTarget,
    )
    from runtime import search_attributes as sa
    from workflows import options

# how often the run looks at its snapshots while waiting: quick at first, then every half minute
FIRST_POLL, MAX_POLL = timedelta(seconds=2), timedelta(seconds=30)
# creates asked for at once without a spread window (the worker runs 32 local activities at a time anyway)
CREATE_BATCH = 20
# a snapshot not Ready by then counts as failed: a create's whole retry schedule (3 × 20 min + quiesce) and time
# in its VM's queue
WAIT_BASE = timedelta(hours=2)

Arg = TypeVar("Arg")
Result = TypeVar("Result")


async def step(activity: Callable[[Any, Arg], Result], arg: Arg, summary: str) -> Result:
    """A short Kubernetes call, as a local activity."""
    return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options.KUBE)


async def temporal(activity: Callable[[Any, Arg], Awaitable[Result]], arg: Arg, summary: str) -> Result:
    """A short call to Temporal about the run's own Schedule, as a local activity."""
    return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options.TEMPORAL)


def scheduled_time() -> datetime:
    """The run's nominal time, which Temporal records on every workflow a Schedule starts (its start time for a
    run started by hand)."""
    info = workflow.info()
    return info.typed_search_attributes.get(sa.SCHEDULED_START_TIME) or info.start_time


def count(name: str, value: int, **labels: str) -> None:
    if value:
        workflow.metric_meter().create_counter(name, "").add(value, labels)


@workflow.defn(name=SCHEDULED_RUN_WORKFLOW)
class ScheduledSnapshotRun:
    @workflow.run
    async def run(self, schedule: ScheduleRef) -> RunSummary:
        scheduled = scheduled_time()
        schedule_id = temporal_schedule_id(schedule.namespace, schedule.name)
        plan = await step(KubeScheduleActivities.plan_run, RunRequest(schedule=schedule, scheduled_time=scheduled),
                          "read the schedule and its VMs")
        if plan is None:  # the object is gone and its Schedule outlived it (the bridge missed the delete)
            await temporal(ScheduleTemporalActivities.delete_schedule, schedule_id, "delete the orphaned Schedule")
            return RunSummary(result="ScheduleGone")
        skipped = {t.vm: t.skip_reason for t in plan.targets if t.skip_reason}
        outcomes = await self._create(plan, scheduled)
        failed = {o.vm: o.error for o in outcomes if o.error}
        created = await self._wait(plan, [o for o in outcomes if not o.error], failed)
        ready = set(created)
        succeeded = sorted(o.vm for o in outcomes if o.snapshot in ready)
        prune = await step(KubeScheduleActivities.prune, PruneRequest(schedule=plan.schedule, now=workflow.now()),
                           "prune by retention")
        result = (RunResult.SUCCEEDED if not failed else
                  RunResult.PARTIALLY_FAILED if created else RunResult.FAILED)
        next_run = await temporal(ScheduleTemporalActivities.next_run_time, schedule_id, "next run time")
        suspends = await step(KubeScheduleActivities.record_run, RunRecord(
            schedule=plan.schedule, workflow_id=workflow.info().workflow_id, scheduled_time=scheduled,
            finished_time=workflow.now(), result=result, created=len(created), failed_vms=failed,
            skipped_vms=skipped, pruned=prune.pruned, kept=prune.kept, next_run_time=next_run,
            succeeded_vms=succeeded),
            "record the run on the schedule")
        if suspends:
            await temporal(ScheduleTemporalActivities.pause_schedule,
                       SchedulePause(schedule_id=schedule_id, note="too many failed runs in a row"),
                       "pause the Schedule")
        count("vmsnap_schedule_runs", 1, result=result)
        count("vmsnap_schedule_snapshots_pruned", len(prune.pruned))
        return RunSummary(result=result, created=sorted(created), failed_vms=failed, skipped_vms=skipped,
                          pruned=prune.pruned, suspended=suspends)

    async def _create(self, plan: RunPlan, scheduled: datetime) -> list[CreateOutcome]:
        """One create per VM not skipped, the i-th of n at i/n of the spread window (durable timers)."""
        todo = [t for t in plan.targets if not t.skip_reason]
        start = workflow.now()
        outcomes: list[CreateOutcome] = []

        def create(target: VMTarget) -> Awaitable[CreateOutcome]:
            return step(KubeScheduleActivities.create_snapshot,
                        CreateRequest(schedule=plan.schedule, stamp=plan.stamp, scheduled_time=scheduled,
                                      target=target), f"create {target.snapshot}")
        if not plan.spread_seconds:
            # all at once, in batches so that one workflow task never schedules hundreds of steps
            for first in range(0, len(todo), CREATE_BATCH):
                outcomes += await asyncio.gather(*(create(t) for t in todo[first:first + CREATE_BATCH]))
            return outcomes
        for i, target in enumerate(todo):
            due = start + timedelta(seconds=plan.spread_seconds * i / len(todo))
            if due > workflow.now():
                await workflow.sleep(due - workflow.now(), summary=f"spread: {target.snapshot} at its turn")
            outcomes.append(await create(target))
        return outcomes

    async def _wait(self, plan: RunPlan, made: list[CreateOutcome], failed: dict[str, str]) -> list[str]:
        """Until each snapshot is Ready or failed (failures go into `failed`); the Ready ones' names."""
        pending = {o.snapshot: o.vm for o in made}
        ready: list[str] = []
        limit = WAIT_BASE + timedelta(minutes=plan.quiesce_minutes or 0)
        deadline, poll = workflow.now() + limit, FIRST_POLL
        while pending and workflow.now() < deadline:
            await workflow.sleep(poll, summary="until this run's snapshots are Ready")
            poll = min(poll * 2, MAX_POLL)
            states = await step(KubeScheduleActivities.read_snapshots,
                                RunSnapshots(schedule=plan.schedule, stamp=plan.stamp), "read this run's snapshots")
            for name, vm in list(pending.items()):
                state = states.get(name)
                if state is None:
                    failed[vm] = f"{name} was deleted before it was Ready"
                elif state.ready:
                    ready.append(name)
                elif not state.failed:
                    continue
                else:
                    failed[vm] = state.failed
                del pending[name]
        for vm in pending.values():
            failed[vm] = not_ready_in_time(int(limit.total_seconds() // 60))
        return ready
