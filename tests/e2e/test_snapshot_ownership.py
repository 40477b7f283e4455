"""Only the snapshot an object made is ever its own: a vSphere snapshot someone made by hand with the same name
is neither taken over by a create (even a create whose worker died mid-task) nor removed by a delete."""

from __future__ import annotations

import asyncio

from kubernetes import client
from pyVim.connect import Disconnect

from activities.vsphere.properties import virtual_machine
from activities.vsphere.snapshots import read_tree
from activities.vsphere.tasks import wait_for_task
from api.names import (
    VSPHERE_VM_ANNOTATION,
    WORKFLOW_ID_ANNOTATION,
    EventReason,
    PowerState,
    SnapshotReferenceType,
)
from contract.payloads import SnapshotTree
from testbed.product import Product
from testbed.vms import connect, create_vm, eventually, get_snapshot, get_vm, snapshot_manifest
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready
from tests.e2e.test_durability import SLOW_TASK_SECONDS, wait_for_running_task
from tests.e2e.test_revert_delete import delete_snapshot


def tree(vcsim, sim_vm: str) -> SnapshotTree:
    si = connect(vcsim)
    try:
        return read_tree(si, virtual_machine(si, vcsim.control.vms()[sim_vm]))
    finally:
        Disconnect(si)


def snapshot_by_hand(vcsim, sim_vm: str, name: str) -> str:
    """A snapshot made directly in vCenter (no memory), as a user would; its moref."""
    si = connect(vcsim)
    try:
        task = virtual_machine(si, vcsim.control.vms()[sim_vm]).CreateSnapshot_Task(
            name=name, description="made by hand", memory=False, quiesce=False)
        return wait_for_task(si, task, lambda _: None)._moId
    finally:
        Disconnect(si)


def events_of(kube_api, namespace: str, name: str) -> list[client.CoreV1Event]:
    return [e for e in client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
            if e.involved_object.name == name]


def assert_made_beside(kube_api, namespace: str, vcsim, sim_vm: str, name: str, by_hand: str) -> str:
    """The object's snapshot is its own (memory honoured), the hand-made one is still there and Unmanaged, and
    an Event says so. Returns the object's snapshot moref."""
    snap = get_snapshot(kube_api, namespace, name)
    ours = snap.status.unique_id
    assert ours and ours != by_hand, "the hand-made snapshot was taken over"
    assert snap.status.power_state == PowerState.POWERED_ON, "memory: true not honoured"
    assert sorted(n.moref for n in tree(vcsim, sim_vm).find(name)) == sorted([by_hand, ours])
    assert snap.metadata.annotations[VSPHERE_VM_ANNOTATION] == vcsim.control.vms()[sim_vm]

    def tree_status():
        vm = get_vm(kube_api, namespace, "my-vm")
        roots = [(r.type, r.name) for r in vm.status.root_snapshots or []]
        children = [(c.type, c.name) for c in get_snapshot(kube_api, namespace, name).status.children or []]
        # the hand-made snapshot is the root; ours, taken after it, is its child — and its own name
        assert roots == [(SnapshotReferenceType.UNMANAGED, "")], roots
        assert vm.status.current_snapshot.name == name, vm.status.current_snapshot
        return children == []
    eventually(tree_status, what="the tree: hand-made Unmanaged, ours Managed")

    left_alone = eventually(lambda: [e for e in events_of(kube_api, namespace, name)
                                     if e.reason == EventReason.SAME_NAME_SNAPSHOT_LEFT_ALONE],
                            what="an Event about the hand-made snapshot")
    assert by_hand in left_alone[0].message and ours in left_alone[0].message
    assert left_alone[0].type == "Warning"
    return ours


def test_a_hand_made_snapshot_of_the_same_name_is_never_taken_over_nor_deleted(product, kube_api, namespace,
                                                                               vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    by_hand = snapshot_by_hand(vcsim, sim_vm, "dup-1")

    create(kube_api, namespace, snapshot_manifest("dup-1", "my-vm", memory=True))
    eventually(lambda: ready(kube_api, namespace, "dup-1"), what="dup-1 Ready")
    assert_made_beside(kube_api, namespace, vcsim, sim_vm, "dup-1", by_hand)
    snap = get_snapshot(kube_api, namespace, "dup-1")
    assert snap.metadata.annotations[WORKFLOW_ID_ANNOTATION] == created_workflow_id(kube_api, namespace, "dup-1")

    delete_snapshot(kube_api, namespace, "dup-1")
    assert [n.moref for n in tree(vcsim, sim_vm).walk()] == [by_hand], "the delete touched the hand-made snapshot"


async def test_a_create_retried_after_a_worker_crash_adopts_only_its_own_snapshot(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    by_hand = snapshot_by_hand(vcsim, sim_vm, "dup-2")
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
    create(kube_api, namespace, snapshot_manifest("dup-2", "my-vm", memory=True))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "dup-2"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=120)

    product.processes[0].kill()                      # SIGKILL the worker with our task in flight
    product.start_worker()
    await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "dup-2"), 240, "Ready")

    await asyncio.to_thread(assert_made_beside, kube_api, namespace, vcsim, sim_vm, "dup-2", by_hand)
    assert len(tree(vcsim, sim_vm).find("dup-2")) == 2, "exactly one snapshot of ours beside the hand-made one"
