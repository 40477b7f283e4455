"""Deadlines, cancellation and the guest that will not freeze, with fake activities: a create or revert past its
deadline in each step, a create already late when its turn comes, the CSI handshake's late answer, a delete or
the VM's deletion cancelling the running operation, the quiesce failures with and without the crash-consistent
fallback, and what the status says the snapshot captured (from the node vCenter made, never the request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError

from tests.workflows.fakes import (
    QUIESCE_FAULT_REASONS,
    SNAPSHOT_CONSISTENCY_CONDITION,
    VM_MOREF,
    ConsistencyReason,
    CreatedSnapshot,
    CreateSnapshot,
    EventReason,
    FakeWorld,
    Harness,
    PowerState,
    RevertPlan,
    RevertReason,
    SnapshotConditionType,
    SnapshotLookup,
    SnapshotNode,
    SnapshotPlan,
    SnapshotReason,
    SnapshotRef,
    SnapshotStatusChange,
    VirtualMachineSnapshotQueue,
    create_op,
    delete_op,
    messages,
    revert_op,
    running_until_cancelled,
    snapshot_moref,
    vsphere_fault,
)

pytestmark = pytest.mark.timeout(60)

CREATED, CSI_SYNCED = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED
TASK, STATUS, REMOVE = "vsphere_create_snapshot", "kube_update_snapshot_status", "vsphere_remove_snapshot"
LIMIT = "vmsnap.io/failure-deadline: 2s"


def plan(world: FakeWorld, ref: SnapshotRef, deadline: timedelta = timedelta(seconds=2), **fields: Any) -> SnapshotPlan:
    """Today's plan (prepared, with a deadline this far from now)."""
    return SnapshotPlan(**{"snapshot": ref, "vm": world.vm, "vm_moref": VM_MOREF, "vm_yaml": "yaml", "prepared": True,
                           "release_queue_if_csi_slow": True, "deadline": datetime.now(UTC) + deadline,
                           "deadline_limit": LIMIT, **fields})


def statuses(world: FakeWorld) -> list[SnapshotStatusChange]:
    return world.args(STATUS)


def condition(change: SnapshotStatusChange, condition_type: str) -> tuple[bool, str, str]:
    found = next(c for c in change.conditions if c.type == condition_type)
    return found.status, found.reason, found.message


def undo_lookup(ref: SnapshotRef) -> SnapshotLookup:
    """How a create's undo finds what it made: by the object's UID, never by a name or a recorded moref."""
    return SnapshotLookup(vm_moref=VM_MOREF, name=ref.name, owner_uid=ref.uid)


# --- a create past its deadline ------------------------------------------------------------------------------------

@pytest.mark.parametrize("held, step", [
    ("vsphere_store_snapshot_extra_config", "store the VM's YAML and the snapshot's owner in ExtraConfig"),
    (TASK, "create the vSphere snapshot"),
], ids=["extra-config", "vcenter-task"])
async def test_a_create_past_its_deadline_is_stopped_undone_and_says_at_which_step(wf: Harness, held, step):
    op = create_op(wf.vm, "late")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref))
    wf.world.on(held, running_until_cancelled)

    result = await wf.run(op)

    assert result.startswith(f"{SnapshotReason.DEADLINE_EXCEEDED}: ")
    assert wf.world.args(REMOVE) == [undo_lookup(op.snapshot)]
    last = statuses(wf.world)[-1]
    reason_ok, reason, message = condition(last, CREATED)
    assert (reason_ok, reason) == (False, SnapshotReason.DEADLINE_EXCEEDED)
    assert f"it was at step: {step}." in message and LIMIT in message and messages.CREATE_UNDONE in message
    # undone before it says so; nothing recorded as made
    assert wf.world.index(REMOVE) < len(wf.world.calls) - 1
    assert not any(s.unique_id for s in statuses(wf.world))
    assert "kube_request_csi_sync" not in wf.world.steps()


async def test_a_create_already_late_when_its_turn_comes_touches_vcenter_only_to_undo(wf: Harness):
    op = create_op(wf.vm, "queued-too-long")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref, deadline=-timedelta(seconds=1)))

    result = await wf.run(op)

    assert result.startswith(f"{SnapshotReason.DEADLINE_EXCEEDED}: ")
    assert wf.world.steps() == ["kube_prepare_snapshot", REMOVE, STATUS]
    assert "queued behind the VM's other operations" in condition(statuses(wf.world)[-1], CREATED)[2]


