"""RevertSnapshot: the guide's "Reverting to a snapshot". `spec.currentSnapshotName` was set on the VM.
A failure is the VM's VirtualMachineSnapshotRevertSucceeded condition (reason + message) and nothing else:
the VM is never left blocked. An empty snapshot name is an abort: the failure condition is removed."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.kube_vm import KubeVMRevertActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.errors import ErrorType
    from api.names import RevertReason
    from contract.compat import without_deadline
    from contract.names import REVERT_SNAPSHOT_WORKFLOW
    from contract.payloads import (
        Operation,
        RevertConditionChange,
        RevertedSnapshot,
        RevertPlan,
        SnapshotLocation,
        SnapshotLookup,
        SnapshotNode,
        VMRestore,
    )
    from workflows import options
    from workflows.common import (
        CANCELLED_BY_DELETE,
        StepFailed,
        cancel_lost_task,
        cancelled,
        count_operation,
        deadline_summary,
        failure_detail,
        failure_message,
        failure_type,
        kube,
        outcome_span,
        stop,
        sync_snapshot_tree,
        together,
        vcenter,
        write_snapshot_tree,
    )


@workflow.defn(name=REVERT_SNAPSHOT_WORKFLOW)
class RevertSnapshot:
    def __init__(self) -> None:
        self.found: SnapshotNode | None = None  # the vSphere snapshot the revert goes to, once found

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
        if not without_deadline(plan):
            return await self._revert_by_deadline(op, plan)
        # histories v1–v3: no deadline timer
        in_vcenter = await self._revert_in_vcenter(op, plan)
        if isinstance(in_vcenter, str):
            return in_vcenter
        return await self._restore(op, plan, *in_vcenter)

    async def _revert_by_deadline(self, op: Operation, plan: RevertPlan) -> str:
        """The vCenter part raced against the deadline: past it (or on a cancel: the VM was deleted), the
        revert task is cancelled and the VM keeps its previous state. Once vCenter has reverted (even as the
        cancel was on its way), the Kubernetes restore runs: the VM object must match what vCenter now runs."""
        assert plan.deadline is not None
        work = asyncio.ensure_future(self._revert_in_vcenter(op, plan))
        try:
            await workflow.wait_condition(
                work.done, timeout=max((plan.deadline - workflow.now()).total_seconds(), 0),
                timeout_summary=deadline_summary("revert", plan.deadline, plan.deadline_limit))
        except asyncio.TimeoutError:
            with outcome_span("deadline exceeded", step="revert in vCenter", limit=plan.deadline_limit):
                lost = await stop(work)
                reverted_anyway = await cancel_lost_task(lost)
                if reverted_anyway and self.found is not None:  # by a lost attempt's task: the VM must follow
                    return await self._restore(op, plan, self.found, None)
                if work.cancelled() or work.exception() is not None:
                    return await self._deadline_exceeded(op, plan)
            workflow.logger.info("%s: vCenter ended the revert before the deadline's cancel reached it", op.vm)
        except asyncio.CancelledError:
            with outcome_span("revert cancelled", step="revert in vCenter"):
                await cancel_lost_task(await stop(work))
            count_operation("revert", "cancelled", reason=CANCELLED_BY_DELETE)
            raise
        in_vcenter = work.result()
        if isinstance(in_vcenter, str):
            return in_vcenter
        return await self._restore(op, plan, *in_vcenter)

    async def _deadline_exceeded(self, op: Operation, plan: RevertPlan) -> str:
        assert plan.deadline is not None
        message = messages.deadline_exceeded(plan.deadline.strftime("%Y-%m-%dT%H:%M:%SZ"), plan.deadline_limit,
                                             f"revert to snapshot {plan.snapshot_name} in vCenter",
                                             messages.REVERT_UNDONE)
        await self._condition(op, RevertReason.DEADLINE_EXCEEDED, message, generation=op.vm_generation)
        count_operation("revert", "failed", reason=RevertReason.DEADLINE_EXCEEDED)
        return f"{RevertReason.DEADLINE_EXCEEDED}: {message}"

    async def _revert_in_vcenter(self, op: Operation, plan: RevertPlan
                                 ) -> tuple[SnapshotNode, RevertedSnapshot | None] | str:
        """The InProgress condition, the vSphere snapshot found, the task: the node and what the task's activity
        read after it, or the outcome of a failure (already on the VM's condition)."""
        try:
            _, node = await together(
                self._condition(op, RevertReason.IN_PROGRESS, messages.REVERT_IN_PROGRESS, op.vm_generation),
                vcenter(VSphereSnapshotActivities.find_snapshot,
                        SnapshotLookup(vm_moref=plan.vm_moref, name=plan.snapshot_name,
                                       snapshot_moref=plan.snapshot_moref),
                        f"find vSphere snapshot {plan.snapshot_name}"))
        except StepFailed as e:
            if cancelled(e):
                raise
            return await self._failed(op, RevertReason.FAILED, messages.revert_failed_to_find_vsphere_snapshot(
                plan.snapshot_name, failure_message(e)))

        self.found = node
        location = SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref)
        # a cancel (deadline, deleted VM) cancels the vCenter task too; histories v1–v3 left it running
        cancel = not without_deadline(plan)
        try:
            reverted = await workflow.execute_activity_method(
                VSphereSnapshotActivities.revert_snapshot,
                location.model_copy(update={"read_after": True, "cancel_task_on_cancel": cancel}),
                summary=f"RevertToSnapshot_Task {plan.snapshot_name}",
                cancellation_type=(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED if cancel
                                   else ActivityCancellationType.TRY_CANCEL),
                **options.vsphere_snapshot_task(None))
        except StepFailed as e:
            if cancelled(e):
                raise
            return await self._failed(op, RevertReason.TASK_FAILED, failure_message(e))
        return node, reverted

    async def _restore(self, op: Operation, plan: RevertPlan, node: SnapshotNode,
                       reverted: RevertedSnapshot | None) -> str:
        location = SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref)

        # the task's activity read the VM YAML and the tree too (asked with read_after); no result: a lost
        # attempt's task reverted the VM, or histories v1 (their task was not asked `read_after`)
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

