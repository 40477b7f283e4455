"""ScheduledSnapshotRun's logic with fake activities on the dev server: what it creates (and skips), the spread
over durable timers, waiting for Ready or failed, pruning, the record (counts, failing VMs, the VMs whose snapshot
was made, from which the record counts each VM's failed runs in a row), auto-suspension, and an orphaned Schedule
removing itself, the metrics it counts. One test starts it from a real Temporal Schedule: the
snapshots' names come from the run's scheduled time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.worker import Worker

from api.schedule import failing_after_run, run_stamp, scheduled_snapshot_name
from api.schedule_names import RunResult
from contract.names import SCHEDULED_RUN_WORKFLOW, temporal_schedule_id
from contract.schedule_payloads import (
    CreateOutcome,
    CreateRequest,
    PruneOutcome,
    PruneRequest,
    RunPlan,
    RunRecord,
    RunRequest,
    RunSnapshots,
    RunSummary,
    SchedulePause,
    ScheduleRef,
    SnapshotState,
    VMTarget,
)
from runtime import search_attributes as sa
from workflows.scheduled_run import ScheduledSnapshotRun

pytestmark = pytest.mark.timeout(90)
PATIENCE = 60


@dataclass
class World:
    """The fakes' state: what the run is told and what it did."""

    namespace: str
    vms: list[str] = field(default_factory=lambda: ["vm-a", "vm-b", "vm-c"])
    skip: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)     # VM → admission's refusal
    fail: dict[str, str] = field(default_factory=dict)       # VM → the Created condition's message
    polls_until_done: int = 1
    gone: bool = False
    suspend: bool = False
    pruned: list[str] = field(default_factory=list)
    creates: list[CreateRequest] = field(default_factory=list)
    polls: int = 0
    prunes: list[PruneRequest] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)
    paused: list[SchedulePause] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def ref(self) -> ScheduleRef:
        return ScheduleRef(namespace=self.namespace, name="nightly", uid="uid-1")

    def activities(self) -> list[Callable]:
        @activity.defn(name="kube_plan_scheduled_run")
        def plan(request: RunRequest) -> RunPlan | None:
            if self.gone:
                return None
            return RunPlan(schedule=self.ref(), stamp=run_stamp(request.scheduled_time), spread_seconds=self.spread,
                           targets=[VMTarget(vm=vm, snapshot=scheduled_snapshot_name("nightly", vm,
                                                                                      request.scheduled_time),
                                             skip_reason=self.skip.get(vm, "")) for vm in self.vms])

        @activity.defn(name="kube_create_scheduled_snapshot")
        def create(request: CreateRequest) -> CreateOutcome:
            self.creates.append(request)
            return CreateOutcome(vm=request.target.vm, snapshot=request.target.snapshot,
                                 error=self.refuse.get(request.target.vm, ""))

        @activity.defn(name="kube_read_scheduled_snapshots")
        def read(run: RunSnapshots) -> dict[str, SnapshotState]:
            self.polls += 1
            done = self.polls >= self.polls_until_done
            return {c.target.snapshot: SnapshotState(ready=done and c.target.vm not in self.fail,
                                                     failed=self.fail.get(c.target.vm, "") if done else "")
                    for c in self.creates}

        @activity.defn(name="kube_prune_scheduled_snapshots")
        def prune(request: PruneRequest) -> PruneOutcome:
            self.prunes.append(request)
            return PruneOutcome(pruned=self.pruned, kept=3)

        @activity.defn(name="kube_record_scheduled_run")
        def record(run: RunRecord) -> bool:
            self.records.append(run)
            return self.suspend

        @activity.defn(name="temporal_schedule_next_run")
        async def next_run(schedule_id: str) -> datetime | None:
            return None

        @activity.defn(name="temporal_pause_schedule")
        async def pause(request: SchedulePause) -> None:
            self.paused.append(request)

        @activity.defn(name="temporal_delete_schedule")
        async def delete(schedule_id: str) -> None:
            self.deleted.append(schedule_id)

        return [plan, create, read, prune, record, next_run, pause, delete]

    spread: float = 0.0


@dataclass
class Run:
    client: Client
    task_queue: str
    world: World

    async def __call__(self) -> tuple[RunSummary, str]:
        workflow_id = f"run-{uuid.uuid4().hex[:8]}"
        handle = await self.client.start_workflow(SCHEDULED_RUN_WORKFLOW, self.world.ref(), id=workflow_id,
                                                  task_queue=self.task_queue, result_type=RunSummary)
        return await asyncio.wait_for(handle.result(), PATIENCE), workflow_id


