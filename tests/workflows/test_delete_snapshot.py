"""DeleteSnapshot's logic with fake activities on the Temporal dev server (no Kubernetes, no vCenter): a delete
vCenter refuses keeps the object with a condition, lets the VM's queue move on, and is queued again after a
doubling wait until it succeeds — or stops when the object is gone (its finalizer removed by hand)."""

from __future__ import annotations

import pytest

from tests.workflows.fakes import (
    SNAPSHOT_DELETED_CONDITION,
    Harness,
    OperationKind,
    SnapshotReason,
    delete_op,
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
