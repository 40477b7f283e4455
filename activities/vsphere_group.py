"""Reads against vCenter for a group snapshot: a member's preflight (the VM exists, VMware Tools runs when the
group quiesces, the VM is under vSphere's 32 snapshots) and the members' snapshots' create times (the skew).
Reads only: the members' snapshots are taken and removed by their own creates and deletes."""

from __future__ import annotations

from datetime import UTC, datetime

from pyVmomi import vim, vmodl
from temporalio import activity

from activities.vsphere import properties
from api.group_snapshot_messages import tools_not_running, vm_at_limit, vm_not_in_vcenter
from api.limits import MAX_SNAPSHOTS_PER_VM
from contract.group_payloads import MemberCheck, SnapshotTime
from runtime.vsphere import VSphereSession

TOOLS_RUNNING = "guestToolsRunning"


def _count(nodes: list[vim.vm.SnapshotTree] | None) -> int:
    return sum(1 + _count(n.childSnapshotList) for n in nodes or [])


class VSphereGroupActivities:
    def __init__(self, session: VSphereSession):
        self.session = session

    @activity.defn(name="vsphere_preflight_group_member")
    def preflight_member(self, check: MemberCheck) -> str:
        """Why vCenter will not take this member's snapshot, or "" when it will (as far as a read can tell)."""
        def read(si: vim.ServiceInstance) -> str:
            try:
                props = properties.retrieve(si, properties.virtual_machine(si, check.vm_moref),
                                            ["snapshot", "guest.toolsRunningStatus"])
            except vmodl.fault.ManagedObjectNotFound:
                return vm_not_in_vcenter(check.vm, check.vm_moref)
            info = props.get("snapshot")
            count = _count(info.rootSnapshotList if info is not None else None)
            if count >= MAX_SNAPSHOTS_PER_VM:
                return vm_at_limit(check.vm, count, MAX_SNAPSHOTS_PER_VM)
            tools = str(props.get("guest.toolsRunningStatus") or "unknown")
            if check.quiesce and tools != TOOLS_RUNNING:
                return tools_not_running(check.vm, tools)
            return ""
        return self.session.run(read)

    @activity.defn(name="vsphere_read_snapshot_create_times")
    def read_create_times(self, snapshots: list[SnapshotTime]) -> list[datetime | None]:
        """vCenter's create time of each snapshot (None: the snapshot or its VM is gone), in the order asked."""
        def read(si: vim.ServiceInstance) -> list[datetime | None]:
            times: list[datetime | None] = []
            for wanted in snapshots:
                try:
                    info = properties.retrieve(si, properties.virtual_machine(si, wanted.vm_moref),
                                               ["snapshot"]).get("snapshot")
                except vmodl.fault.ManagedObjectNotFound:
                    times.append(None)
                    continue
                times.append(_create_time(info.rootSnapshotList if info is not None else None, wanted.snapshot_moref))
            return times
        return self.session.run(read)


def _create_time(nodes: list[vim.vm.SnapshotTree] | None, moref: str) -> datetime | None:
    stack = list(nodes or [])
    while stack:
        node = stack.pop()
        if node.snapshot._moId == moref:
            created: datetime = node.createTime
            return created if created.tzinfo else created.replace(tzinfo=UTC)
        stack.extend(node.childSnapshotList or [])
    return None