@asynccontextmanager
async def running(client: Client, world: World) -> AsyncIterator[Run]:
    task_queue = f"sched-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=8) as pool:  # the Kubernetes steps are sync, as the product's
        async with Worker(client, task_queue=task_queue, workflows=[ScheduledSnapshotRun],
                          activities=world.activities(), activity_executor=pool):
            yield Run(client, task_queue, world)


@pytest.fixture
def world() -> World:
    return World(namespace=f"ns-{uuid.uuid4().hex[:6]}")


async def test_one_snapshot_per_vm_skipped_ones_aside_then_prune_and_record(temporal_client: Client, world: World):
    world.skip = {"vm-b": "vm-b already has 32 snapshots"}
    world.pruned = ["old-1"]
    world.polls_until_done = 2
    async with running(temporal_client, world) as run:
        summary, workflow_id = await run()

    assert sorted(c.target.vm for c in world.creates) == ["vm-a", "vm-c"]
    assert summary.result == RunResult.SUCCEEDED
    assert summary.created == sorted(c.target.snapshot for c in world.creates)
    assert summary.skipped_vms == {"vm-b": "vm-b already has 32 snapshots"}
    assert summary.pruned == ["old-1"]
    assert world.polls == 2, "waited until both were Ready"
    (record,) = world.records
    assert (record.result, record.created, record.skipped_vms, record.pruned, record.kept) == (
        RunResult.SUCCEEDED, 2, {"vm-b": "vm-b already has 32 snapshots"}, ["old-1"], 3)
    assert record.workflow_id == workflow_id
    assert record.succeeded_vms == ["vm-a", "vm-c"], "the skipped VM neither succeeded nor failed"
    assert world.prunes and not world.paused and not world.deleted


async def test_failures_are_counted_by_vm(temporal_client: Client, world: World):
    world.refuse = {"vm-a": "admission webhook denied the request: nope"}
    world.fail = {"vm-b": "GenericVmConfigFault: disk full"}
    async with running(temporal_client, world) as run:
        summary, _ = await run()
    assert summary.result == RunResult.PARTIALLY_FAILED
    assert summary.failed_vms == {"vm-a": "admission webhook denied the request: nope",
                                  "vm-b": "GenericVmConfigFault: disk full"}
    assert [c.target.vm for c in world.creates] == ["vm-a", "vm-b", "vm-c"]
    assert world.records[0].failed_vms == summary.failed_vms and world.records[0].created == 1
    assert world.records[0].succeeded_vms == ["vm-c"]


async def test_a_vm_that_keeps_failing_is_counted_across_runs_from_what_each_record_carries(
        temporal_client: Client, world: World):
    """Three runs in which vm-b's snapshot fails (a quiesce without Tools) and vm-c is refused, vm-a made each
    time: every run prunes (the failed objects by keepFailed) and hands the record which VMs failed and which
    succeeded; the record's bookkeeping over them (api.schedule.failing_after_run, which record_run applies to the
    status) counts three failed runs in a row for vm-b and vm-c. A run in which they succeed ends the streaks."""
    world.fail = {"vm-b": "ToolsNotRunning: VMware Tools is not running"}
    world.refuse = {"vm-c": "admission webhook denied the request: nope"}
    async with running(temporal_client, world) as run:
        for _ in range(3):
            summary, _ = await run()
            assert summary.result == RunResult.PARTIALLY_FAILED
        assert len(world.prunes) == 3
        assert [(r.succeeded_vms, sorted(r.failed_vms)) for r in world.records] == [
            (["vm-a"], ["vm-b", "vm-c"])] * 3

        def failing() -> list[tuple[str, int, str]]:
            streaks = None
            for r in world.records:
                streaks = failing_after_run(streaks, succeeded=r.succeeded_vms, failed=r.failed_vms,
                                            skipped=r.skipped_vms, at=r.scheduled_time)
            return [(v.name, v.consecutive_failures, v.last_failure) for v in streaks or []]
        assert failing() == [("vm-b", 3, "ToolsNotRunning: VMware Tools is not running"),
                             ("vm-c", 3, "admission webhook denied the request: nope")]

        world.fail, world.refuse = {}, {}
        summary, _ = await run()
    assert summary.result == RunResult.SUCCEEDED
    assert world.records[-1].succeeded_vms == ["vm-a", "vm-b", "vm-c"]
    assert failing() == []


