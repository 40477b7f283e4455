"""The VM's snapshot tree and snapshot storage, read from vSphere and turned into our models."""

from __future__ import annotations

from pyVmomi import vim

from activities.vsphere.properties import retrieve, snapshot
from api.names import SNAPSHOT_OWNER_EXTRA_CONFIG_KEY, PowerState
from contract.payloads import SnapshotNode, SnapshotTree, SnapshotUsage
from runtime.vsphere_inventory import VSPHERE_POWER_STATES


def power_state(state: object) -> PowerState:
    """vSphere tree-node state → API power state; anything unknown counts as PoweredOff (as VM Operator)."""
    return VSPHERE_POWER_STATES.get(str(state), PowerState.POWERED_OFF)


def _node(tree_node: vim.vm.SnapshotTree) -> SnapshotNode:
    return SnapshotNode(name=tree_node.name, moref=tree_node.snapshot._moId, power_state=power_state(tree_node.state),
                        quiesced=bool(tree_node.quiesced),
                        children=[_node(c) for c in tree_node.childSnapshotList or []])


def tree_from_info(info: vim.vm.SnapshotInfo | None) -> SnapshotTree:
    if info is None:
        return SnapshotTree()
    current = info.currentSnapshot._moId if info.currentSnapshot is not None else None
    return SnapshotTree(roots=[_node(n) for n in info.rootSnapshotList or []], current=current)


def read_tree(si: vim.ServiceInstance, vm: vim.VirtualMachine, *, usage: bool = False) -> SnapshotTree:
    """The VM's snapshot tree; with `usage`, also what all its snapshots hold, read in the same round trip (so
    the tree and the sizes describe the same moment)."""
    if not usage:
        return tree_from_info(retrieve(si, vm, ["snapshot"]).get("snapshot"))
    props = retrieve(si, vm, ["snapshot", "layoutEx", "config.hardware.device"])
    tree = tree_from_info(props.get("snapshot"))
    tree.usage = snapshots_usage(props.get("layoutEx"), props.get("config.hardware.device") or [])
    return tree


def _fcd_disk_keys(devices: list[vim.vm.device.VirtualDevice]) -> set[int]:
    """Device keys of the disks that are First Class Disks (a PVC's volume): they carry a vDiskId."""
    return {d.key for d in devices or []
            if isinstance(d, vim.vm.device.VirtualDisk) and d.vDiskId is not None and d.vDiskId.id}


def _snapshot_sizes(entry: vim.vm.FileLayoutEx.SnapshotLayout, sizes: dict[int, int],
                    fcd_disks: set[int]) -> SnapshotUsage:
    """One layoutEx.snapshot[] entry as VM Operator's GetSnapshotSize counts it: its .vmsn, its memory file (if
    any) and the child-most delta of each disk chain; the deltas of FCD disks apart, in `volume_bytes`."""
    vm_bytes = sizes.get(entry.dataKey, 0)
    if entry.memoryKey not in (None, -1):
        vm_bytes += sizes.get(entry.memoryKey, 0)
    volume_bytes = 0
    for disk in entry.disk or []:
        if not disk.chain:
            continue
        delta = sum(sizes.get(k, 0) for k in disk.chain[-1].fileKey or [])
        if disk.key in fcd_disks:
            volume_bytes += delta
        else:
            vm_bytes += delta
    return SnapshotUsage(vm_bytes=vm_bytes, volume_bytes=volume_bytes)


def _file_sizes(layout: vim.vm.FileLayoutEx) -> dict[int, int]:
    return {f.key: f.size or 0 for f in layout.file or []}


def snapshot_owner(si: vim.ServiceInstance, snapshot_moref: str) -> str | None:
    """The UID of the VirtualMachineSnapshot object the snapshot was made for, from the ExtraConfig it captured
    (SNAPSHOT_OWNER_EXTRA_CONFIG_KEY); None for a snapshot this product did not make."""
    extra = retrieve(si, snapshot(si, snapshot_moref), ["config.extraConfig"]).get("config.extraConfig") or []
    return next((o.value for o in extra if o.key == SNAPSHOT_OWNER_EXTRA_CONFIG_KEY), None)


