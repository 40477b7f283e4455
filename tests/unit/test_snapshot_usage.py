"""Snapshot storage as VM Operator counts it, from a hand-built layoutEx (pure: pyvmomi data objects).

The VM: a classic disk (device 2000) and an FCD-backed volume (device 2001, it has a vDiskId). Two snapshots:
snap-1 with memory, taken on the base disks; snap-2 without, taken on the deltas written after snap-1. The VM
now writes to a third pair of deltas, which belongs to no snapshot.
"""

from __future__ import annotations

import pytest
from pyVmomi import vim

from activities.vsphere.snapshots import snapshot_used_bytes, snapshots_usage
from contract.payloads import SnapshotUsage

CLASSIC, FCD = 2000, 2001
KiB, MiB, GiB = 2**10, 2**20, 2**30

SIZES = {
    # base disks (descriptor, extent) of the classic disk and of the FCD
    1: 512, 2: 10 * GiB, 3: 512, 4: 4 * GiB,
    # snap-1: .vmsn and .vmem
    10: 32 * KiB, 11: 2 * GiB,
    # deltas written between snap-1 and snap-2 (classic, then FCD)
    20: 512, 21: 300 * MiB, 22: 512, 23: 70 * MiB,
    # snap-2: .vmsn only (no memory)
    30: 32 * KiB,
    # the running deltas after snap-2: in no snapshot
    40: 512, 41: 5 * MiB, 42: 512, 43: 1 * MiB,
}


def _chain(*units: list[int]) -> list[vim.vm.FileLayoutEx.DiskUnit]:
    return [vim.vm.FileLayoutEx.DiskUnit(fileKey=keys) for keys in units]


def _disks(classic: list[list[int]], fcd: list[list[int]]) -> list[vim.vm.FileLayoutEx.DiskLayout]:
    return [vim.vm.FileLayoutEx.DiskLayout(key=CLASSIC, chain=_chain(*classic)),
            vim.vm.FileLayoutEx.DiskLayout(key=FCD, chain=_chain(*fcd))]


def _layout(snapshots: list[vim.vm.FileLayoutEx.SnapshotLayout]) -> vim.vm.FileLayoutEx:
    return vim.vm.FileLayoutEx(
        file=[vim.vm.FileLayoutEx.FileInfo(key=key, name=f"[ds] vm/file-{key}", type="diskExtent", size=size)
              for key, size in SIZES.items()],
        disk=_disks([[1, 2], [20, 21], [40, 41]], [[3, 4], [22, 23], [42, 43]]),
        snapshot=snapshots)


SNAP_1 = vim.vm.FileLayoutEx.SnapshotLayout(key=vim.vm.Snapshot("snapshot-1"), dataKey=10, memoryKey=11,
                                            disk=_disks([[1, 2]], [[3, 4]]))
SNAP_2 = vim.vm.FileLayoutEx.SnapshotLayout(key=vim.vm.Snapshot("snapshot-2"), dataKey=30, memoryKey=-1,
                                            disk=_disks([[1, 2], [20, 21]], [[3, 4], [22, 23]]))
DEVICES = [vim.vm.device.VirtualDisk(key=CLASSIC),
           vim.vm.device.VirtualDisk(key=FCD, vDiskId=vim.vslm.ID(id="fcd-7f3e")),
           vim.vm.device.VirtualCdrom(key=3000)]


def test_all_snapshots_are_summed_with_fcd_deltas_apart():
    usage = snapshots_usage(_layout([SNAP_1, SNAP_2]), DEVICES)

    # snap-1: .vmsn + .vmem + the child-most unit of the classic chain (the base disk)
    # snap-2: .vmsn + the classic delta it sits on; the running deltas (40-43) belong to no snapshot
    snap_1_vm = 32 * KiB + 2 * GiB + 512 + 10 * GiB
    snap_2_vm = 32 * KiB + 512 + 300 * MiB
    assert usage == SnapshotUsage(vm_bytes=snap_1_vm + snap_2_vm,
                                  volume_bytes=(512 + 4 * GiB) + (512 + 70 * MiB))
    # the VM total is the sum of what each snapshot's status.storage.used says
    layout = _layout([SNAP_1, SNAP_2])
    assert usage.vm_bytes == (snapshot_used_bytes(layout, DEVICES, "snapshot-1")
                              + snapshot_used_bytes(layout, DEVICES, "snapshot-2"))


def test_without_the_device_list_an_fcd_cannot_be_told_apart_and_counts_for_the_vm():
    usage = snapshots_usage(_layout([SNAP_2]), [])

    assert usage == SnapshotUsage(vm_bytes=32 * KiB + 512 + 300 * MiB + 512 + 70 * MiB, volume_bytes=0)


@pytest.mark.parametrize("layout", [None, _layout([])], ids=["no-layoutEx", "no-snapshots"])
def test_a_vm_without_snapshots_holds_nothing(layout):
    assert snapshots_usage(layout, DEVICES) == SnapshotUsage(vm_bytes=0, volume_bytes=0)


def test_a_disk_without_a_chain_and_a_file_without_a_size_count_nothing():
    snapshot = vim.vm.FileLayoutEx.SnapshotLayout(
        key=vim.vm.Snapshot("snapshot-3"), dataKey=99, memoryKey=-1,
        disk=[vim.vm.FileLayoutEx.DiskLayout(key=CLASSIC, chain=[])])
    unsized = vim.vm.FileLayoutEx.FileInfo(key=99, name="[ds] vm/x.vmsn", type="snapshotData")
    layout = vim.vm.FileLayoutEx(file=[unsized], snapshot=[snapshot])

    assert snapshots_usage(layout, DEVICES) == SnapshotUsage()
