"""DeleteSnapshot's logic with fake activities on the Temporal dev server (no Kubernetes, no vCenter): a delete
vCenter refuses keeps the object with a condition, lets the VM's queue move on, and is queued again after a
doubling wait until it succeeds — or stops when the object is gone (its finalizer removed by hand)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.payloads import (
    DeletePlan,
    FinalizerRemoval,
    Operation,
    OperationKind,
    RevertConditionChange,
    SnapshotLookup,
    SnapshotRef,
    SnapshotStatusChange,
    SnapshotTree,
    VMRef,
)
from activities.temporal_queue import enqueue_operation
from api.errors import ErrorType
from api.names import SNAPSHOT_DELETED_CONDITION, SnapshotReason
from workflows.delete_snapshot import DeleteSnapshot
from workflows.options import vcenter_task_queue
from workflows.revert_snapshot import RevertSnapshot
from workflows.vm_snapshot_queue import VirtualMachineSnapshotQueue

pytestmark = pytest.mark.timeout(60)


@dataclass
class FakeCluster:
    """What the fake activities saw and did; `refusals` removals fail before one succeeds."""

    refusals: int
    gone_after_first_refusal: bool = False   # as if the user removed the finalizer by hand meanwhile
    object_exists: bool = True
    removals: list[SnapshotLookup] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def activities(self, client: Client, task_queue: str) -> tuple[list, list]:
        @activity.defn(name="kube_prepare_delete")
        async def prepare_delete(ref: SnapshotRef) -> DeletePlan | None:
            if not self.object_exists:
                return None
            return DeletePlan(snapshot=ref, vm=VMRef(namespace=ref.namespace, name="vm"), vm_moref="vm-1",
                              snapshot_moref="snapshot-7", retry_seconds=0.2, retry_max_seconds=0.4)

        @activity.defn(name="vsphere_remove_snapshot")
        async def remove_snapshot(lookup: SnapshotLookup) -> bool:
            self.removals.append(lookup)
            if len(self.removals) <= self.refusals:
                self.log.append("removal refused")
                raise ApplicationError("the delta disk is locked", type=ErrorType.VSPHERE_TASK_FAILED,
                                       non_retryable=True)
            self.log.append("removed")
            return True

        @activity.defn(name="kube_update_snapshot_status")
        async def update_snapshot_status(change: SnapshotStatusChange) -> None:
            for c in change.conditions:
                assert (c.type, c.reason) == (SNAPSHOT_DELETED_CONDITION, SnapshotReason.DELETION_FAILED)
                self.conditions.append(c.message)
            if self.gone_after_first_refusal:
                self.object_exists = False

        @activity.defn(name="kube_remove_snapshot_finalizer")
        async def remove_finalizer(removal: FinalizerRemoval) -> None:
            self.finalized.append(removal.outcome)

        @activity.defn(name="vsphere_read_snapshot_tree")
        async def read_snapshot_tree(vm_moref: str) -> SnapshotTree | None:
            return None

        @activity.defn(name="kube_set_revert_condition")
        async def set_revert_condition(change: RevertConditionChange) -> None:
            self.log.append("revert abort ran")

        @activity.defn(name="temporal_enqueue_operation")
        async def enqueue(op: Operation) -> None:
            await enqueue_operation(client, task_queue, op)

        return ([prepare_delete, update_snapshot_status, remove_finalizer, read_snapshot_tree,
                 set_revert_condition, enqueue], [remove_snapshot])


@asynccontextmanager
async def vm_queue(temporal_client: Client, cluster: FakeCluster) -> AsyncIterator[tuple[str, VMRef]]:
    """Workers with the fake activities on a task queue of their own; yields it and a VM of its own."""
    task_queue = f"wf-{uuid.uuid4().hex[:8]}"
    main, vcenter = cluster.activities(temporal_client, task_queue)
    async with Worker(temporal_client, task_queue=task_queue, activities=main,
                      workflows=[VirtualMachineSnapshotQueue, DeleteSnapshot, RevertSnapshot]), \
            Worker(temporal_client, task_queue=vcenter_task_queue(task_queue), activities=vcenter):
        yield task_queue, VMRef(namespace=f"ns-{uuid.uuid4().hex[:6]}", name="vm")


async def result(client: Client, workflow_id: str) -> str:
    """The result of a workflow the VM's queue starts when it gets to it."""
    while True:
        try:
            return await client.get_workflow_handle(workflow_id).result()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.1)


def delete_op(vm: VMRef, retry: int = 0) -> Operation:
    return Operation(kind=OperationKind.DELETE, vm=vm, snapshot_name="snap", snapshot_uid="uid-1", retry=retry)


async def test_a_refused_delete_is_retried_until_vcenter_removes_it(temporal_client: Client):
    cluster = FakeCluster(refusals=2)
    async with vm_queue(temporal_client, cluster) as (task_queue, vm):
        await enqueue_operation(temporal_client, task_queue, delete_op(vm))
        await enqueue_operation(temporal_client, task_queue,
                                Operation(kind=OperationKind.REVERT, vm=vm, snapshot_name=""))  # an abort
        assert (await result(temporal_client, delete_op(vm, 2).workflow_id)) == "removed"

    assert len(cluster.removals) == 3
    assert all(r.snapshot_moref == "snapshot-7" and r.owner_uid == "uid-1" for r in cluster.removals)
    assert [m.split("(attempt ")[1].split(";")[0] for m in cluster.conditions] == ["1", "2"]
    assert all("the delta disk is locked" in m for m in cluster.conditions)
    assert cluster.finalized == ["removed"], "the finalizer goes only once vCenter removed the snapshot"
    # the VM's queue was not held: its next operation ran while the delete waited for its retry
    assert cluster.log.index("revert abort ran") < cluster.log.index("removed")


async def test_a_retry_stops_when_the_object_is_gone(temporal_client: Client):
    cluster = FakeCluster(refusals=5, gone_after_first_refusal=True)
    async with vm_queue(temporal_client, cluster) as (task_queue, vm):
        await enqueue_operation(temporal_client, task_queue, delete_op(vm))
        assert (await result(temporal_client, delete_op(vm, 1).workflow_id)) == "already gone"
    assert len(cluster.removals) == 1 and cluster.finalized == []
