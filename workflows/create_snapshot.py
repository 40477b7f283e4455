"""CreateSnapshot: the guide's "Creating a VirtualMachineSnapshot", step by step."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_snapshot import KubeSnapshotActivities
    from activities.payloads import (
        ConditionChange,
        CreatedSnapshot,
        EventNote,
        Operation,
        RequestedStorageEntry,
        SnapshotExtraConfig,
        SnapshotLocation,
        SnapshotPlan,
        SnapshotStatusChange,
        VSphereSnapshotRequest,
    )
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.names import EventReason, SnapshotConditionType, SnapshotReason
    from workflows import options
    from workflows.common import (
        StepFailed,
        count_operation,
        failure_message,
        kube,
        release_vm_queue,
        sync_snapshot_tree,
        together,
        vcenter,
        write_snapshot_tree,
    )

# Versions: what a step returned decides which steps follow, so a history replays on any version. Today's
# prepare marks the creation in progress and computes the requested storage (`plan.prepared`); today's task
# activity, asked with `read_after`, returns the tree and the size it read after the task. An older workflow
# never asks for them, so even a newer worker running its task returns what it expects (tests/workflows/
# test_replay_histories.py). No workflow.patched: its marker and search-attribute upsert cost history events.
CREATED, CSI_SYNCED = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED
# if the bridge's signal is missed, the annotation is re-read this often
CSI_POLL = timedelta(minutes=1)
# a CSI driver that has not answered by then no longer holds the VM's queue (its next operation may start);
# one that answers sooner costs no release signal (a history event and a workflow task in each workflow)
CSI_SLOW = timedelta(seconds=2)


@workflow.defn(name="CreateSnapshot")
class CreateSnapshot:
    def __init__(self) -> None:
        self.csi_sync_done = False
        self.step = "queued"

    @workflow.signal
    def csi_sync_completed(self) -> None:
        """The bridge saw `csi.vsphere.volume.sync: completed` on the snapshot."""
        self.csi_sync_done = True

    @workflow.query
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

        try:
            requested, created = await self._create_in_vsphere(plan)
        except StepFailed as e:
            return await self._failed(op, failure_message(e))

        self._at("record the created snapshot and the VM's tree")
        claimed = {created.node.moref: plan.snapshot.name}
        if created.tree is not None and created.used_bytes is not None:  # read by the task's activity
            await together(self._record_created(plan, created, requested, created.used_bytes),
                           write_snapshot_tree(plan.vm, plan.vm_moref, created.tree, claimed))
        else:
            await together(self._record_created(plan, created, requested),
                           sync_snapshot_tree(plan.vm, plan.vm_moref, claimed))
        self._at("CSI volume sync handshake")
        if plan.release_queue_if_csi_slow:
            await self._csi_sync(plan, release_after=CSI_SLOW)
        else:  # plans of older workers: the queue was released as the handshake began
            await together(release_vm_queue(), self._csi_sync(plan))
        await self._status(plan, conditions=[ConditionChange(type=CSI_SYNCED, status=True)])
        self._at("ready")
        count_operation("create", "ready")
        return "Ready"

    async def _create_in_vsphere(self, plan: SnapshotPlan) -> tuple[list[RequestedStorageEntry] | None,
                                                                    CreatedSnapshot]:
        self._at("store the VM's YAML and the snapshot's owner in ExtraConfig, mark the creation in progress")
        if plan.prepared:
            # prepare marked the creation in progress and computed the requested storage already
            await self._store_extra_config(plan)
            return await self._vsphere_task(plan, plan.requested)
        _, _, requested = await together(
            self._store_extra_config(plan),
            self._status(plan, conditions=[ConditionChange(type=CREATED, status=False,
                                                           reason=SnapshotReason.CREATION_IN_PROGRESS,
                                                           message=messages.CREATION_IN_PROGRESS)]),
            self._requested_storage(plan))
        return await self._vsphere_task(plan, requested)

    async def _store_extra_config(self, plan: SnapshotPlan) -> None:
        await vcenter(VSphereSnapshotActivities.store_snapshot_extra_config,
                      SnapshotExtraConfig(vm_moref=plan.vm_moref, vm_yaml=plan.vm_yaml, owner_uid=plan.snapshot.uid),
                      "VM YAML and owner UID into ExtraConfig")

    async def _vsphere_task(self, plan: SnapshotPlan, requested: list[RequestedStorageEntry] | None
                            ) -> tuple[list[RequestedStorageEntry] | None, CreatedSnapshot]:
        self._at("create the vSphere snapshot")
        quiesce = f", quiesce {plan.quiesce_minutes}m" if plan.quiesce_minutes is not None else ""
        created = await workflow.execute_activity_method(
            VSphereSnapshotActivities.create_snapshot,
            VSphereSnapshotRequest(vm_moref=plan.vm_moref, name=plan.snapshot.name, owner_uid=plan.snapshot.uid,
                                   description=plan.description, memory=plan.memory,
                                   quiesce_minutes=plan.quiesce_minutes, read_after=True),
            summary=f"CreateSnapshotEx_Task {plan.snapshot.name}{' memory' if plan.memory else ''}{quiesce}",
            **options.vsphere_snapshot_task(plan.quiesce_minutes))
        return requested, created

    async def _requested_storage(self, plan: SnapshotPlan) -> list[RequestedStorageEntry] | None:
        try:
            return await kube(KubeSnapshotActivities.compute_requested_storage, plan, "requested storage per class")
        except StepFailed as e:  # accounting must not stop (or undo) a snapshot: report, carry on
            workflow.logger.warning("requested storage of %s unknown: %s", plan.snapshot, failure_message(e))
            return None

    async def _record_created(self, plan: SnapshotPlan, created: CreatedSnapshot,
                              requested: list[RequestedStorageEntry] | None, used: int | None = None) -> None:
        node = created.node
        if used is None:
            used = await vcenter(VSphereSnapshotActivities.read_snapshot_used_bytes,
                                 SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref),
                                 "snapshot size from layoutEx")
        events = [EventNote(reason=EventReason.SAME_NAME_SNAPSHOT_LEFT_ALONE, warning=True,
                            message=messages.same_name_snapshot_left_alone(plan.snapshot.name, node.moref,
                                                                           created.same_name))
                  ] if created.same_name else []
        await self._status(plan, unique_id=node.moref, power_state=node.power_state, events=events,
                           quiesced=plan.quiesce_minutes is not None, requested=requested, used_bytes=used,
                           conditions=[ConditionChange(type=CREATED, status=True),
                                       ConditionChange(type=CSI_SYNCED, status=False,
                                                       reason=SnapshotReason.CSI_SYNC_IN_PROGRESS,
                                                       message=messages.CSI_SYNC_REQUESTED)])

    async def _csi_sync(self, plan: SnapshotPlan, release_after: timedelta | None = None) -> None:
        """Request the sync and wait for the driver's answer; with `release_after`, release the VM's queue
        if the answer takes longer than that (else the queue moves on when this workflow ends)."""
        done = await kube(KubeSnapshotActivities.request_csi_sync, plan.snapshot, "csi.vsphere.volume.sync: requested")
        while not (done or self.csi_sync_done):
            try:
                await workflow.wait_condition(lambda: self.csi_sync_done, timeout=release_after or CSI_POLL)
            except asyncio.TimeoutError:
                if release_after is not None:
                    release_after = None
                    await release_vm_queue()
                    continue
                done = await kube(KubeSnapshotActivities.csi_sync_completed, plan.snapshot, "re-read CSI annotation")

    async def _status(self, plan: SnapshotPlan, **fields: Any) -> None:
        await kube(KubeSnapshotActivities.update_snapshot_status,
                   SnapshotStatusChange(snapshot=plan.snapshot, **fields), "status")

    async def _failed(self, op: Operation, message: str) -> str:
        """Created=False/CreationFailed with vSphere's (or the precondition's) message: never a stuck object."""
        self._at(f"failed: {message}")
        await kube(KubeSnapshotActivities.update_snapshot_status,
                   SnapshotStatusChange(snapshot=op.snapshot, conditions=[ConditionChange(
                       type=CREATED, status=False, reason=SnapshotReason.CREATION_FAILED, message=message)]),
                   "record the failure")
        await release_vm_queue()
        count_operation("create", "failed")
        return f"CreationFailed: {message}"
