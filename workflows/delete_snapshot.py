"""DeleteSnapshot: the snapshot object got its deletion timestamp. Remove the snapshot it owns in vCenter (its
children move up to its parent), rewrite the tree, and drop the finalizer last, so nothing is ever orphaned in
vCenter. When vCenter keeps failing the removal, the object stays with a condition that says why, and the delete
is queued again later (doubling waits, capped), until it succeeds or the user removes the finalizer by hand."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_snapshot import KubeSnapshotActivities
    from activities.temporal_queue import VMQueueActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.names import SNAPSHOT_DELETED_CONDITION, SnapshotReason
    from contract.names import DELETE_SNAPSHOT_WORKFLOW
    from contract.payloads import (
        ConditionChange,
        DeletePlan,
        FinalizerRemoval,
        Operation,
        OperationKind,
        SnapshotLookup,
        SnapshotStatusChange,
    )
    from workflows import options
    from workflows.common import (
        StepFailed,
        count_operation,
        failure_message,
        kube,
        release_vm_queue,
        sync_snapshot_tree,
        together,
    )


def retry_delay(plan: DeletePlan, retry: int) -> timedelta:
    """The wait before retry number `retry + 1`: the first wait, doubled each time, capped."""
    return timedelta(seconds=min(plan.retry_seconds * 2 ** retry, plan.retry_max_seconds))


@workflow.defn(name=DELETE_SNAPSHOT_WORKFLOW)
class DeleteSnapshot:
    @workflow.run
    async def run(self, op: Operation) -> str:
        _, plan = await together(self._stop_create(op),
                                 kube(KubeSnapshotActivities.prepare_delete, op.snapshot, f"read {op.snapshot}"))
        if plan is None:
            return "already gone"
        outcome = messages.DELETED_NOTHING_IN_VCENTER
        if plan.vm_moref:
            try:
                removed = await workflow.execute_activity_method(
                    VSphereSnapshotActivities.remove_snapshot,
                    SnapshotLookup(vm_moref=plan.vm_moref, name=op.snapshot_name, snapshot_moref=plan.snapshot_moref,
                                   owner_uid=op.snapshot_uid),
                    summary=f"RemoveSnapshot_Task {op.snapshot_name} (children kept)",
                    **options.vsphere_snapshot_task(None))
                outcome = messages.DELETED_REMOVED if removed else messages.DELETED_NOT_IN_VCENTER
            except StepFailed as e:
                return await self._retry_later(op, plan, failure_message(e))
            if plan.vm is not None:
                # before the finalizer: once the object is gone, its parent's children already say so
                await sync_snapshot_tree(plan.vm, plan.vm_moref)
        await kube(KubeSnapshotActivities.remove_finalizer, FinalizerRemoval(snapshot=op.snapshot, outcome=outcome),
                   "remove finalizer")
        count_operation("delete", "deleted")
        return outcome

    async def _retry_later(self, op: Operation, plan: DeletePlan, error: str) -> str:
        """vCenter did not remove the snapshot: the object keeps its finalizer and says why; the VM's queue
        moves on; after a durable wait the delete is queued again behind the VM's other operations."""
        delay = retry_delay(plan, op.retry)
        next_attempt = (workflow.now() + delay).strftime("%Y-%m-%dT%H:%M:%SZ")
        workflow.logger.warning("%s: vCenter did not remove the snapshot (attempt %d): %s; next attempt at %s",
                                op.snapshot, op.retry + 1, error, next_attempt)
        await together(
            kube(KubeSnapshotActivities.update_snapshot_status, SnapshotStatusChange(
                snapshot=op.snapshot, conditions=[ConditionChange(
                    type=SNAPSHOT_DELETED_CONDITION, status=False, reason=SnapshotReason.DELETION_FAILED,
                    message=messages.deletion_failed(error, op.retry + 1, next_attempt))]),
                 "record the failed delete"),
            release_vm_queue())
        count_operation("delete", "retrying")
        await workflow.sleep(delay, summary=f"wait before queueing retry {op.retry + 1}: {next_attempt}")
        retry = op.model_copy(update={"retry": op.retry + 1,
                                      "summary": f"delete snapshot {op.snapshot_name} of {op.vm.name} "
                                                 f"(retry {op.retry + 1})"})
        await workflow.execute_local_activity_method(VMQueueActivities.enqueue_operation, retry,
                                                     summary=f"queue retry {retry.retry} of the delete",
                                                     **options.TEMPORAL)
        return f"not removed in vCenter ({error}); retry {retry.retry} queued"

    async def _stop_create(self, op: Operation) -> None:
        """A create of this snapshot may still be waiting for the CSI handshake: it has nothing left to do
        (the VM's queue runs this delete only after that create is done with vCenter)."""
        # the bridge saw the snapshot Ready: its create has ended (deletes of histories v1–v2 always ask)
        if not op.stop_create:
            return
        create_id = Operation(kind=OperationKind.CREATE, vm=op.vm, snapshot_name=op.snapshot_name,
                              snapshot_uid=op.snapshot_uid).workflow_id
        try:
            await workflow.get_external_workflow_handle(create_id).cancel()
        except Exception:  # noqa: BLE001 - not running (finished, or never started): nothing to stop
            pass
