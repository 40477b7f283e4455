"""The VM's `status.storage.usage.snapshots` follows its snapshots in vCenter, as VM Operator reports it
(GetAllSnapshotSize: every layoutEx.snapshot[] entry's .vmsn, .vmem and child-most deltas; FCD deltas apart)."""

from __future__ import annotations

from pyVim.connect import Disconnect
from pyVmomi import vim

from activities.vsphere.properties import retrieve, virtual_machine
from api.quantity import quantity_bytes
from testbed.vms import connect, create_vm, eventually, get_vm, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready
from tests.e2e.test_revert_delete import delete_snapshot


def layout_usage(vcsim, sim_vm: str) -> tuple[int, int, int]:
    """(vm, volume, snapshot entries) summed here from the simulator's layoutEx, read with pyvmomi."""
    si = connect(vcsim)
    try:
        props = retrieve(si, virtual_machine(si, vcsim.control.vms()[sim_vm]),
                         ["layoutEx", "config.hardware.device"])
    finally:
        Disconnect(si)
    layout = props["layoutEx"]
    sizes = {f.key: f.size for f in layout.file}
    fcds = {d.key for d in props["config.hardware.device"]
            if isinstance(d, vim.vm.device.VirtualDisk) and d.vDiskId is not None and d.vDiskId.id}
    vm_bytes = volume_bytes = 0
    for entry in layout.snapshot or []:
        vm_bytes += sizes[entry.dataKey] + (sizes[entry.memoryKey] if entry.memoryKey != -1 else 0)
        for disk in entry.disk:
            newest = sum(sizes[key] for key in disk.chain[-1].fileKey)
            if disk.key in fcds:
                volume_bytes += newest
            else:
                vm_bytes += newest
    return vm_bytes, volume_bytes, len(layout.snapshot or [])


def usage_on_vm(kube_api, namespace: str) -> tuple[str, str] | None:
    storage = get_vm(kube_api, namespace, "my-vm").status.storage
    snapshots = storage.usage.snapshots if storage and storage.usage else None
    return (snapshots.vm, snapshots.volume) if snapshots else None


def wait_for_usage(kube_api, namespace: str, expected: tuple[int, int]) -> None:
    wanted = (str(expected[0]), str(expected[1]))  # plain byte counts, as status.storage.used is printed

    def written() -> bool:
        found = usage_on_vm(kube_api, namespace)
        assert found == wanted, f"(vm, volume) on the VM: {found}"
        return True
    eventually(written, what=f"status.storage.usage.snapshots (vm, volume) == {wanted}")


def test_vm_snapshot_usage_sums_every_snapshot_and_drops_on_delete(product, kube_api, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    assert usage_on_vm(kube_api, namespace) is None

    create(kube_api, namespace, snapshot_manifest("with-memory", "my-vm", memory=True))
    first = eventually(lambda: ready(kube_api, namespace, "with-memory"), what="with-memory Ready")
    one_vm, one_volume, entries = layout_usage(vcsim, sim_vm)
    assert entries == 1 and one_volume == 0  # the simulator's disks are no FCDs
    memory_bytes = quantity_bytes(get_vm(kube_api, namespace, "my-vm").status.hardware.memory.total)
    assert one_vm > memory_bytes  # the .vmem is in it
    assert one_vm == int(first.status.storage.used)  # one snapshot: the VM's total is that snapshot's own
    wait_for_usage(kube_api, namespace, (one_vm, one_volume))

    create(kube_api, namespace, snapshot_manifest("disk-only", "my-vm"))
    second = eventually(lambda: ready(kube_api, namespace, "disk-only"), what="disk-only Ready")
    both_vm, both_volume, entries = layout_usage(vcsim, sim_vm)
    assert entries == 2
    assert both_vm == int(first.status.storage.used) + int(second.status.storage.used) > one_vm
    wait_for_usage(kube_api, namespace, (both_vm, both_volume))

    delete_snapshot(kube_api, namespace, "disk-only")
    after_vm, after_volume, entries = layout_usage(vcsim, sim_vm)
    assert entries == 1 and (after_vm, after_volume) == (one_vm, one_volume) and after_vm < both_vm
    wait_for_usage(kube_api, namespace, (after_vm, after_volume))

    delete_snapshot(kube_api, namespace, "with-memory")
    assert layout_usage(vcsim, sim_vm) == (0, 0, 0)
    wait_for_usage(kube_api, namespace, (0, 0))
