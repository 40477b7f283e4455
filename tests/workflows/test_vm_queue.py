"""VirtualMachineSnapshotQueue with fake activities: one operation at a time in arrival order, a create releasing
the queue before its CSI wait, de-duplication (while queued, once done, across a new queue), a delete dropping a
create that never started, the idle end, and the state carried over continue-as-new."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from runtime import search_attributes
from tests.workflows.fakes import (
    CreateSnapshot,
    Harness,
    Operation,
    QueueState,
    VirtualMachineSnapshotQueue,
    create_op,
    delete_op,
    eventually,
    harness,
    vm_queue_workflow_id,
    vm_snapshot_queue,
)

pytestmark = pytest.mark.timeout(60)


def created(wf: Harness) -> list[str]:
    """The snapshots whose create ran, in the order they ran (the first step of each)."""
    return [ref.name for ref in wf.world.args("kube_prepare_snapshot")]


async def queued(wf: Harness, *ops: Operation) -> None:
    """Wait until the VM's queue shows exactly these operations (running first), in this order."""
    wanted, seen = [op.workflow_id for op in ops], []

    async def shows_them() -> bool:
        seen[:] = await wf.queue().query(VirtualMachineSnapshotQueue.queue)
        return seen == wanted
    await eventually(shows_them, lambda: f"the queue shows {seen}, not {wanted}")


async def test_operations_run_one_at_a_time_in_arrival_order(wf: Harness):
    a, b, c = (create_op(wf.vm, name) for name in ("a", "b", "c"))
    task = wf.world.hold("vsphere_create_snapshot")  # a's vCenter task runs until the test lets it finish
    await wf.enqueue(a)
    await wf.world.until(lambda: "vsphere_create_snapshot" in wf.world.steps())
    await wf.enqueue(b)
    await wf.enqueue(c)
    await queued(wf, a, b, c)

    assert created(wf) == ["a"], "nothing else starts while a's task runs"
    task.set()
    assert [await wf.result(op.workflow_id) for op in (a, b, c)] == ["Ready"] * 3

    assert [r.name for r in wf.world.args("vsphere_create_snapshot")] == ["a", "b", "c"]
    # each synced the tree while holding the queue (its sync lists the VM's snapshots once)
    assert [sync.queue_held for sync in wf.world.args("kube_sync_snapshot_tree")] == [True] * 3
    # each create started only once the one before it had finished with vCenter
    for before, after in (("a", "b"), ("b", "c")):
        assert wf.world.index("kube_request_csi_sync", lambda ref: ref.name == before) < \
            wf.world.index("kube_prepare_snapshot", lambda ref: ref.name == after)


async def test_a_create_whose_csi_driver_is_slow_releases_the_queue(wf: Harness):
    a, b = create_op(wf.vm, "a"), create_op(wf.vm, "b")
    wf.world.on("kube_request_csi_sync", lambda ref: ref.name != "a")  # the driver answers b at once, a never
    await wf.enqueue(a)
    await wf.enqueue(b)

    assert await wf.result(b.workflow_id) == "Ready"

    waiting = wf.client.get_workflow_handle(a.workflow_id)
    assert (await waiting.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await waiting.query(CreateSnapshot.current_step) == "CSI volume sync handshake"
    await waiting.signal(CreateSnapshot.csi_sync_completed)
    assert await wf.outcome(waiting) == "Ready"
    assert wf.world.index("kube_request_csi_sync", lambda ref: ref.name == "a") < \
        wf.world.index("kube_prepare_snapshot", lambda ref: ref.name == "b")


async def test_a_create_answered_at_once_just_ends_without_releasing_the_queue(wf: Harness):
    """The release is a signal (an event and a workflow task on each side): not sent when nothing waits."""
    a, b = create_op(wf.vm, "a"), create_op(wf.vm, "b")
    await wf.enqueue(a)
    await wf.enqueue(b)
    assert await wf.result(b.workflow_id) == "Ready"

    create = await wf.client.get_workflow_handle(a.workflow_id).fetch_history()
    assert not [e for e in create.events
                if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED]
    queue = await wf.queue().fetch_history()
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in queue.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED] == ["enqueue", "enqueue"]
    assert created(wf) == ["a", "b"]


async def test_an_operation_sent_again_runs_once(wf: Harness):
    a, b, c = (create_op(wf.vm, name) for name in ("a", "b", "c"))
    task = wf.world.hold("vsphere_create_snapshot")
    await wf.enqueue(a)
    await wf.world.until(lambda: "vsphere_create_snapshot" in wf.world.steps())
    for op in (a, b, a, b):  # a while it runs, b while it waits (a re-list, a second bridge)
        await wf.enqueue(op)
    await queued(wf, a, b)
    task.set()
    assert await wf.result(b.workflow_id) == "Ready"

    for op in (a, b, c):  # a and b once done
        await wf.enqueue(op)
    assert await wf.result(c.workflow_id) == "Ready"

    assert created(wf) == ["a", "b", "c"]


