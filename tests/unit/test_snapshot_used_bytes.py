"""`status.storage.used` of one snapshot from the VM's layoutEx (activities/vsphere/snapshots.py, pure: pyvmomi data
objects), as VM Operator's GetSnapshotSize counts it: its .vmsn, its memory file if any, and the child-most delta
of each of the VM's own disk chains; FCD (PVC) disks are left to the CSI VolumeSnapshot accounting.
test_snapshot_usage.py covers the VM-wide sum; these are one snapshot's own figures."""

from __future__ import annotations

import pytest
from pyVmomi import vim

from activities.vsphere.snapshots import snapshot_used_bytes

Layout = vim.vm.FileLayoutEx
BOOT, DATA, FCD = 2000, 2001, 2002
MiB = 2**20

# key → size; snap-a with memory on the base disks, snap-b without on the deltas written after snap-a
FILES = {
    1: 10_000 * MiB, 2: 20_000 * MiB, 3: 30_000 * MiB,        # base extents: boot, data, fcd
    10: 1 * MiB, 11: 4096 * MiB,                            # snap-a: .vmsn, .vmem
    20: 300 * MiB, 21: 40 * MiB, 22: 70 * MiB, 23: 512,     # deltas after snap-a: boot, data, fcd; a descriptor
    30: 2 * MiB,                                            # snap-b: .vmsn
}
DEVICES = [vim.vm.device.VirtualDisk(key=BOOT), vim.vm.device.VirtualDisk(key=DATA),
           vim.vm.device.VirtualDisk(key=FCD, vDiskId=vim.vslm.ID(id="fcd-1")),
           vim.vm.device.VirtualDisk(key=3000, vDiskId=vim.vslm.ID(id=""))]  # an empty vDiskId is no FCD


def disk(key: int, *units: list[int]) -> Layout.DiskLayout:
    return Layout.DiskLayout(key=key, chain=[Layout.DiskUnit(fileKey=keys) for keys in units])


SNAP_A = Layout.SnapshotLayout(key=vim.vm.Snapshot("snapshot-a"), dataKey=10, memoryKey=11,
                               disk=[disk(BOOT, [1]), disk(DATA, [2]), disk(FCD, [3])])
SNAP_B = Layout.SnapshotLayout(key=vim.vm.Snapshot("snapshot-b"), dataKey=30, memoryKey=-1,
                               disk=[disk(BOOT, [1], [20, 23]), disk(DATA, [2], [21]), disk(FCD, [3], [22])])


def layout(*snapshots: Layout.SnapshotLayout, files: dict[int, int] = FILES) -> Layout:
    return Layout(file=[Layout.FileInfo(key=k, name=f"[ds] vm/{k}", type="diskExtent", size=s)
                        for k, s in files.items()], snapshot=list(snapshots))


def test_a_snapshot_with_memory_holds_its_vmsn_its_memory_and_its_own_disks_child_most_units():
    assert snapshot_used_bytes(layout(SNAP_A, SNAP_B), DEVICES, "snapshot-a") == \
        1 * MiB + 4096 * MiB + 10_000 * MiB + 20_000 * MiB  # not the FCD's 30 000


def test_a_snapshot_without_memory_holds_its_vmsn_and_the_deltas_it_sits_on():
    assert snapshot_used_bytes(layout(SNAP_A, SNAP_B), DEVICES, "snapshot-b") == 2 * MiB + 300 * MiB + 512 + 40 * MiB


def test_without_the_device_list_an_fcd_counts_as_the_vms_own_disk():
    assert snapshot_used_bytes(layout(SNAP_B), [], "snapshot-b") == 2 * MiB + 300 * MiB + 512 + 40 * MiB + 70 * MiB


def test_files_missing_from_the_layout_or_without_a_size_count_nothing():
    sizes = {k: v for k, v in FILES.items() if k not in (11, 21)}  # .vmem and the data delta not listed
    unsized = layout(SNAP_A, SNAP_B, files=sizes)
    unsized.file.append(Layout.FileInfo(key=21, name="[ds] vm/21", type="diskExtent"))  # listed, no size
    memory_key_unset = Layout.SnapshotLayout(key=vim.vm.Snapshot("snapshot-c"), dataKey=30, disk=[])

    assert snapshot_used_bytes(unsized, DEVICES, "snapshot-a") == 1 * MiB + 10_000 * MiB + 20_000 * MiB
    assert snapshot_used_bytes(unsized, DEVICES, "snapshot-b") == 2 * MiB + 300 * MiB + 512
    assert snapshot_used_bytes(layout(memory_key_unset), DEVICES, "snapshot-c") == 2 * MiB


def test_no_layout_is_nothing_and_a_snapshot_missing_from_it_is_an_error():
    assert snapshot_used_bytes(None, DEVICES, "snapshot-a") == 0
    with pytest.raises(LookupError, match="snapshot-z has no layoutEx entry"):
        snapshot_used_bytes(layout(SNAP_A), DEVICES, "snapshot-z")
