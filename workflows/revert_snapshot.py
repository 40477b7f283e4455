"""RevertSnapshot: the guide's "Reverting to a snapshot". `spec.currentSnapshotName` was set on the VM.
A failure is the VM's VirtualMachineSnapshotRevertSucceeded condition (reason + message) and nothing else:
the VM is never left blocked. An empty snapshot name is an abort: the failure condition is removed."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_vm import KubeVMRevertActivities
    from activities.payloads import Operation, RevertConditionChange, SnapshotLocation, SnapshotLookup, VMRestore
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.errors import ErrorType
    from api.names import RevertReason
    from workflows import options
    from workflows.common import (
        StepFailed,
        count_operation,
        failure_detail,
        failure_message,
        failure_type,
        kube,
        sync_snapshot_tree,
        together,
        vcenter,
        write_snapshot_tree,
    )


@workflow.defn(name="RevertSnapshot")
class RevertSnapshot:
    @workflow.run
    async def run(self, op: Operation) -> str:
        if not op.snapshot_name:
            await self._condition(op, None)
            return "aborted: condition cleared"
        try:
            plan = await kube(KubeVMRevertActivities.prepare_revert, op, f"preflight revert of {op.vm}")
        except StepFailed as e:
            refused = failure_type(e) == ErrorType.REVERT_REFUSED
            return await self._failed(op, str(failure_detail(e)) if refused else RevertReason.FAILED,
                                      failure_message(e))
        if plan is None:
            return "superseded"

        try:
            _, node = await together(
                self._condition(op, RevertReason.IN_PROGRESS, messages.REVERT_IN_PROGRESS, op.vm_generation),
                vcenter(VSphereSnapshotActivities.find_snapshot,
                        SnapshotLookup(vm_moref=plan.vm_moref, name=plan.snapshot_name,
                                       snapshot_moref=plan.snapshot_moref),
                        f"find vSphere snapshot {plan.snapshot_name}"))
        except StepFailed as e:
            return await self._failed(op, RevertReason.FAILED, messages.revert_failed_to_find_vsphere_snapshot(
                plan.snapshot_name, failure_message(e)))

        location = SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref)
        try:
            reverted = await workflow.execute_activity_method(
                VSphereSnapshotActivities.revert_snapshot, location.model_copy(update={"read_after": True}),
                summary=f"RevertToSnapshot_Task {plan.snapshot_name}", **options.vsphere_snapshot_task(None))
        except StepFailed as e:
            return await self._failed(op, RevertReason.TASK_FAILED, failure_message(e))

        # the task's activity read the VM YAML and the tree too (asked with read_after; histories of older
        # versions carry no result, and replay the reads they made)
        if reverted is not None:
            vm_yaml = reverted.vm_yaml
        else:
            vm_yaml = await vcenter(VSphereSnapshotActivities.read_snapshot_vm_yaml, location,
                                    "VM YAML from the snapshot")
        if vm_yaml is None and not plan.imported:
            return await self._failed(op, RevertReason.FAILED_INVALID_VM_MANIFEST,
                                      messages.revert_failed_to_restore_vm(messages.NO_VM_YAML_IN_SNAPSHOT))
        try:
            await kube(KubeVMRevertActivities.restore_vm,
                       VMRestore(vm=op.vm, generation=op.vm_generation, snapshot_name=plan.snapshot_name,
                                 vm_yaml=vm_yaml, power_state=node.power_state, snapshot_moref=node.moref),
                       "restore spec, labels, annotations")
        except StepFailed as e:
            reason = RevertReason.FAILED_INVALID_VM_MANIFEST if failure_type(e) == ErrorType.INVALID_VM_MANIFEST \
                else RevertReason.FAILED
            return await self._failed(op, reason, failure_message(e))
        # success: the condition goes (its steady state is absent)
        tree = reverted.tree if reverted is not None else None
        await together(self._condition(op, None),
                       write_snapshot_tree(plan.vm, plan.vm_moref, tree) if tree is not None
                       else sync_snapshot_tree(plan.vm, plan.vm_moref))
        count_operation("revert", "reverted")
        return f"reverted to {plan.snapshot_name}"

    async def _condition(self, op: Operation, reason: str | None, message: str = "",
                         generation: int | None = None) -> None:
        await kube(KubeVMRevertActivities.set_revert_condition,
                   RevertConditionChange(vm=op.vm, reason=reason, message=message, generation=generation),
                   "clear revert condition" if reason is None else f"revert condition {reason}")

    async def _failed(self, op: Operation, reason: str, message: str) -> str:
        await self._condition(op, reason, message, generation=op.vm_generation)
        count_operation("revert", "failed")
        return f"{reason}: {message}"
