"""DeleteSnapshot's logic with fake activities on the Temporal dev server (no Kubernetes, no vCenter): a delete
vCenter refuses keeps the object with a condition, lets the VM's queue move on, and is queued again after a
doubling wait until it succeeds — or stops when the object is gone (its finalizer removed by hand). A delete
that goes through rewrites the tree before the finalizer goes, whatever vCenter still holds, and first cancels
a create of the same snapshot still waiting for the CSI driver."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from tests.workflows.fakes import (
    SNAPSHOT_DELETED_CONDITION,
    VM_MOREF,
    FinalizerRemoval,
    Harness,
    OperationKind,
    SnapshotConditionType,
    SnapshotLookup,
    SnapshotReason,
    create_op,
    delete_op,
    eventually,
    in_turn,
    revert_op,
    snapshot_moref,
    vsphere_fault,
)

pytestmark = pytest.mark.timeout(60)

LOCKED = vsphere_fault("the delta disk is locked", "FileLocked")


def deletion_failures(wf: Harness) -> list[str]:
    """The messages of the Deleted=False conditions written, in order (nothing else may be written)."""
    messages = []
    for change in wf.world.args("kube_update_snapshot_status"):
        for c in change.conditions:
            assert (c.type, c.status, c.reason) == (SNAPSHOT_DELETED_CONDITION, False, SnapshotReason.DELETION_FAILED)
            messages.append(c.message)
    return messages


async def test_a_refused_delete_is_retried_until_vcenter_removes_it(wf: Harness):
    wf.world.on("vsphere_remove_snapshot", in_turn(LOCKED, LOCKED, True))
    await wf.enqueue(delete_op(wf.vm, "snap"))
    await wf.enqueue(revert_op(wf.vm, ""))  # an abort, queued behind the delete
    assert await wf.result(delete_op(wf.vm, "snap", retry=2).workflow_id) == "removed"

    removals = wf.world.args("vsphere_remove_snapshot")
    assert len(removals) == 3
    assert all(r.snapshot_moref == snapshot_moref("snap") and r.owner_uid == "uid-snap" for r in removals)
    failures = deletion_failures(wf)
    assert [m.split("(attempt ")[1].split(";")[0] for m in failures] == ["1", "2"]
    assert all("the delta disk is locked" in m for m in failures)
    assert [r.outcome for r in wf.world.args("kube_remove_snapshot_finalizer")] == ["removed"], \
        "the finalizer goes only once vCenter removed the snapshot"
    # the VM's queue was not held: its next operation ran while the delete waited for its retry
    removed = [i for i, step in enumerate(wf.world.steps()) if step == "vsphere_remove_snapshot"][-1]
    assert wf.world.index("kube_set_revert_condition") < removed


async def test_a_retry_stops_when_the_object_is_gone(wf: Harness):
    gone = []  # the user removes the finalizer by hand once the first failure is on the object
    wf.world.on("vsphere_remove_snapshot", LOCKED)
    wf.world.on("kube_update_snapshot_status", lambda change: gone.append(True))
    wf.world.on("kube_prepare_delete", lambda ref: None if gone else wf.world.default("kube_prepare_delete", ref))

    await wf.enqueue(delete_op(wf.vm, "snap"))
    assert await wf.result(delete_op(wf.vm, "snap", retry=1).workflow_id) == "already gone"

    assert len(wf.world.args("vsphere_remove_snapshot")) == 1
    assert wf.world.args("kube_remove_snapshot_finalizer") == []
    assert [op.kind for op in wf.world.args("temporal_enqueue_operation")] == [OperationKind.DELETE]


async def test_a_removed_snapshot_rewrites_the_tree_before_the_finalizer_goes(wf: Harness):
    op = delete_op(wf.vm, "snap")

    assert await wf.run(op) == "removed"

    world = wf.world
    assert world.args("kube_prepare_delete") == [op.snapshot]
    assert world.args("vsphere_remove_snapshot") == [SnapshotLookup(
        vm_moref=VM_MOREF, name="snap", snapshot_moref=snapshot_moref("snap"), owner_uid="uid-snap")]
    assert world.args("kube_remove_snapshot_finalizer") == [FinalizerRemoval(snapshot=op.snapshot, outcome="removed")]
    # once the object is gone its parent's children must already say so: the tree is written first
    assert world.index("kube_sync_snapshot_tree") < world.index("kube_remove_snapshot_finalizer")
    assert world.steps()[-1] == "kube_remove_snapshot_finalizer"
    assert world.args("kube_update_snapshot_status") == [], "no condition on a delete that went through"


@pytest.mark.parametrize("plan, removed, outcome, steps", [
    # the VM object is gone, the vCenter VM recorded on the snapshot: removed, no VM status to rewrite
    (dict(vm=None), True, "removed", ["vsphere_remove_snapshot", "kube_remove_snapshot_finalizer"]),
    # vCenter no longer has it (removed by hand, or by an earlier attempt): success all the same
    ({}, False, "not in vCenter",
     ["vsphere_remove_snapshot", "vsphere_read_snapshot_tree", "kube_sync_snapshot_tree",
      "kube_remove_snapshot_finalizer"]),
    # no vCenter VM ever recorded: nothing was made in vCenter, only the finalizer goes
    (dict(vm_moref=None), True, "nothing in vCenter (no vCenter VM recorded)", ["kube_remove_snapshot_finalizer"]),
], ids=["vm-object-gone", "not-in-vcenter", "never-in-vcenter"])
async def test_a_delete_finishes_whatever_vcenter_holds(wf: Harness, plan, removed, outcome, steps):
    op = delete_op(wf.vm, "snap")
    wf.world.on("kube_prepare_delete",
                lambda ref: wf.world.default("kube_prepare_delete", ref).model_copy(update=plan))
    wf.world.on("vsphere_remove_snapshot", removed)

    assert await wf.run(op) == outcome

    assert wf.world.steps() == ["kube_prepare_delete", *steps]
    assert wf.world.args("kube_remove_snapshot_finalizer") == [FinalizerRemoval(snapshot=op.snapshot,
                                                                                outcome=outcome)]


async def test_an_object_already_gone_is_left_alone(wf: Harness):
    wf.world.on("kube_prepare_delete", None)

    assert await wf.run(delete_op(wf.vm, "snap")) == "already gone"

    assert wf.world.steps() == ["kube_prepare_delete"]


async def test_a_delete_of_a_snapshot_seen_ready_sends_no_cancel_request(wf: Harness):
    delete = delete_op(wf.vm, "snap").model_copy(update={"stop_create": False})
    assert await wf.run(delete) == "removed"

    history = await wf.client.get_workflow_handle(delete.workflow_id).fetch_history()
    assert not [e for e in history.events
                if e.event_type == EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED]
    assert wf.world.steps()[0] == "kube_prepare_delete"


async def test_a_delete_cancels_the_create_of_its_snapshot_waiting_for_the_csi_driver(wf: Harness):
    create, delete = create_op(wf.vm, "snap"), delete_op(wf.vm, "snap")
    wf.world.on("kube_request_csi_sync", False)  # the driver never answers: the create waits
    await wf.enqueue(create)
    await wf.world.until(lambda: "kube_request_csi_sync" in wf.world.steps())
    # the create released the VM's queue before its CSI wait, so the delete runs now
    await wf.enqueue(delete)

    assert await wf.result(delete.workflow_id) == "removed"

    handle = wf.client.get_workflow_handle(create.workflow_id)
    status = []

    async def ended() -> bool:
        status[:] = [(await handle.describe()).status]
        return status != [WorkflowExecutionStatus.RUNNING]
    await eventually(ended, lambda: f"the create is {status}")
    assert status == [WorkflowExecutionStatus.CANCELED]
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert wf.world.index("kube_request_csi_sync") < wf.world.index("vsphere_remove_snapshot")
    assert not any(c.status for s in wf.world.args("kube_update_snapshot_status") for c in s.conditions
                   if c.type == SnapshotConditionType.CSI_SYNCED), "the cancelled create wrote no CSISynced=True"
    assert "kube_read_csi_sync_completed" not in wf.world.steps()
    assert [r.outcome for r in wf.world.args("kube_remove_snapshot_finalizer")] == ["removed"]
