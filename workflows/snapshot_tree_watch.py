"""SnapshotTreeWatch: keeps every VM's snapshot status equal to vCenter's tree, including snapshots made or
removed directly in vCenter (shown as Unmanaged). vCenter's change notifications drive it within seconds; a
periodic full resync is the safety net. One per worker deployment (task queue), started by the workers."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.kube_vm import KubeVMActivities
    from activities.vsphere_tree_watch import VSphereTreeWatchActivities
    from contract.names import TREE_WATCH_WORKFLOW
    from contract.payloads import TreeWatchState
    from workflows import options
    from workflows.common import kube, sync_snapshot_tree

WAIT_SECONDS = 30.0
ROUNDS_PER_RUN = 200  # then continue-as-new, so the history stays small


@workflow.defn(name=TREE_WATCH_WORKFLOW)
class SnapshotTreeWatch:
    @workflow.run
    async def run(self, state: TreeWatchState) -> None:
        for _ in range(ROUNDS_PER_RUN):
            changed = await workflow.execute_activity_method(
                VSphereTreeWatchActivities.wait_for_snapshot_changes, WAIT_SECONDS,
                summary="wait for vCenter snapshot changes", start_to_close_timeout=timedelta(seconds=WAIT_SECONDS * 4),
                heartbeat_timeout=timedelta(seconds=20), retry_policy=options.VSPHERE["retry_policy"])
            now = workflow.now().timestamp()
            full = now - state.last_full_resync >= state.full_resync_seconds
            if not changed and not full:
                continue
            targets = await kube(KubeVMActivities.list_vm_targets, None if full else changed, "VMs to resync")
            if full:
                state.last_full_resync = now
            workflow.set_current_details(f"resyncing {len(targets)} VM(s){' (full)' if full else ''}")
            for target in targets:
                await sync_snapshot_tree(target.vm, target.vm_moref)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(state)