async def test_a_run_with_nothing_made_fails_and_may_suspend_the_schedule(temporal_client: Client, world: World):
    world.fail = {vm: "GenericVmConfigFault" for vm in world.vms}
    world.suspend = True  # the record says this failure is one too many
    async with running(temporal_client, world) as run:
        summary, _ = await run()
    assert summary.result == RunResult.FAILED and summary.suspended
    assert [p.schedule_id for p in world.paused] == [temporal_schedule_id(world.namespace, "nightly")]


async def test_creates_are_spread_over_the_window_with_timers(temporal_client: Client, world: World):
    world.spread = 3.0
    async with running(temporal_client, world) as run:
        summary, workflow_id = await run()
        history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    # one timer before each create but the first (1 s apart: 3 s over 3 VMs), then the polls
    spread_timers = [t for t in timers if t.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
                     <= timedelta(seconds=1)]
    assert len(spread_timers) == 2
    assert len(world.creates) == 3 and summary.result == RunResult.SUCCEEDED


async def test_an_orphaned_schedule_deletes_itself(temporal_client: Client, world: World):
    world.gone = True
    async with running(temporal_client, world) as run:
        summary, _ = await run()
    assert summary.result == "ScheduleGone"
    assert world.deleted == [temporal_schedule_id(world.namespace, "nightly")]
    assert not world.creates and not world.records


async def test_a_run_started_by_a_schedule_names_its_snapshots_after_the_scheduled_time(temporal_client: Client,
                                                                                        world: World):
    async with running(temporal_client, world) as run:
        schedule_id = f"test-schedule-{uuid.uuid4().hex[:8]}"
        handle = await temporal_client.create_schedule(schedule_id, Schedule(
            action=ScheduleActionStartWorkflow(SCHEDULED_RUN_WORKFLOW, args=[world.ref()], id=f"run-{schedule_id}",
                                               task_queue=run.task_queue,
                                               typed_search_attributes=sa.for_schedule(world.namespace, "nightly")),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])), trigger_immediately=True)
        try:
            async def started() -> str:
                while not (await handle.describe()).info.recent_actions:
                    await asyncio.sleep(0.2)
                return (await handle.describe()).info.recent_actions[0].action.workflow_id
            workflow_id = await asyncio.wait_for(started(), PATIENCE)
            run_handle = temporal_client.get_workflow_handle(workflow_id, result_type=RunSummary)
            await asyncio.wait_for(run_handle.result(), PATIENCE)
            scheduled = (await run_handle.describe()).typed_search_attributes.get(sa.SCHEDULED_START_TIME)
        finally:
            await handle.delete()
    assert scheduled is not None
    assert {c.target.snapshot for c in world.creates} == {scheduled_snapshot_name("nightly", vm, scheduled)
                                                          for vm in world.vms}
    assert all(c.scheduled_time == scheduled for c in world.creates)


async def test_a_run_counts_itself_and_what_it_pruned_in_the_workers_metrics(temporal_address: str,
                                                                            temporal_client: Client, world: World):
    """`vmsnap_schedule_runs{result}` and `vmsnap_schedule_snapshots_pruned`, as the worker's Temporal runtime
    exports them (here into a buffer instead of Prometheus)."""
    from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig

    buffer = MetricBuffer(1000)
    client = await Client.connect(temporal_address, namespace=temporal_client.namespace,
                                  data_converter=temporal_client.data_converter,
                                  runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)))
    world.fail = {"vm-a": "GenericVmConfigFault: disk full"}
    world.pruned = ["old-1", "old-2"]
    async with running(client, world) as run:
        summary, _ = await run()
    assert summary.result == RunResult.PARTIALLY_FAILED

    added: dict[tuple[str, str | None], int] = {}  # (metric, its result label) → sum of what was added
    for update in buffer.retrieve_updates():
        if update.metric.name.startswith("vmsnap_schedule"):
            key = (update.metric.name, update.attributes.get("result"))
            added[key] = added.get(key, 0) + int(update.value)
    assert added == {("vmsnap_schedule_runs", RunResult.PARTIALLY_FAILED.value): 1,
                     ("vmsnap_schedule_snapshots_pruned", None): 2}
