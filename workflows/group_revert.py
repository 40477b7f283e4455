"""GroupRevert: spec.revert on a Ready VirtualMachineGroupSnapshot, started by the bridge (one per generation).

Every member's VM is reverted to its member snapshot, one after the other in VM name order, each the usual way
(spec.currentSnapshotName, so the bridge, the VM's queue and RevertSnapshot do it: power state follows the
snapshot, so VMs whose snapshots hold memory power on in that order). A member whose revert fails stops the rest:
the group's Reverted condition names it and its cause, and the members not reverted — never half a group
silently."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_group_snapshot import KubeGroupSnapshotActivities
    from api.group_snapshot_messages import group_reverted, member_revert_failed, reverting
    from api.group_snapshot_names import GroupEventReason, GroupReason
    from contract.group_payloads import GroupRevertRecord, GroupRevertRef, MemberRevert
    from contract.names import GROUP_REVERT_WORKFLOW
    from workflows.common import count_operation, kube

# how often a member's revert is looked at: quick at first, then every 10 s
FIRST_POLL, MAX_POLL = timedelta(seconds=1), timedelta(seconds=10)


@workflow.defn(name=GROUP_REVERT_WORKFLOW)
class GroupRevert:
    @workflow.run
    async def run(self, ref: GroupRevertRef) -> str:
        plan = await kube(KubeGroupSnapshotActivities.plan_revert, ref, "read the group's members")
        if plan is None:
            return "nothing to revert"
        names = [m.vm for m in plan.members]
        await self._record(GroupRevertRecord(revert=ref, reason=GroupReason.REVERT_IN_PROGRESS,
                                             message=reverting(len(names))))
        reverted: list[str] = []
        for position, member in enumerate(plan.members):
            workflow.set_current_details(f"**step:** revert {member.vm} to {member.snapshot} "
                                         f"({position + 1} of {len(names)})")
            failure = await self._revert(MemberRevert(namespace=ref.group.namespace, vm=member.vm,
                                                      snapshot=member.snapshot))
            if failure:
                message = member_revert_failed(member.vm, member.snapshot, failure, names[position + 1:])
                await self._record(GroupRevertRecord(revert=ref, reverted=reverted, ended=True,
                                                     reason=GroupReason.REVERT_FAILED, message=message,
                                                     event_reason=GroupEventReason.REVERT_FAILED))
                count_operation("group_revert", "failed", reason=GroupReason.REVERT_FAILED)
                return f"{GroupReason.REVERT_FAILED}: {message}"
            reverted.append(member.vm)
            await self._record(GroupRevertRecord(revert=ref, reverted=reverted, reason=GroupReason.REVERT_IN_PROGRESS,
                                                 message=reverting(len(names))))
        message = group_reverted(reverted)
        await self._record(GroupRevertRecord(revert=ref, reverted=reverted, ended=True, ok=True, message=message,
                                             event_reason=GroupEventReason.REVERTED))
        count_operation("group_revert", "reverted")
        return message

    @staticmethod
    async def _revert(member: MemberRevert) -> str:
        """Ask for the member's revert and wait for its end: "" when reverted, else why not."""
        problem = await kube(KubeGroupSnapshotActivities.request_member_revert, member,
                             f"{member.vm}: spec.currentSnapshotName = {member.snapshot}")
        if problem:
            return problem
        poll = FIRST_POLL
        while True:
            await workflow.sleep(poll)
            poll = min(poll * 2, MAX_POLL)
            state = await kube(KubeGroupSnapshotActivities.read_member_revert, member, f"{member.vm}: reverted?")
            if state.failed:
                return state.failed
            if state.done:
                return ""

    @staticmethod
    async def _record(record: GroupRevertRecord) -> None:
        await kube(KubeGroupSnapshotActivities.record_revert, record, "status: Reverted")
