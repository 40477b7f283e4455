"""The names Temporal records: workflow types, signals, queries, and the IDs of workflows and schedules. They
are in every running history and in the bridge's calls, so changing one breaks what is in flight — each is
spelled here once and referred to everywhere else."""

from __future__ import annotations

# --- workflow types -------------------------------------------------------------------------------------------
CREATE_SNAPSHOT_WORKFLOW = "CreateSnapshot"
REVERT_SNAPSHOT_WORKFLOW = "RevertSnapshot"
DELETE_SNAPSHOT_WORKFLOW = "DeleteSnapshot"
VM_QUEUE_WORKFLOW = "VirtualMachineSnapshotQueue"
TREE_WATCH_WORKFLOW = "SnapshotTreeWatch"
# started by name by the Temporal Schedule the bridge keeps for each VirtualMachineSnapshotSchedule
SCHEDULED_RUN_WORKFLOW = "ScheduledSnapshotRun"
# started by the bridge for each VirtualMachineGroupSnapshot: the saga that takes its members, all or none
GROUP_SNAPSHOT_WORKFLOW = "GroupSnapshot"
# started by the bridge for a Ready group's spec.revert: its members' VMs reverted one by one, in name order
GROUP_REVERT_WORKFLOW = "GroupRevert"

# --- signals and queries --------------------------------------------------------------------------------------
# the VM's queue: an operation to run (signal-with-start), the VM object going away, an operation done with vCenter
VM_QUEUE_ENQUEUE_SIGNAL = "enqueue"
VM_QUEUE_VM_DELETED_SIGNAL = "vm_deleted"
VM_QUEUE_RELEASE_SIGNAL = "release"
VM_QUEUE_PENDING_QUERY = "queue"
# a create: the bridge saw `csi.vsphere.volume.sync: completed` on its snapshot
CREATE_CSI_SYNC_COMPLETED_SIGNAL = "csi_sync_completed"
CREATE_CURRENT_STEP_QUERY = "current_step"
# the group's barrier: a member's create tells its group it is ready to start its vCenter task (it holds its VM's
# queue and has stored its ExtraConfig); the group tells every member to go once all are ready
GROUP_MEMBER_READY_SIGNAL = "member_ready"
CREATE_GROUP_GO_SIGNAL = "group_go"


# --- IDs ------------------------------------------------------------------------------------------------------
def vm_queue_workflow_id(namespace: str, vm_name: str) -> str:
    """One queue per VM."""
    return f"vm-snapshot-queue/{namespace}/{vm_name}"


def create_or_delete_workflow_id(kind: str, namespace: str, snapshot_name: str, snapshot_uid: str,
                                 retry: int = 0) -> str:
    """One run per snapshot object (its uid) and, for a delete vCenter failed, per retry."""
    prefix = "create-snapshot" if kind == CREATE_SNAPSHOT_WORKFLOW else "delete-snapshot"
    return f"{prefix}/{namespace}/{snapshot_name}/{snapshot_uid}" + (f"/retry-{retry}" if retry else "")


def revert_workflow_id(namespace: str, vm_name: str, snapshot_name: str, vm_generation: int) -> str:
    """One run per VM generation: setting the same currentSnapshotName again is a new generation, a new revert."""
    return f"revert-snapshot/{namespace}/{vm_name}/{snapshot_name}/g{vm_generation}"


def tree_watch_workflow_id(task_queue: str) -> str:
    """One watch per task queue (per worker Deployment)."""
    return f"snapshot-tree-watch/{task_queue}"


def temporal_schedule_id(namespace: str, name: str) -> str:
    """One Temporal Schedule per VirtualMachineSnapshotSchedule."""
    return f"vm-snapshot-schedule/{namespace}/{name}"


def run_workflow_id_prefix(namespace: str, name: str) -> str:
    """Temporal appends each run's scheduled time to it."""
    return f"scheduled-snapshot-run/{namespace}/{name}"


def group_snapshot_workflow_id(namespace: str, name: str, uid: str) -> str:
    """One saga per group object (its uid): a group of the same name made again is a new saga."""
    return f"group-snapshot/{namespace}/{name}/{uid}"


def group_revert_workflow_id(namespace: str, name: str, uid: str, generation: int) -> str:
    """One revert per group generation: setting spec.revert again (false, then true) is a new generation."""
    return f"group-revert/{namespace}/{name}/{uid}/g{generation}"
