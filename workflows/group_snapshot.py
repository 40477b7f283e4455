"""GroupSnapshot: the saga of one VirtualMachineGroupSnapshot, started by the bridge. All members or none.

  1. preflight every member before anything is taken (Kubernetes' side: exists, bound, under 32 snapshots, not a
     VKS node nor a shared SCSI bus; vCenter's side: the VM is there, Tools runs when quiescing);
  2. one member VirtualMachineSnapshot per VM, owned by the group and carrying its UID: each goes the ordinary way
     (the bridge, its VM's queue, CreateSnapshot);
  3. the barrier: each member's create, holding its VM's queue with its ExtraConfig stored, signals `member_ready`
     and waits; once every member is ready the saga signals `group_go` to all, so the vCenter tasks start together;
  4. Ready when every member is Ready and the skew of vCenter's create times is within spec.maxSkew;
  5. otherwise (a member failed or was deleted, the skew, spec.deadline): every member is deleted — the objects
     carrying the group's UID, each by its own UID, so their deletes remove exactly what each create made — and
     the saga waits until none is left before saying Ready=False with the member and its cause.
Every step is durable: a worker lost mid-saga resumes it where the history says, so the group either completes
or is undone, never left half-taken."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_group_snapshot import KubeGroupSnapshotActivities
    from activities.vsphere_group import VSphereGroupActivities
    from api.group_snapshot import format_skew, skew_seconds
    from api.group_snapshot_messages import compensating as compensating_message
    from api.group_snapshot_messages import (
        deadline_exceeded,
        group_ready,
        in_progress,
        member_deleted,
        member_failed,
        preflight_failed,
        skew_exceeded,
    )
    from api.group_snapshot_names import GroupEventReason, GroupPhase, GroupReason
    from contract.group_payloads import (
        GroupOutcome,
        GroupPlan,
        GroupRecord,
        GroupRef,
        MemberCheck,
        MemberCreate,
        MemberCreated,
        MemberReady,
        MemberRecord,
        MembersUndo,
        SnapshotTime,
    )
    from contract.names import CREATE_GROUP_GO_SIGNAL, GROUP_MEMBER_READY_SIGNAL, GROUP_SNAPSHOT_WORKFLOW
    from workflows.common import StepFailed, count_operation, failure_message, kube, vcenter

# how often the saga looks at its members: quick at first (a member is Ready within seconds), then every 10 s
FIRST_POLL, MAX_POLL = timedelta(seconds=1), timedelta(seconds=10)
# steps asked for at once (one workflow task never schedules more; a group has at most 64 members)
BATCH = 16


class Failure(Exception):
    """Why the group is undone: the reason and the message naming the member."""

    def __init__(self, reason: GroupReason, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


T = TypeVar("T")


async def batched(steps: Sequence[Awaitable[T]], size: int = BATCH) -> list[T]:
    results: list[T] = []
    for first in range(0, len(steps), size):
        results += await asyncio.gather(*steps[first:first + size])
    return results


@workflow.defn(name=GROUP_SNAPSHOT_WORKFLOW)
class GroupSnapshot:
    def __init__(self) -> None:
        self.ready: dict[str, str] = {}   # member object UID → its create's workflow ID (from its signal)
        self.phase = GroupPhase.PREFLIGHT

    @workflow.signal(name=GROUP_MEMBER_READY_SIGNAL)
    def member_ready(self, ready: MemberReady) -> None:
        """A member's create holds its VM's queue, its ExtraConfig stored: it waits for `group_go`."""
        self.ready[ready.snapshot_uid] = ready.workflow_id

    @workflow.run
    async def run(self, ref: GroupRef) -> GroupOutcome:
        plan = await kube(KubeGroupSnapshotActivities.plan_group, ref, "read the group and preflight its VMs")
        if plan is None:
            return GroupOutcome(result="GroupDeleted")
        if plan.finished:
            return GroupOutcome(result="AlreadyFinished")
        if plan.spec_problem:
            await self._record(plan, GroupPhase.FAILED, reason=GroupReason.INVALID_SPEC, message=plan.spec_problem,
                               event=GroupEventReason.FAILED)
            return GroupOutcome(result="Failed", reason=GroupReason.INVALID_SPEC, message=plan.spec_problem)
        await self._record(plan, GroupPhase.PREFLIGHT, event=GroupEventReason.STARTED)
        refused = await self._preflight(plan)
        if refused:
            message = preflight_failed(refused)
            await self._record(plan, GroupPhase.FAILED, reason=GroupReason.PREFLIGHT_FAILED, message=message,
                               event=GroupEventReason.PREFLIGHT_FAILED)
            count_operation("group", "failed", reason=GroupReason.PREFLIGHT_FAILED)
            return GroupOutcome(result="Failed", reason=GroupReason.PREFLIGHT_FAILED, message=message)
        created: list[MemberCreated] = []
        try:
            self.phase = GroupPhase.TAKING
            await self._record(plan, GroupPhase.TAKING)
            created = await self._create(plan)
            refused_member = next((c for c in created if c.error), None)
            if refused_member is not None:
                raise Failure(GroupReason.MEMBER_FAILED, member_failed(refused_member.vm, refused_member.snapshot,
                                                                       refused_member.error))
            uids = await self._take(plan, created)
            times = await self._create_times(plan, created, uids)
        except Failure as failure:
            return await self._undo(plan, created, failure)
        except _GroupGone:
            return GroupOutcome(result="GroupDeleted")
        skew = skew_seconds([t for _, t in times])
        records = [MemberRecord(vm=m.vm, snapshot=m.snapshot, unique_id=uids[m.uid], create_time=t)
                   for m, t in times]
        if skew > plan.max_skew_seconds:
            ordered = sorted(times, key=lambda mt: mt[1])
            return await self._undo(plan, created, Failure(GroupReason.SKEW_EXCEEDED, skew_exceeded(
                format_skew(skew), plan.max_skew, ordered[0][0].snapshot, ordered[-1][0].snapshot)), skew)
        message = group_ready(len(records), format_skew(skew))
        await self._record(plan, GroupPhase.READY, ready=True, message=message, members=records,
                           ready_members=len(records), skew=skew, event=GroupEventReason.READY)
        count_operation("group", "ready")
        return GroupOutcome(result="Ready", message=message, skew_seconds=skew)

    async def _preflight(self, plan: GroupPlan) -> list[tuple[str, str]]:
        """Every member's refusal (Kubernetes' side from the plan, then vCenter's); empty when all can be taken."""
        refused = [(m.vm, m.problem) for m in plan.members if m.problem]
        checks = [vcenter(VSphereGroupActivities.preflight_member,
                          MemberCheck(vm=m.vm, vm_moref=m.vm_moref, quiesce=plan.quiesce), f"preflight {m.vm}")
                  for m in plan.members if not m.problem]
        answers = await batched(checks)
        members = [m for m in plan.members if not m.problem]
        refused += [(m.vm, why) for m, why in zip(members, answers, strict=True) if why]
        return refused

    async def _create(self, plan: GroupPlan) -> list[MemberCreated]:
        """One member object per VM (those refused carry why)."""
        created: list[MemberCreated] = await batched([
            kube(KubeGroupSnapshotActivities.create_member,
                 MemberCreate(group=plan.group, vm=m.vm, snapshot=m.snapshot), f"create member {m.snapshot}")
            for m in plan.members])
        return created

    async def _take(self, plan: GroupPlan, created: list[MemberCreated]) -> dict[str, str]:
        """The barrier, then until every member is Ready: their snapshots' uniqueIDs by member UID. Raises Failure
        for a member failed or deleted, or the deadline."""
        members = {c.uid: c for c in created}
        released, poll = False, FIRST_POLL
        while True:
            left = (plan.deadline - workflow.now()).total_seconds()
            if left <= 0:
                raise Failure(GroupReason.DEADLINE_EXCEEDED,
                              deadline_exceeded(plan.deadline_limit, [c.snapshot for c in created]))
            if not released and set(members) <= set(self.ready):
                workflow.set_current_details(f"**step:** every member ready: go ({len(members)})")
                await self._go(list(self.ready[uid] for uid in members))
                released = True
            try:
                # before the go, a member's signal ends the wait (the barrier); after it, only time does
                await workflow.wait_condition(lambda: not released and set(members) <= set(self.ready),
                                              timeout=min(poll.total_seconds(), left))
                continue
            except asyncio.TimeoutError:
                pass
            poll = min(poll * 2, MAX_POLL)
            read = await kube(KubeGroupSnapshotActivities.read_members, plan.group, "read the members")
            if read.group_gone:
                raise _GroupGone
            uids: dict[str, str] = {}
            for c in created:
                state = read.members.get(c.snapshot)
                if state is None or state.uid != c.uid or state.deleting:
                    raise Failure(GroupReason.MEMBER_FAILED, member_deleted(c.snapshot))
                if state.failed:
                    raise Failure(GroupReason.MEMBER_FAILED, member_failed(c.vm, c.snapshot, state.failed))
                if state.ready and state.unique_id:
                    uids[c.uid] = state.unique_id
            workflow.set_current_details(f"**step:** {in_progress(self.phase, len(uids), len(created))}")
            if len(uids) == len(created):
                return uids

    async def _go(self, workflow_ids: list[str]) -> None:
        """`group_go` to every member's create; one that has ended meanwhile is found by the next read."""
        async def signal(workflow_id: str) -> None:
            try:
                await workflow.get_external_workflow_handle(workflow_id).signal(CREATE_GROUP_GO_SIGNAL)
            except Exception as error:  # noqa: BLE001 - its member's state says why
                workflow.logger.warning("group_go to %s: %s", workflow_id, error)
        await batched([signal(w) for w in workflow_ids])

    async def _create_times(self, plan: GroupPlan, created: list[MemberCreated],
                            uids: dict[str, str]) -> list[tuple[MemberCreated, datetime]]:
        moref = {m.vm: m.vm_moref for m in plan.members}
        times = await vcenter(VSphereGroupActivities.read_create_times,
                              [SnapshotTime(vm_moref=moref[c.vm], snapshot_moref=uids[c.uid]) for c in created],
                              "members' create times")
        missing = next((c for c, t in zip(created, times, strict=True) if t is None), None)
        if missing is not None:
            raise Failure(GroupReason.MEMBER_FAILED, member_deleted(missing.snapshot))
        return [(c, t) for c, t in zip(created, times, strict=True) if t is not None]

    async def _undo(self, plan: GroupPlan, created: list[MemberCreated], failure: Failure,
                    skew: float | None = None) -> GroupOutcome:
        """Delete every member (by the group's UID, each by its own), wait until none is left, then Ready=False."""
        self.phase = GroupPhase.COMPENSATING
        workflow.set_current_details(f"**step:** undo: {failure.message}")
        await self._record(plan, GroupPhase.COMPENSATING, reason=GroupReason.COMPENSATING,
                           message=compensating_message(failure.message), skew=skew,
                           event=GroupEventReason.COMPENSATING)
        undo = MembersUndo(group=plan.group, uids=[c.uid for c in created if c.uid])
        poll = FIRST_POLL
        while True:
            try:
                if not await kube(KubeGroupSnapshotActivities.undo_members, undo, "delete the members taken"):
                    break
            except StepFailed as error:  # the apiserver out for longer than a step's retries: never give up
                workflow.logger.warning("undo of %s: %s", plan.group, failure_message(error))
            await workflow.sleep(poll)
            poll = min(poll * 2, MAX_POLL)
        await self._record(plan, GroupPhase.FAILED, reason=failure.reason, message=failure.message, skew=skew,
                           event=GroupEventReason.FAILED)
        count_operation("group", "failed", reason=failure.reason)
        return GroupOutcome(result="Failed", reason=failure.reason, message=failure.message, skew_seconds=skew)

    async def _record(self, plan: GroupPlan, phase: GroupPhase, *, ready: bool = False, reason: str = "",
                      message: str = "", members: list[MemberRecord] | None = None, ready_members: int = 0,
                      skew: float | None = None, event: str = "") -> None:
        if not ready and not reason:
            reason, message = GroupReason.IN_PROGRESS, message or in_progress(phase, ready_members, len(plan.members))
        if members is None:
            members = [MemberRecord(vm=m.vm, snapshot=m.snapshot) for m in plan.members]
        warning = event in (GroupEventReason.PREFLIGHT_FAILED, GroupEventReason.COMPENSATING, GroupEventReason.FAILED)
        await kube(KubeGroupSnapshotActivities.record, GroupRecord(
            group=plan.group, workflow_id=workflow.info().workflow_id, phase=phase, ready=ready, reason=reason,
            message=message, members=members, ready_members=ready_members, skew_seconds=skew, event_reason=event,
            event_warning=warning), f"status: {phase}")


class _GroupGone(Exception):
    """The group object was deleted: its members go with it (garbage collection), nothing is left to do."""