async def test_a_csi_answer_later_than_the_deadline_marks_the_snapshot_and_still_makes_it_ready(wf: Harness):
    op = create_op(wf.vm, "slow-driver")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref))
    wf.world.on("kube_request_csi_sync", False)
    wf.world.on("kube_read_csi_sync_completed", False)
    handle = await wf.start(op)

    await wf.world.until(lambda: any(c.reason == SnapshotReason.DEADLINE_EXCEEDED
                                     for s in statuses(wf.world) for c in s.conditions))
    late = next(s for s in statuses(wf.world) if any(c.reason == SnapshotReason.DEADLINE_EXCEEDED
                                                      for c in s.conditions))
    synced, reason, message = condition(late, CSI_SYNCED)
    assert (synced, reason) == (False, SnapshotReason.DEADLINE_EXCEEDED)
    assert "CSI volume sync handshake" in message and messages.CREATE_KEPT_FOR_CSI in message
    assert REMOVE not in wf.world.steps(), "the snapshot exists and is kept"

    await handle.signal(CreateSnapshot.csi_sync_completed)
    assert await wf.outcome(handle) == "Ready"
    assert condition(statuses(wf.world)[-1], CSI_SYNCED)[0] is True


# --- a guest that will not freeze -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", sorted(QUIESCE_FAULT_REASONS))
async def test_a_guest_that_will_not_freeze_fails_with_the_reason_and_nothing_is_undone(wf: Harness, fault):
    op = create_op(wf.vm, "frozen-out")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref, timedelta(hours=1), quiesce_minutes=10))
    wf.world.on(TASK, vsphere_fault(f"vSphere says {fault}", fault))

    result = await wf.run(op)

    reason = QUIESCE_FAULT_REASONS[fault]
    assert result == f"{reason}: {messages.quiesce_refused(f'vSphere says {fault}')}"
    assert [r.quiesce_minutes for r in wf.world.args(TASK)] == [10], "tried once, quiesced; no fallback"
    assert condition(statuses(wf.world)[-1], CREATED)[:2] == (False, reason)
    assert REMOVE not in wf.world.steps(), "vSphere made nothing"


async def test_the_crash_consistent_fallback_takes_it_again_without_quiescing_and_says_so(wf: Harness):
    op = create_op(wf.vm, "fallback")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref, timedelta(hours=1), quiesce_minutes=10,
                                                          quiesce_fallback=True))
    attempts: list[int | None] = []

    def task(req):
        attempts.append(req.quiesce_minutes)
        if req.quiesce_minutes is not None:
            raise vsphere_fault("Cannot complete operation because VMware Tools is not running", "ToolsUnavailable")
        return wf.world.default(TASK, req)
    wf.world.on(TASK, task)

    assert await wf.run(op) == "Ready"

    assert attempts == [10, None]
    recorded = next(s for s in statuses(wf.world) if s.unique_id)
    assert recorded.quiesced is False
    as_asked, reason, message = condition(recorded, SNAPSHOT_CONSISTENCY_CONDITION)
    assert (as_asked, reason) == (False, ConsistencyReason.CRASH_CONSISTENT)
    assert SnapshotReason.TOOLS_NOT_RUNNING in message and "VMware Tools is not running" in message
    [event] = [e for e in recorded.events if e.reason == EventReason.SNAPSHOT_CONSISTENCY]
    assert event.warning and SnapshotReason.TOOLS_NOT_RUNNING in event.message


# --- what the status says the snapshot captured ---------------------------------------------------------------------

async def test_a_powered_off_vm_asked_to_quiesce_reports_what_vcenter_made(wf: Harness):
    op = create_op(wf.vm, "cold")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref, timedelta(hours=1), quiesce_minutes=10,
                                                          memory=True))
    wf.world.on(TASK, lambda req: CreatedSnapshot(
        node=SnapshotNode(name=req.name, moref=snapshot_moref(req.name), power_state=PowerState.POWERED_OFF,
                          quiesced=False), vm_power_state=PowerState.POWERED_OFF))

    assert await wf.run(op) == "Ready"

    recorded = next(s for s in statuses(wf.world) if s.unique_id)
    assert (recorded.quiesced, recorded.power_state) == (False, PowerState.POWERED_OFF)
    as_asked, reason, message = condition(recorded, SNAPSHOT_CONSISTENCY_CONDITION)
    assert (as_asked, reason) == (True, ConsistencyReason.POWERED_OFF)
    assert messages.QUIESCE_SKIPPED_POWERED_OFF in message and messages.MEMORY_SKIPPED_POWERED_OFF in message
    [event] = recorded.events
    assert (event.reason, event.warning) == (EventReason.SNAPSHOT_CONSISTENCY, False)


