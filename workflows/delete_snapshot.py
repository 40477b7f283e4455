"""DeleteSnapshot: the snapshot object got its deletion timestamp. Remove it in vCenter (its children move
up to its parent), rewrite the tree, and drop the finalizer last, so nothing is ever orphaned in vCenter."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_snapshot import KubeSnapshotActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api.operations import FinalizerRemoval, Operation, OperationKind, SnapshotLookup
    from workflows import options
    from workflows.common import StepFailed, count_operation, failure_message, kube, sync_snapshot_tree, together


@workflow.defn(name="DeleteSnapshot")
class DeleteSnapshot:
    @workflow.run
    async def run(self, op: Operation) -> str:
        _, plan = await together(self._stop_create(op),
                                 kube(KubeSnapshotActivities.prepare_delete, op.snapshot, f"read {op.snapshot}"))
        if plan is None:
            return "already gone"
        outcome = "nothing in vCenter (VM gone)"
        if plan.vm_moref:
            try:
                removed = await workflow.execute_activity_method(
                    VSphereSnapshotActivities.remove_snapshot,
                    SnapshotLookup(vm_moref=plan.vm_moref, name=op.snapshot_name, snapshot_moref=plan.snapshot_moref),
                    summary=f"RemoveSnapshot_Task {op.snapshot_name} (children kept)",
                    **options.vsphere_snapshot_task(None))
                outcome = "removed" if removed else "not in vCenter"
            except StepFailed as e:
                # e.g. several vSphere snapshots of this name and none recorded: leave vCenter alone, say so,
                # and still let the object go (the user asked for it to be deleted)
                workflow.logger.error("%s: vCenter snapshot left in place: %s", op.snapshot, failure_message(e))
                outcome = f"left in vCenter: {failure_message(e)}"
            if plan.vm is not None:
                # before the finalizer: once the object is gone, its parent's children already say so
                await sync_snapshot_tree(plan.vm, plan.vm_moref)
        await kube(KubeSnapshotActivities.remove_finalizer, FinalizerRemoval(snapshot=op.snapshot, outcome=outcome),
                   "remove finalizer")
        count_operation("delete", "deleted")
        return outcome

    async def _stop_create(self, op: Operation) -> None:
        """A create of this snapshot may still be waiting for the CSI handshake: it has nothing left to do
        (the VM's queue runs this delete only after that create is done with vCenter)."""
        create_id = Operation(kind=OperationKind.CREATE, vm=op.vm, snapshot_name=op.snapshot_name,
                              snapshot_uid=op.snapshot_uid).workflow_id
        try:
            await workflow.get_external_workflow_handle(create_id).cancel()
        except Exception:  # noqa: BLE001 - not running (finished, or never started): nothing to stop
            pass