def _walk(nodes: list[vim.vm.SnapshotTree] | None) -> list[vim.vm.SnapshotTree]:
    out: list[vim.vm.SnapshotTree] = []
    stack = list(nodes or [])
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.childSnapshotList or [])
    return out


def find_own_snapshot(si: vim.ServiceInstance, vm: vim.VirtualMachine, name: str,
                      owner_uid: str) -> SnapshotNode | None:
    """The snapshot of this name that the object `owner_uid` made: the earliest one carrying its UID.

    The UID is in the VM's ExtraConfig from just before the object's create task until the VM's next create,
    so every snapshot that task made carries it, whether or not the create lived to record it. A snapshot
    someone else made with the same name before that carries no UID or another's; one made by hand with the
    same name after it may carry it too, and is told apart by being later than ours."""
    info = retrieve(si, vm, ["snapshot"]).get("snapshot")
    named = [n for n in _walk(info.rootSnapshotList if info else None) if n.name == name]
    own = [n for n in named if snapshot_owner(si, n.snapshot._moId) == owner_uid]
    return _node(min(own, key=lambda n: n.createTime)) if own else None


def snapshot_used_bytes(layout: vim.vm.FileLayoutEx | None, devices: list[vim.vm.device.VirtualDevice],
                        snapshot_moref: str) -> int:
    """Bytes a snapshot holds, as VM Operator counts `status.storage.used`: its memory file (if any), its
    .vmsn, and the child-most delta of each disk chain, leaving out FCD (PVC) disks, which the CSI
    VolumeSnapshot accounting covers."""
    if layout is None:
        return 0
    entry = next((s for s in layout.snapshot or [] if s.key._moId == snapshot_moref), None)
    if entry is None:
        raise LookupError(f"snapshot {snapshot_moref} has no layoutEx entry")
    return _snapshot_sizes(entry, _file_sizes(layout), _fcd_disk_keys(devices)).vm_bytes


def snapshots_usage(layout: vim.vm.FileLayoutEx | None, devices: list[vim.vm.device.VirtualDevice]) -> SnapshotUsage:
    """What all the VM's snapshots hold, as VM Operator's GetAllSnapshotSize counts it for the VM's
    `status.storage.usage.snapshots`: the sum over every layoutEx.snapshot[] entry (no layout: nothing)."""
    if layout is None:
        return SnapshotUsage()
    sizes, fcd_disks = _file_sizes(layout), _fcd_disk_keys(devices)
    each = [_snapshot_sizes(entry, sizes, fcd_disks) for entry in layout.snapshot or []]
    return SnapshotUsage(vm_bytes=sum(u.vm_bytes for u in each), volume_bytes=sum(u.volume_bytes for u in each))


def read_tree_and_used_bytes(si: vim.ServiceInstance, vm: vim.VirtualMachine,
                             snapshot_moref: str) -> tuple[SnapshotTree, int, PowerState]:
    """The VM's tree with its snapshots' usage, one snapshot's size, and the VM's power state, from one read."""
    props = retrieve(si, vm, ["snapshot", "layoutEx", "config.hardware.device", "runtime.powerState"])
    devices = props.get("config.hardware.device") or []
    tree = tree_from_info(props.get("snapshot"))
    tree.usage = snapshots_usage(props.get("layoutEx"), devices)
    return (tree, snapshot_used_bytes(props.get("layoutEx"), devices, snapshot_moref),
            power_state(props.get("runtime.powerState")))


def read_used_bytes(si: vim.ServiceInstance, vm: vim.VirtualMachine, snapshot_moref: str) -> int:
    props = retrieve(si, vm, ["layoutEx", "config.hardware.device"])
    return snapshot_used_bytes(props.get("layoutEx"), props.get("config.hardware.device") or [], snapshot_moref)
