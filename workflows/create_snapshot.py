"""CreateSnapshot: the guide's "Creating a VirtualMachineSnapshot", step by step."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.kube_snapshot import KubeSnapshotActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.consistency import consistency
    from api.names import (
        QUIESCE_FAULT_REASONS,
        SNAPSHOT_CONSISTENCY_CONDITION,
        EventReason,
        SnapshotConditionType,
        SnapshotReason,
    )
    from contract.compat import releases_queue_at_handshake, unprepared, without_deadline
    from contract.group_payloads import MemberReady
    from contract.names import (
        CREATE_CSI_SYNC_COMPLETED_SIGNAL,
        CREATE_CURRENT_STEP_QUERY,
        CREATE_GROUP_GO_SIGNAL,
        CREATE_SNAPSHOT_WORKFLOW,
        GROUP_MEMBER_READY_SIGNAL,
    )
    from contract.payloads import (
        ConditionChange,
        CreatedSnapshot,
        EventNote,
        Operation,
        RequestedStorageEntry,
        SnapshotExtraConfig,
        SnapshotLocation,
        SnapshotLookup,
        SnapshotPlan,
        SnapshotStatusChange,
        VSphereSnapshotRequest,
    )
    from workflows import options
    from workflows.common import (
        CANCELLED_BY_DELETE,
        StepFailed,
        cancel_lost_task,
        count_operation,
        deadline_summary,
        failure_detail,
        failure_message,
        kube,
        outcome_span,
        release_vm_queue,
        stop,
        sync_snapshot_tree,
        together,
        vcenter,
        write_snapshot_tree,
    )

# Versions: what a step recorded decides which steps follow, so the histories of earlier versions replay; each
# such branch names the versions it serves (contract/compat.py, and when it may go).
CREATED, CSI_SYNCED = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED
SNAPSHOT_CONSISTENCY = SNAPSHOT_CONSISTENCY_CONDITION
# if the bridge's signal is missed, the annotation is re-read this often
CSI_POLL = timedelta(minutes=1)
# what the step and the task's summary add when the guest would not freeze and the object asked for the fallback
FALLBACK = " without quiescing (crash-consistent fallback)"
# a CSI driver that has not answered by then no longer holds the VM's queue (its next operation may start);
# one that answers sooner costs no release signal (a history event and a workflow task in each workflow)
CSI_SLOW = timedelta(seconds=2)


class QuiesceRefused(Exception):
    """The guest did not freeze and the object did not ask for the crash-consistent fallback."""

    def __init__(self, reason: SnapshotReason, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def quiesce_failure_reason(plan: SnapshotPlan, error: BaseException) -> SnapshotReason | None:
    """The reason a quiesced create's task failed because the guest did not freeze; None for any other failure."""
    detail = failure_detail(error)
    fault = detail.get("fault") if isinstance(detail, dict) else None
    return QUIESCE_FAULT_REASONS.get(fault or "") if plan.quiesce_minutes is not None else None


