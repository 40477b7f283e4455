"""CreateSnapshot: the guide's "Creating a VirtualMachineSnapshot", step by step."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.kube_snapshot import KubeSnapshotActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api import messages
    from api.names import SnapshotConditionType, SnapshotReason
    from api.operations import (
        ConditionChange,
        Operation,
        SnapshotLocation,
        SnapshotPlan,
        SnapshotStatusChange,
        VMYamlBackup,
        VSphereSnapshotRequest,
    )
    from workflows import options
    from workflows.common import count_operation, failure_message, release_vm_queue, sync_snapshot_tree

CREATED, CSI_SYNCED = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED
# if the bridge's signal is missed, the annotation is re-read this often
CSI_POLL = timedelta(minutes=1)


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
            plan = await workflow.execute_activity_method(KubeSnapshotActivities.prepare_snapshot, ref,
                                                          summary=f"own {ref} and read VM", **options.KUBE)
        except ActivityError as e:
            return await self._failed(op, failure_message(e))
        if plan is None:
            await release_vm_queue()
            return "snapshot deleted before creation"

        try:
            node = await self._create_in_vsphere(plan)
        except ActivityError as e:
            return await self._failed(op, failure_message(e))

        self._at("record the created snapshot")
        try:
            requested = await workflow.execute_activity_method(
                KubeSnapshotActivities.compute_requested_storage, plan, summary="requested storage per class",
                **options.KUBE)
        except ActivityError as e:  # accounting must not undo a snapshot that exists: report, carry on
            workflow.logger.warning("requested storage of %s unknown: %s", plan.snapshot, failure_message(e))
            requested = None
        await self._status(plan, unique_id=node.moref, power_state=node.power_state,
                           quiesced=plan.quiesce_minutes is not None, requested=requested,
                           conditions=[ConditionChange(type=CREATED, status=True),
                                       ConditionChange(type=CSI_SYNCED, status=False,
                                                       reason=SnapshotReason.CSI_SYNC_IN_PROGRESS,
                                                       message=messages.CSI_SYNC_REQUESTED)])
        await sync_snapshot_tree(plan.vm, plan.vm_moref)
        await release_vm_queue()

        self._at("CSI volume sync handshake")
        await self._csi_sync(plan)

        self._at("storage used")
        used = await workflow.execute_activity_method(
            VSphereSnapshotActivities.read_snapshot_used_bytes,
            SnapshotLocation(vm_moref=plan.vm_moref, snapshot_moref=node.moref),
            summary="snapshot size from layoutEx", **options.VSPHERE)
        await self._status(plan, used_bytes=used, conditions=[ConditionChange(type=CSI_SYNCED, status=True)])
        self._at("ready")
        count_operation("create", "ready")
        return "Ready"

    async def _create_in_vsphere(self, plan: SnapshotPlan):
        self._at("store the VM's YAML in ExtraConfig")
        await workflow.execute_activity_method(VSphereSnapshotActivities.store_vm_yaml,
                                               VMYamlBackup(vm_moref=plan.vm_moref, vm_yaml=plan.vm_yaml),
                                               summary="VM YAML into ExtraConfig", **options.VSPHERE)
        await self._status(plan, conditions=[ConditionChange(type=CREATED, status=False,
                                                             reason=SnapshotReason.CREATION_IN_PROGRESS,
                                                             message=messages.CREATION_IN_PROGRESS)])
        self._at("create the vSphere snapshot")
        quiesce = f", quiesce {plan.quiesce_minutes}m" if plan.quiesce_minutes is not None else ""
        return await workflow.execute_activity_method(
            VSphereSnapshotActivities.create_snapshot,
            VSphereSnapshotRequest(vm_moref=plan.vm_moref, name=plan.snapshot.name, description=plan.description,
                                   memory=plan.memory, quiesce_minutes=plan.quiesce_minutes),
            summary=f"CreateSnapshotEx_Task {plan.snapshot.name}{' memory' if plan.memory else ''}{quiesce}",
            **options.vsphere_snapshot_task(plan.quiesce_minutes))

    async def _csi_sync(self, plan: SnapshotPlan) -> None:
        done = await workflow.execute_activity_method(KubeSnapshotActivities.request_csi_sync, plan.snapshot,
                                                      summary="csi.vsphere.volume.sync: requested", **options.KUBE)
        while not (done or self.csi_sync_done):
            try:
                await workflow.wait_condition(lambda: self.csi_sync_done, timeout=CSI_POLL)
            except asyncio.TimeoutError:
                done = await workflow.execute_activity_method(KubeSnapshotActivities.csi_sync_completed,
                                                              plan.snapshot, summary="re-read CSI annotation",
                                                              **options.KUBE)

    async def _status(self, plan: SnapshotPlan, **fields) -> None:
        await workflow.execute_activity_method(KubeSnapshotActivities.update_snapshot_status,
                                               SnapshotStatusChange(snapshot=plan.snapshot, **fields),
                                               summary="status", **options.KUBE)

    async def _failed(self, op: Operation, message: str) -> str:
        """Created=False/CreationFailed with vSphere's (or the precondition's) message: never a stuck object."""
        self._at(f"failed: {message}")
        await workflow.execute_activity_method(
            KubeSnapshotActivities.update_snapshot_status,
            SnapshotStatusChange(snapshot=op.snapshot, conditions=[ConditionChange(
                type=CREATED, status=False, reason=SnapshotReason.CREATION_FAILED, message=message)]),
            summary="record the failure", **options.KUBE)
        await release_vm_queue()
        count_operation("create", "failed")
        return f"CreationFailed: {message}"
