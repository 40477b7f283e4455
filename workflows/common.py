"""Small pieces every snapshot workflow shares."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.kube_vm import KubeVMActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from api.operations import TreeSync, VMRef
    from workflows import options
    from workflows.vm_snapshot_queue import VirtualMachineSnapshotQueue


def failure_message(error: ActivityError) -> str:
    """The message of the error an activity raised (vSphere's fault text, a precondition), for a condition."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def failure_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def count_operation(kind: str, result: str) -> None:
    """`vmsnap_operations` on the worker's metrics endpoint, by kind and result."""
    workflow.metric_meter().create_counter("vmsnap_operations", "snapshot operations finished").add(
        1, {"kind": kind, "result": result})


async def release_vm_queue() -> None:
    """Tell the VM's queue that this operation is done with vCenter, so the next one may start while this one
    waits for slow non-vCenter steps (the CSI handshake). A no-op when started outside a queue."""
    parent = workflow.info().parent
    if parent is not None:
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            VirtualMachineSnapshotQueue.release, workflow.info().workflow_id)


async def sync_snapshot_tree(vm: VMRef, vm_moref: str) -> None:
    """vCenter's snapshot tree onto the VM's status and each snapshot's children."""
    tree = await workflow.execute_activity_method(VSphereSnapshotActivities.read_snapshot_tree, vm_moref,
                                                  summary="read snapshot tree", **options.VSPHERE)
    if tree is not None:
        await workflow.execute_activity_method(KubeVMActivities.sync_snapshot_tree, TreeSync(vm=vm, tree=tree),
                                               summary="tree onto VM and snapshots", **options.KUBE)