@workflow.defn(name=CREATE_SNAPSHOT_WORKFLOW)
class CreateSnapshot:
    def __init__(self) -> None:
        self.csi_sync_done = False
        self.group_go = False
        self.step = "queued"

    @workflow.signal(name=CREATE_CSI_SYNC_COMPLETED_SIGNAL)
    def csi_sync_completed(self) -> None:
        """The bridge saw `csi.vsphere.volume.sync: completed` on the snapshot."""
        self.csi_sync_done = True

    @workflow.signal(name=CREATE_GROUP_GO_SIGNAL)
    def go(self) -> None:
        """A group member: every member of the group is ready, the vCenter task may start."""
        self.group_go = True

    @workflow.query(name=CREATE_CURRENT_STEP_QUERY)
    def current_step(self) -> str:
        return self.step

    def _at(self, step: str) -> None:
        self.step = step
        workflow.set_current_details(f"**step:** {step}")

    @workflow.run
    async def run(self, op: Operation) -> str:
        ref = op.snapshot
        self._at("own the snapshot and read its VM")
        try:
            plan = await kube(KubeSnapshotActivities.prepare_snapshot, ref, f"own {ref} and read VM")
        except StepFailed as e:
            return await self._failed(op, failure_message(e))
        if plan is None:
            await release_vm_queue()
            return "snapshot deleted before creation"
        if without_deadline(plan):  # histories v1–v3: no deadline timer, no fallback, no undo
            try:
                requested, created = await self._create_in_vsphere(plan)
            except StepFailed as e:
                return await self._failed(op, failure_message(e))
            return await self._record_and_sync(plan, created, requested)
        return await self._create_by_deadline(op, plan)

    async def _create_by_deadline(self, op: Operation, plan: SnapshotPlan) -> str:
        """The vCenter part (ExtraConfig, then the task) raced against the deadline. Past it, or on a cancel (a
        delete of the object, or of its VM), the running vCenter task is cancelled and whatever this create made is
        removed. Then the record and the handshake, past whose deadline the object is only marked."""
        assert plan.deadline is not None
        left = (plan.deadline - workflow.now()).total_seconds()
        if left <= 0:
            return await self._deadline_exceeded(plan, "queued behind the VM's other operations")
        work = asyncio.ensure_future(self._vcenter_part(plan))
        try:
            await workflow.wait_condition(
                work.done, timeout=left, timeout_summary=deadline_summary("create", plan.deadline, plan.deadline_limit))
        except asyncio.TimeoutError:
            step = self.step
            return await self._deadline_exceeded(plan, step, await stop(work, QuiesceRefused))
        except asyncio.CancelledError:
            with outcome_span("create cancelled", step=self.step):
                await self._undo(plan, await stop(work, QuiesceRefused))
            count_operation("create", "cancelled", reason=CANCELLED_BY_DELETE)
            raise
        try:
            created, quiesce_failure = work.result()
        except QuiesceRefused as refused:
            return await self._failed(op, refused.message, refused.reason)
        except StepFailed as e:
            return await self._failed(op, failure_message(e))
        return await self._record_and_sync(plan, created, plan.requested, quiesce_failure)

    async def _vcenter_part(self, plan: SnapshotPlan) -> tuple[CreatedSnapshot, str | None]:
        """ExtraConfig and the task; when the guest will not freeze and the plan allows it, the task again without
        quiescing. Returns the snapshot and, after such a fallback, why quiescing failed."""
        await self._store_extra_config(plan)
        if plan.group_workflow_id:
            await self._group_barrier(plan)
        try:
            _, created = await self._vsphere_task(plan, plan.requested, plan.quiesce_minutes)
            return created, None
        except StepFailed as e:
            reason = quiesce_failure_reason(plan, e)
            if reason is None:
                raise
            if not plan.quiesce_fallback:
                raise QuiesceRefused(reason, messages.quiesce_refused(failure_message(e))) from e
            failure = messages.quiesce_fell_back(reason, failure_message(e))
        workflow.logger.warning("%s: %s", plan.snapshot, failure)
        count_operation("create", "quiesce_fallback", reason=reason)
        with outcome_span("crash-consistent fallback", reason=reason):
            _, created = await self._vsphere_task(plan, plan.requested, None, FALLBACK)
        return created, failure

    async def _group_barrier(self, plan: SnapshotPlan) -> None:
        """A group member holds its VM's queue, its ExtraConfig stored, until every member is as ready: it tells
        the group's saga, then waits for its go. The deadline (or the member's deletion, when the group is undone)
        ends the wait like any other step."""
        self._at("wait for the group's other members")
        try:
            await workflow.get_external_workflow_handle(plan.group_workflow_id).signal(
                GROUP_MEMBER_READY_SIGNAL,
                MemberReady(snapshot_uid=plan.snapshot.uid, workflow_id=workflow.info().workflow_id))
        except Exception as error:  # noqa: BLE001 - a saga that has ended is undoing its members: this one too
            workflow.logger.warning("%s: the group %s did not take the signal: %s", plan.snapshot,
                                    plan.group_workflow_id, error)
        await workflow.wait_condition(lambda: self.group_go)

    async def _undo(self, plan: SnapshotPlan, lost: str | None) -> None:
        """Cancel the task of an attempt whose worker was lost (`lost`), then remove the snapshot this create
        made, if its task got that far: recognised by the object's UID in its config, never by its name."""
        self._at("remove what this create made in vCenter")
        await cancel_lost_task(lost)
        await workflow.execute_activity_method(
            VSphereSnapshotActivities.remove_snapshot,
            SnapshotLookup(vm_moref=plan.vm_moref, name=plan.snapshot.name, owner_uid=plan.snapshot.uid),
            summary=f"RemoveSnapshot_Task {plan.snapshot.name}, if this create made it",
            **options.vsphere_snapshot_task(None))

    async def _deadline_exceeded(self, plan: SnapshotPlan, step: str, lost: str | None = None) -> str:
        workflow.logger.warning("%s passed its deadline at step: %s", plan.snapshot, step)
        message = messages.deadline_exceeded(self._deadline_text(plan), plan.deadline_limit, step,
                                             messages.CREATE_UNDONE)
        with outcome_span("deadline exceeded", step=step, deadline=self._deadline_text(plan),
                          limit=plan.deadline_limit):
            await self._undo(plan, lost)
            self._at(f"failed: {message}")
            await together(self._status(plan, conditions=[ConditionChange(
                               type=CREATED, status=False, reason=SnapshotReason.DEADLINE_EXCEEDED,
                               message=message)]),
                           release_vm_queue())
        count_operation("create", "failed", reason=SnapshotReason.DEADLINE_EXCEEDED)
        return f"{SnapshotReason.DEADLINE_EXCEEDED}: {message}"

    @staticmethod
    def _deadline_text(plan: SnapshotPlan) -> str:
        assert plan.deadline is not None
        return plan.deadline.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _record_and_sync(self, plan: SnapshotPlan, created: CreatedSnapshot,
                               requested: list[RequestedStorageEntry] | None,
                               quiesce_failure: str | None = None) -> str:
        self._at("record the created snapshot and the VM's tree")
        claimed = {created.node.moref: plan.snapshot.name}
        if created.tree is not None and created.used_bytes is not None:  # read by the task's activity
            await together(self._record_created(plan, created, requested, created.used_bytes, quiesce_failure),
                           write_snapshot_tree(plan.vm, plan.vm_moref, created.tree, claimed))
        else:  # no layoutEx entry yet after the task; and histories v1 (their task was not asked `read_after`)
            await together(self._record_created(plan, created, requested, quiesce_failure=quiesce_failure),
                           sync_snapshot_tree(plan.vm, plan.vm_moref, claimed))
        self._at("CSI volume sync handshake")
        if releases_queue_at_handshake(plan):  # histories v1–v2
            await together(release_vm_queue(), self._csi_sync(plan))
        else:
            await self._csi_sync(plan, release_after=CSI_SLOW)
        await self._status(plan, conditions=[ConditionChange(type=CSI_SYNCED, status=True)])
        self._at("ready")
        count_operation("create", "ready")
        return "Ready"

    async def _create_in_vsphere(self, plan: SnapshotPlan) -> tuple[list[RequestedStorageEntry] | None,
                                                                    CreatedSnapshot]:
        """Histories v1–v3 (`without_deadline`): the vCenter part, not raced against a deadline."""
        self._at("store the VM's YAML and the snapshot's owner in ExtraConfig, mark the creation in progress")
        if not unprepared(plan):
            # prepare marked the creation in progress and computed the requested storage already
            await self._store_extra_config(plan)
            return await self._vsphere_task(plan, plan.requested, plan.quiesce_minutes)
        _, _, requested = await together(  # histories v1
            self._store_extra_config(plan),
            self._status(plan, conditions=[ConditionChange(type=CREATED, status=False,
                                                           reason=SnapshotReason.CREATION_IN_PROGRESS,
                                                           message=messages.CREATION_IN_PROGRESS)]),
            self._requested_storage(plan))
        return await self._vsphere_task(plan, requested, plan.quiesce_minutes)

    async def _store_extra_config(self, plan: SnapshotPlan) -> None:
        self._at("store the VM's YAML and the snapshot's owner in ExtraConfig")
        await vcenter(VSphereSnapshotActivities.store_snapshot_extra_config,
                      SnapshotExtraConfig(vm_moref=plan.vm_moref, vm_yaml=plan.vm_yaml, owner_uid=plan.snapshot.uid),
                      "VM YAML and owner UID into ExtraConfig")

    async def _vsphere_task(self, plan: SnapshotPlan, requested: list[RequestedStorageEntry] | None,
                            quiesce_minutes: int | None, why: str = "") -> tuple[list[RequestedStorageEntry] | None,
                                                                                 CreatedSnapshot]:
        self._at(f"create the vSphere snapshot{why}")
        quiesce = f", quiesce {quiesce_minutes}m" if quiesce_minutes is not None else why
        # a cancel (deadline, delete) cancels the vCenter task too; histories v1–v3 left it running
        deadline = not without_deadline(plan)
        created = await workflow.execute_activity_method(
            VSphereSnapshotActivities.create_snapshot,
            VSphereSnapshotRequest(vm_moref=plan.vm_moref, name=plan.snapshot.name, owner_uid=plan.snapshot.uid,
                                   description=plan.description, memory=plan.memory,
                                   quiesce_minutes=quiesce_minutes, read_after=True, cancel_task_on_cancel=deadline),
            summary=f"CreateSnapshotEx_Task {plan.snapshot.name}{' memory' if plan.memory else ''}{quiesce}",
            cancellation_type=(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED if deadline
                               else ActivityCancellationType.TRY_CANCEL),
            **options.vsphere_snapshot_task(quiesce_minutes))
        return requested, created

    async def _requested_storage(self, plan: SnapshotPlan) -> list[RequestedStorageEntry] | None:
        try:
            return await kube(KubeSnapshotActivities.compute_requested_storage, plan, "requested storage per class")
        except StepFailed as e:  # accounting must not stop (or undo) a snapshot: report, carry on
            workflow.logger.warning("requested storage of %s unknown: %s", plan.snapshot, failure_message(e))
            return None

    async def _record_created(self, plan: SnapshotPlan, created: CreatedSnapshot,
                              requested: list[RequestedStorageEntry] | None, used: int | None = None,
                              quiesce_failure: str | None = None) -> None:
        """uniqueID, and what the snapshot captured as vCenter made it (its tree node, never the request)."""
        node = created.node
        if used is None:  # the task's activity did not read it (see _record_and_sync)
            used = await vcenter(VSphereSnapshotActivities.read_snapshot_used_bytes,
                                 SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref),
                                 "snapshot size from layoutEx")
        events = [EventNote(reason=EventReason.SAME_NAME_SNAPSHOT_LEFT_ALONE, warning=True,
                            message=messages.same_name_snapshot_left_alone(plan.snapshot.name, node.moref,
                                                                           created.same_name))
                  ] if created.same_name else []
        conditions = [ConditionChange(type=CREATED, status=True),
                      ConditionChange(type=CSI_SYNCED, status=False, reason=SnapshotReason.CSI_SYNC_IN_PROGRESS,
                                      message=messages.CSI_SYNC_REQUESTED)]
        if not without_deadline(plan):  # histories v1–v3 wrote no Consistency condition
            captured = consistency(quiesced=node.quiesced, power_state=node.power_state,
                                   vm_power_state=created.vm_power_state,
                                   asked_quiesce=plan.quiesce_minutes is not None, asked_memory=plan.memory,
                                   quiesce_failure=quiesce_failure)
            conditions.append(ConditionChange(type=SNAPSHOT_CONSISTENCY, status=captured.as_asked,
                                              reason=captured.reason, message=captured.message))
            if captured.difference is not None:
                events.append(EventNote(reason=EventReason.SNAPSHOT_CONSISTENCY, message=captured.difference,
                                        warning=captured.warning))
        await self._status(plan, unique_id=node.moref, power_state=node.power_state, events=events,
                           quiesced=node.quiesced, requested=requested, used_bytes=used, conditions=conditions)

    async def _csi_sync(self, plan: SnapshotPlan, release_after: timedelta | None = None) -> None:
        """Request the sync and wait for the driver's answer; with `release_after`, release the VM's queue
        if the answer takes longer than that (else the queue moves on when this workflow ends). Past the plan's
        deadline the object says so (DeadlineExceeded on CSISynced, so on Ready) and the wait goes on: the
        snapshot exists, and the driver's late answer still makes it Ready."""
        done = await kube(KubeSnapshotActivities.request_csi_sync, plan.snapshot, "csi.vsphere.volume.sync: requested")
        deadline = plan.deadline
        while not (done or self.csi_sync_done):
            wait = release_after or CSI_POLL
            if deadline is not None:
                wait = max(min(wait, deadline - workflow.now()), timedelta(0))
            try:
                if wait <= timedelta(0):
                    raise asyncio.TimeoutError
                await workflow.wait_condition(lambda: self.csi_sync_done, timeout=wait, timeout_summary=(
                    "the CSI driver's answer; then the VM's queue is released" if release_after is not None
                    else "the CSI driver's answer; then its annotation is read again"))
            except asyncio.TimeoutError:
                if deadline is not None and workflow.now() >= deadline:
                    deadline = None
                    await self._csi_deadline_exceeded(plan)
                    continue
                if release_after is not None:
                    release_after = None
                    await release_vm_queue()
                    continue
                done = await kube(KubeSnapshotActivities.csi_sync_completed, plan.snapshot, "re-read CSI annotation")

    async def _csi_deadline_exceeded(self, plan: SnapshotPlan) -> None:
        message = messages.deadline_exceeded(self._deadline_text(plan), plan.deadline_limit,
                                             "CSI volume sync handshake", messages.CREATE_KEPT_FOR_CSI)
        workflow.logger.warning("%s: %s", plan.snapshot, message)
        await self._status(plan, conditions=[ConditionChange(type=CSI_SYNCED, status=False,
                                                             reason=SnapshotReason.DEADLINE_EXCEEDED, message=message)])
        count_operation("create", "csi_sync_late", reason=SnapshotReason.DEADLINE_EXCEEDED)

    async def _status(self, plan: SnapshotPlan, **fields: Any) -> None:
        change = SnapshotStatusChange(snapshot=plan.snapshot, **fields)
        await kube(KubeSnapshotActivities.update_snapshot_status, change, change.summary())

    async def _failed(self, op: Operation, message: str,
                      reason: SnapshotReason = SnapshotReason.CREATION_FAILED) -> str:
        """Created=False with the reason (CreationFailed: vSphere's or the precondition's message): never a
        stuck object."""
        self._at(f"failed: {message}")
        await kube(KubeSnapshotActivities.update_snapshot_status,
                   SnapshotStatusChange(snapshot=op.snapshot, conditions=[ConditionChange(
                       type=CREATED, status=False, reason=reason, message=message)]),
                   "record the failure")
        await release_vm_queue()
        count_operation("create", "failed", reason=reason)
        return f"{reason.removeprefix('VirtualMachineSnapshot')}: {message}"
