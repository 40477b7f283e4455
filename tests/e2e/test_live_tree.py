"""The live tree: snapshots made or removed directly in vCenter show on the VM within seconds, as Unmanaged,
through vCenter's change notifications (no operation of ours runs in between)."""

from __future__ import annotations

from pyVim.connect import Disconnect

from activities.vsphere.properties import virtual_machine
from activities.vsphere.tasks import wait_for_task
from api.names import SnapshotReferenceType
from testbed.vms import connect, create_vm, eventually, get_snapshot, get_vm, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready


def in_vcenter(vcsim, sim_vm: str, action) -> None:
    si = connect(vcsim)
    try:
        task = action(virtual_machine(si, vcsim.control.vms()[sim_vm]), si)
        wait_for_task(si, task, lambda _: None)
    finally:
        Disconnect(si)


def test_snapshots_made_in_vcenter_show_as_unmanaged(product, kube_api, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    create(kube_api, namespace, snapshot_manifest("managed", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "managed"))

    in_vcenter(vcsim, sim_vm, lambda vm, si: vm.CreateSnapshot_Task(name="made-in-vcenter", memory=False,
                                                                     quiesce=False))

    def current_is_unmanaged():
        vm = get_vm(kube_api, namespace, "my-vm")
        current = vm.status.current_snapshot
        return vm if current and current.type == SnapshotReferenceType.UNMANAGED else None
    vm = eventually(current_is_unmanaged, what="Unmanaged current snapshot")
    assert vm.status.current_snapshot.name is None
    assert [(r.type, r.name) for r in vm.status.root_snapshots] == [(SnapshotReferenceType.MANAGED, "managed")]
    eventually(lambda: [(c.type, c.name) for c in get_snapshot(kube_api, namespace, "managed").status.children]
               == [(SnapshotReferenceType.UNMANAGED, None)], what="the managed parent lists an Unmanaged child")

    def remove_all(vm, si):
        from activities.vsphere.snapshots import read_tree
        node = read_tree(si, vm).find("made-in-vcenter")[0]
        from activities.vsphere.properties import snapshot
        return snapshot(si, node.moref).RemoveSnapshot_Task(removeChildren=False)
    in_vcenter(vcsim, sim_vm, remove_all)

    def back_to_managed():
        current = get_vm(kube_api, namespace, "my-vm").status.current_snapshot
        return current is not None and (current.type, current.name) == (SnapshotReferenceType.MANAGED, "managed")
    eventually(back_to_managed, what="current back to the managed snapshot")
    eventually(lambda: not get_snapshot(kube_api, namespace, "managed").status.children,
               what="children emptied")
