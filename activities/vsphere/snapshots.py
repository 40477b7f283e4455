"""The VM's snapshot tree and snapshot storage, read from vSphere and turned into our models."""

from __future__ import annotations

from pyVmomi import vim

from activities.vsphere.properties import retrieve
from api.names import PowerState
from api.operations import SnapshotNode, SnapshotTree

_POWER_STATES = {
    vim.VirtualMachine.PowerState.poweredOn: PowerState.POWERED_ON,
    vim.VirtualMachine.PowerState.suspended: PowerState.SUSPENDED,
}


def power_state(state) -> PowerState:
    """vSphere tree-node state → API power state; anything unknown counts as PoweredOff (as VM Operator)."""
    return _POWER_STATES.get(state, PowerState.POWERED_OFF)


def _node(tree_node: vim.vm.SnapshotTree) -> SnapshotNode:
    return SnapshotNode(name=tree_node.name, moref=tree_node.snapshot._moId, power_state=power_state(tree_node.state),
                        quiesced=bool(tree_node.quiesced),
                        children=[_node(c) for c in tree_node.childSnapshotList or []])


def tree_from_info(info: vim.vm.SnapshotInfo | None) -> SnapshotTree:
    if info is None:
        return SnapshotTree()
    current = info.currentSnapshot._moId if info.currentSnapshot is not None else None
    return SnapshotTree(roots=[_node(n) for n in info.rootSnapshotList or []], current=current)


def read_tree(si: vim.ServiceInstance, vm: vim.VirtualMachine) -> SnapshotTree:
    return tree_from_info(retrieve(si, vm, ["snapshot"]).get("snapshot"))


def snapshot_used_bytes(layout: vim.vm.FileLayoutEx | None, devices: list, snapshot_moref: str) -> int:
    """Bytes a snapshot holds, as VM Operator counts `status.storage.used`: its memory file (if any), its
    .vmsn, and the child-most delta of each disk chain, leaving out FCD (PVC) disks, which the CSI
    VolumeSnapshot accounting covers."""
    if layout is None:
        return 0
    entry = next((s for s in layout.snapshot or [] if s.key._moId == snapshot_moref), None)
    if entry is None:
        raise LookupError(f"snapshot {snapshot_moref} has no layoutEx entry")
    sizes = {f.key: f.size or 0 for f in layout.file or []}
    fcd_disks = {d.key for d in devices or []
                 if isinstance(d, vim.vm.device.VirtualDisk) and d.vDiskId is not None and d.vDiskId.id}
    total = sizes.get(entry.dataKey, 0)
    if entry.memoryKey not in (None, -1):
        total += sizes.get(entry.memoryKey, 0)
    for disk in entry.disk or []:
        if disk.key in fcd_disks or not disk.chain:
            continue
        total += sum(sizes.get(k, 0) for k in disk.chain[-1].fileKey or [])
    return total


def read_used_bytes(si: vim.ServiceInstance, vm: vim.VirtualMachine, snapshot_moref: str) -> int:
    props = retrieve(si, vm, ["layoutEx", "config.hardware.device"])
    return snapshot_used_bytes(props.get("layoutEx"), props.get("config.hardware.device") or [], snapshot_moref)
