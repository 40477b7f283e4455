"""The tree sync (activities/kube_vm.py) against the real apiserver: an operation holding its VM's queue lists the
VM's snapshots once; the tree watch, which runs beside operations, lists again after writing and writes again when
a create recorded its snapshot's uniqueID meanwhile, so a stale view never stays on the VM."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from activities.kube_vm import KubeVMActivities
from api import names
from contract.payloads import SnapshotNode, SnapshotTree, TreeSync, VMRef
from runtime.kube import Kube
from tests.e2e.test_kube_writes import CountingCustomObjects, their

LIST = "list_namespaced_custom_object"
# vCenter's tree: snap-1 (object "first"), its child snap-2 (object "second", being recorded by its create)
TREE = SnapshotTree(current="snap-2", roots=[SnapshotNode(
    name="first", moref="snap-1", power_state="PoweredOff",
    children=[SnapshotNode(name="second", moref="snap-2", power_state="PoweredOff")])])


def make_objects(kube_api, namespace: str) -> None:
    custom = their(kube_api)
    custom.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.VM_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": "VirtualMachine", "metadata": {"name": "my-vm"},
        "spec": {"powerState": "PoweredOn", "className": "best-effort-small", "imageName": "photon-5",
                 "storageClass": "wcpglobal-storage-profile"}})
    for name in ("first", "second"):
        custom.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL, {
            "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.SNAPSHOT_KIND,
            "metadata": {"name": name, "labels": {names.VM_NAME_LABEL: "my-vm"}}, "spec": {"vmName": "my-vm"}})
    record_unique_id(kube_api, namespace, "first", "snap-1")


def record_unique_id(kube_api, namespace: str, name: str, moref: str) -> None:
    """What a create's status write does when its vSphere snapshot exists."""
    their(kube_api).patch_namespaced_custom_object_status(names.GROUP, names.VERSION, namespace,
                                                          names.SNAPSHOT_PLURAL, name, {"status": {"uniqueID": moref}})


def vm_tree(kube_api, namespace: str) -> tuple[Any, Any]:
    status = their(kube_api).get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.VM_PLURAL,
                                                          "my-vm").get("status", {})
    return status.get("currentSnapshot"), status.get("rootSnapshots")


def first_children(kube_api, namespace: str) -> Any:
    return their(kube_api).get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL,
                                                        "first").get("status", {}).get("children")


class CreateRecordsDuringFirstList(CountingCustomObjects):
    """The product's calls, counted; right after the first list of the VM's snapshots, a create records snap-2
    on "second" (a sync running beside an operation)."""

    def __init__(self, real: client.CustomObjectsApi, kube_api, namespace: str):
        super().__init__(real)
        self.record = lambda: record_unique_id(kube_api, namespace, "second", "snap-2")

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != LIST:
            return call

        def listed(*args: Any, **kwargs: Any) -> Any:
            result = call(*args, **kwargs)
            if self.calls.count(LIST) == 1:
                self.record()
            return result
        return listed


def counted_activities(kube_api, namespace: str) -> tuple[KubeVMActivities, CountingCustomObjects]:
    kube = Kube(kube_api)
    counting = CreateRecordsDuringFirstList(kube.custom, kube_api, namespace)
    kube.custom = counting  # type: ignore[assignment]
    return KubeVMActivities(kube), counting


def managed(name: str) -> dict[str, str]:
    return {"type": "Managed", "name": name}


def test_an_operation_holding_the_queue_lists_once_and_writes_its_claimed_snapshot_as_managed(kube_api, namespace):
    make_objects(kube_api, namespace)
    activities, counting = counted_activities(kube_api, namespace)

    activities.sync_snapshot_tree(TreeSync(vm=VMRef(namespace=namespace, name="my-vm"), vm_moref="vm-1", tree=TREE,
                                           claimed={"snap-2": "second"}, queue_held=True))

    assert counting.calls.count(LIST) == 1
    assert vm_tree(kube_api, namespace) == (managed("second"), [managed("first")])
    assert first_children(kube_api, namespace) == [managed("second")]


def test_the_tree_watch_writes_again_when_a_create_recorded_its_snapshot_meanwhile(kube_api, namespace):
    make_objects(kube_api, namespace)
    activities, counting = counted_activities(kube_api, namespace)

    activities.sync_snapshot_tree(TreeSync(vm=VMRef(namespace=namespace, name="my-vm"), vm_moref="vm-1", tree=TREE))

    # the stale view (snap-2 Unmanaged) written, seen stale by the second list, written again, confirmed by a third
    assert counting.calls.count(LIST) == 3
    assert vm_tree(kube_api, namespace) == (managed("second"), [managed("first")])
    assert first_children(kube_api, namespace) == [managed("second")]