async def test_a_quiesced_snapshot_of_a_running_vm_is_application_consistent_with_no_event(wf: Harness):
    op = create_op(wf.vm, "warm")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan(wf.world, ref, timedelta(hours=1), quiesce_minutes=10))

    assert await wf.run(op) == "Ready"

    recorded = next(s for s in statuses(wf.world) if s.unique_id)
    assert recorded.quiesced is True
    assert condition(recorded, SNAPSHOT_CONSISTENCY_CONDITION) == (
        True, ConsistencyReason.APPLICATION_CONSISTENT, messages.CONSISTENCY_QUIESCED)
    assert recorded.events == []


# --- cancellation: a delete of the object, the VM's deletion ----------------------------------------------------------

async def test_a_delete_cancels_its_running_create_which_undoes_its_vcenter_work(wf: Harness):
    create, delete = create_op(wf.vm, "doomed"), delete_op(wf.vm, "doomed")
    wf.world.on(TASK, running_until_cancelled)  # a 240-minute quiesce, say
    await wf.enqueue(create)
    await wf.world.until(lambda: TASK in wf.world.steps())

    await wf.enqueue(delete.model_copy(update={"cancel_create": True}))

    assert await wf.result(delete.workflow_id) == messages.DELETED_REMOVED
    with pytest.raises(WorkflowFailureError) as ended:
        await wf.outcome(wf.client.get_workflow_handle(create.workflow_id))
    assert isinstance(ended.value.cause, CancelledError)
    # the create's undo (by owner UID), then the delete's own removal
    assert wf.world.args(REMOVE)[0] == undo_lookup(create.snapshot)
    assert wf.world.index(REMOVE) < wf.world.index("kube_prepare_delete")
    assert not any(s.unique_id for s in statuses(wf.world)), "the cancelled create recorded nothing"


async def test_a_delete_from_an_older_bridge_waits_for_the_create_as_before(wf: Harness):
    create, delete = create_op(wf.vm, "patient"), delete_op(wf.vm, "patient")
    task = wf.world.hold(TASK)
    await wf.enqueue(create)
    await wf.world.until(lambda: TASK in wf.world.steps())
    await wf.enqueue(delete)  # cancel_create False

    task.set()
    assert await wf.result(delete.workflow_id) == messages.DELETED_REMOVED
    assert await wf.result(create.workflow_id) in ("Ready",)


async def test_the_vms_deletion_cancels_its_running_operation_and_drops_what_waits(wf: Harness):
    revert, create = revert_op(wf.vm, "snap-1"), create_op(wf.vm, "never")
    wf.world.on("vsphere_revert_snapshot", running_until_cancelled)
    await wf.enqueue(revert)
    await wf.world.until(lambda: "vsphere_revert_snapshot" in wf.world.steps())
    await wf.enqueue(create)

    await wf.queue().signal(VirtualMachineSnapshotQueue.vm_deleted)

    with pytest.raises(WorkflowFailureError) as ended:
        await wf.outcome(wf.client.get_workflow_handle(revert.workflow_id))
    assert isinstance(ended.value.cause, CancelledError)
    assert await wf.queue().query(VirtualMachineSnapshotQueue.queue) == []
    assert "kube_prepare_snapshot" not in wf.world.steps()
    assert "kube_restore_vm_from_snapshot" not in wf.world.steps()


# --- a revert past its deadline -------------------------------------------------------------------------------------

async def test_a_revert_past_its_deadline_is_cancelled_and_the_vm_keeps_its_state(wf: Harness):
    op = revert_op(wf.vm, "snap-1")
    wf.world.on("kube_prepare_revert", lambda op: RevertPlan(
        vm=op.vm, vm_moref=VM_MOREF, snapshot_name=op.snapshot_name, snapshot_moref=snapshot_moref(op.snapshot_name),
        deadline=datetime.now(UTC) + timedelta(seconds=2), deadline_limit=LIMIT))
    wf.world.on("vsphere_revert_snapshot", running_until_cancelled)

    result = await wf.run(op)

    assert result.startswith(f"{RevertReason.DEADLINE_EXCEEDED}: ")
    last = wf.world.args("kube_set_revert_condition")[-1]
    assert (last.reason, last.generation) == (RevertReason.DEADLINE_EXCEEDED, op.vm_generation)
    assert messages.REVERT_UNDONE in last.message and "revert to snapshot snap-1 in vCenter" in last.message
    assert "kube_restore_vm_from_snapshot" not in wf.world.steps()