async def test_a_delete_drops_a_create_that_has_not_started(wf: Harness):
    a, b, delete_b = create_op(wf.vm, "a"), create_op(wf.vm, "b"), delete_op(wf.vm, "b")
    task = wf.world.hold("vsphere_create_snapshot")
    await wf.enqueue(a)
    await wf.world.until(lambda: "vsphere_create_snapshot" in wf.world.steps())
    await wf.enqueue(b)
    await wf.enqueue(delete_b)

    await queued(wf, a, delete_b)
    task.set()
    assert await wf.result(delete_b.workflow_id) == "removed"  # the finalizer goes all the same

    assert created(wf) == ["a"]
    with pytest.raises(RPCError) as missing:
        await wf.client.get_workflow_handle(b.workflow_id).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_an_operation_that_already_ran_is_not_run_again_by_a_new_queue(wf: Harness):
    # a queue that has ended remembers nothing; the finished workflow's ID refuses a second run
    a, b = create_op(wf.vm, "a"), create_op(wf.vm, "b")
    assert await wf.run(a) == "Ready"  # outside the queue, as if by an earlier queue
    await wf.enqueue(a)
    await wf.enqueue(b)

    assert await wf.result(b.workflow_id) == "Ready"

    assert created(wf) == ["a", "b"]


async def test_an_idle_queue_ends_and_the_next_operation_starts_a_new_one(temporal_client: Client, monkeypatch):
    # IDLE is a module constant (ten minutes): shortened here, seen only by a workflow module passed through
    monkeypatch.setattr(vm_snapshot_queue, "IDLE", timedelta(milliseconds=300))
    async with harness(temporal_client, passthrough=[vm_snapshot_queue.__name__]) as wf:
        a, b = create_op(wf.vm, "a"), create_op(wf.vm, "b")
        await wf.enqueue(a)
        assert await wf.result(a.workflow_id) == "Ready"
        first = await wf.queue().describe()
        assert await wf.outcome(wf.client.get_workflow_handle(first.id, run_id=first.run_id)) is None  # it ended

        await wf.enqueue(b)
        assert await wf.result(b.workflow_id) == "Ready"
        second = await wf.queue().describe()

    assert second.run_id != first.run_id
    assert (await wf.client.get_workflow_handle(first.id, run_id=first.run_id).describe()).status == \
        WorkflowExecutionStatus.COMPLETED
    assert created(wf) == ["a", "b"]


async def test_a_queue_carrying_state_runs_what_was_pending_and_ignores_what_it_saw(wf: Harness):
    # what continue-as-new hands to the next run: a ran before, b and c wait
    a, b, c, d = (create_op(wf.vm, name) for name in ("a", "b", "c", "d"))
    await wf.client.start_workflow(
        VirtualMachineSnapshotQueue.run, QueueState(vm=wf.vm, pending=[b, c], seen=[a.workflow_id, b.workflow_id,
                                                                                     c.workflow_id]),
        id=vm_queue_workflow_id(wf.vm), task_queue=wf.task_queue)
    for op in (a, b, d):
        await wf.enqueue(op)

    assert await wf.result(d.workflow_id) == "Ready"

    assert created(wf) == ["b", "c", "d"]


async def test_continue_as_new_carries_the_pending_operations_and_what_the_queue_saw(temporal_client: Client):
    # a dev server of its own that suggests continue-as-new after a few history events
    async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            data_converter=temporal_client.data_converter, search_attributes=search_attributes.ALL,
            dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=5"]) as env:
        async with harness(env.client) as wf:
            a, b, c, d = (create_op(wf.vm, name) for name in ("a", "b", "c", "d"))
            task = wf.world.hold("vsphere_create_snapshot")
            await wf.enqueue(a)
            await wf.world.until(lambda: "vsphere_create_snapshot" in wf.world.steps())
            await wf.enqueue(b)
            await wf.enqueue(c)
            await queued(wf, a, b, c)
            first = await wf.queue().describe()
            task.set()
            assert await wf.result(c.workflow_id) == "Ready"
            for op in (a, b, d):  # a and b again, in a later run
                await wf.enqueue(op)
            assert await wf.result(d.workflow_id) == "Ready"

            first_run = wf.client.get_workflow_handle(first.id, run_id=first.run_id)
            assert (await first_run.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
            last = (await first_run.fetch_history()).events[-1].workflow_execution_continued_as_new_event_attributes
            carried, = await wf.client.data_converter.decode(last.input.payloads, [QueueState])

    assert [op.workflow_id for op in carried.pending] == [b.workflow_id, c.workflow_id]
    assert carried.seen == [a.workflow_id, b.workflow_id, c.workflow_id]
    assert carried.vm == wf.vm
    assert created(wf) == ["a", "b", "c", "d"]
