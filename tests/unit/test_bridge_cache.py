"""What the bridge caches: the informers keep only what the decisions read (no managedFields, no VM spec beyond
currentSnapshotName), the decisions are the same on the trimmed objects, lists are paginated."""

from __future__ import annotations

import copy
import json

import pytest

from api.names import (
    CSI_VOLUME_SYNC_ANNOTATION,
    GROUP,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_PLURAL,
    VERSION,
    VM_NAME_LABEL,
    VM_PLURAL,
    WORKFLOW_ID_ANNOTATION,
)
from bridge.decisions import snapshot_actions, snapshot_fields, vm_actions, vm_fields, vm_key
from contract.payloads import OperationKind
from runtime.informer import Event, Informer, without_managed_fields
from runtime.kube import Kube

NOW = "2025-01-01T00:00:00Z"
MANAGED = [{"manager": "kubectl", "operation": "Update", "apiVersion": "vmoperator.vmware.com/v1alpha5",
            "time": NOW, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:vmName": {}, "f:memory": {}}}}]


def condition(type_: str, status: str = "True", reason: str = "True", message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": NOW}


def with_overrides(obj: dict, overrides: dict) -> dict:
    """Set (or, with None, remove) each dotted path of `overrides` in `obj`."""
    for path, value in overrides.items():
        target = obj
        *parents, leaf = path.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return obj


def snap(name: str = "s-1", **overrides) -> dict:
    obj = {"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachineSnapshot",
           "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
                        "generation": 1, "creationTimestamp": NOW, "managedFields": MANAGED,
                        "labels": {VM_NAME_LABEL: "vm-a"}, "finalizers": [SNAPSHOT_FINALIZER],
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 2000 + "}"}},
           "spec": {"vmName": "vm-a", "memory": True, "quiesce": {"timeout": "10min"}, "description": "d"}}
    return with_overrides(obj, overrides)


SNAPSHOTS = {
    "new": snap(),
    "new, guide spelling": snap(**{"spec.quiesce": None, "spec.queisce": {}}),
    "no vmName": snap(**{"spec.vmName": None}),
    "created, csi requested": snap(**{"metadata.annotations": {CSI_VOLUME_SYNC_ANNOTATION: "requested"},
                                      "status": {"conditions": [condition("VirtualMachineSnapshotCreated")],
                                                 "uniqueID": "snapshot-1"}}),
    "created, csi completed": snap(**{"metadata.annotations": {CSI_VOLUME_SYNC_ANNOTATION: "completed"},
                                      "status": {"conditions": [condition("VirtualMachineSnapshotCreated")]}}),
    "ready": snap(**{"metadata.annotations": {CSI_VOLUME_SYNC_ANNOTATION: "completed"},
                     "status": {"conditions": [condition("VirtualMachineSnapshotCreated"),
                                               condition("VirtualMachineSnapshotCSISynced"),
                                               condition("VirtualMachineSnapshotReady")]}}),
    "failed": snap(**{"status": {"conditions": [condition("VirtualMachineSnapshotCreated", "False",
                                                          "VirtualMachineSnapshotCreationFailed", "boom")]}}),
    "being deleted": snap(**{"metadata.deletionTimestamp": NOW}),
    "being deleted, finalizer gone": snap(**{"metadata.deletionTimestamp": NOW, "metadata.finalizers": None}),
}


def vm(**overrides) -> dict:
    obj = {"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachine",
           "metadata": {"name": "vm-a", "namespace": "ns", "uid": "uid-vm", "generation": 3,
                        "resourceVersion": "9", "creationTimestamp": NOW, "managedFields": MANAGED,
                        "labels": {"a": "b"}, "annotations": {"vmoperator.vmware.com/x": "y" * 1000}},
           "spec": {"className": "small", "imageName": "photon", "powerState": "PoweredOn",
                    "bootstrap": {"cloudInit": {"rawCloudConfig": {"key": "user-data", "name": "x" * 3000}}},
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "pvc"}}]},
           "status": {"uniqueID": "vm-42", "powerState": "PoweredOn",
                      "network": {"interfaces": [{"name": "eth0", "ip": {"addresses": ["10.0.0.1"]}}]}}}
    return with_overrides(obj, overrides)


VMS = {
    "no revert": vm(),
    "revert asked": vm(**{"spec.currentSnapshotName": "s-1"}),
    "blank name": vm(**{"spec.currentSnapshotName": " "}),
    "cleared after a failed revert": vm(**{"spec.currentSnapshotName": "", "status.conditions": [
        condition("VirtualMachineSnapshotRevertSucceeded", "False", "VirtualMachineSnapshotRevertFailed", "x")]}),
    "being deleted": vm(**{"spec.currentSnapshotName": "s-1", "metadata.deletionTimestamp": NOW}),
    "restored by the revert in progress": vm(**{
        "spec.currentSnapshotName": "", "metadata.generation": 4,
        "metadata.annotations": {WORKFLOW_ID_ANNOTATION: "revert-snapshot/ns/vm-a/s-1/g3"},
        "status.conditions": [{**condition("VirtualMachineSnapshotRevertSucceeded", "False",
                                           "VirtualMachineSnapshotRevertInProgress"), "observedGeneration": 3}]}),
    "cleared by the user while a revert was in progress": vm(**{
        "spec.currentSnapshotName": "", "metadata.generation": 4,
        "metadata.annotations": {WORKFLOW_ID_ANNOTATION: "revert-snapshot/ns/vm-a/s-0/g1"},
        "status.conditions": [{**condition("VirtualMachineSnapshotRevertSucceeded", "False",
                                           "VirtualMachineSnapshotRevertInProgress"), "observedGeneration": 3}]}),
}


def test_a_request_the_revert_cleared_itself_asks_for_no_abort():
    """Restoring the VM clears spec.currentSnapshotName while the revert's InProgress condition is on, until the
    revert removes it a moment later: that is no abort (it would be a workflow of its own after every revert).
    The user clearing the request while a revert runs is, as is clearing it after a failed one."""
    assert vm_actions(VMS["restored by the revert in progress"]) == []
    for case in ("cleared by the user while a revert was in progress", "cleared after a failed revert"):
        [abort] = vm_actions(VMS[case])
        assert (abort.kind, abort.snapshot_name, abort.vm_generation) == (OperationKind.REVERT, "", 4 if "user" in case
                                                                          else 3)


@pytest.mark.parametrize("case", SNAPSHOTS)
def test_snapshot_decisions_are_the_same_on_the_cached_part(case):
    obj = SNAPSHOTS[case]
    slim = snapshot_fields(copy.deepcopy(obj))
    assert snapshot_actions(slim) == snapshot_actions(obj)
    assert "managedFields" not in slim["metadata"] and "labels" not in slim["metadata"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in slim["metadata"].get("annotations", {})
    assert vm_key(SNAPSHOT_PLURAL, slim) == vm_key(SNAPSHOT_PLURAL, obj)


@pytest.mark.parametrize("case", VMS)
def test_vm_decisions_are_the_same_on_the_cached_part(case):
    obj = VMS[case]
    slim = vm_fields(copy.deepcopy(obj))
    assert vm_actions(slim) == vm_actions(obj)
    assert "managedFields" not in slim["metadata"]
    assert set(slim["metadata"].get("annotations", {})) <= {WORKFLOW_ID_ANNOTATION}
    assert set(slim.get("spec", {})) <= {"currentSnapshotName"}
    assert set(slim.get("status", {})) <= {"conditions"}
    assert vm_key(VM_PLURAL, slim) == vm_key(VM_PLURAL, obj)


def test_lanes_are_the_vm_of_the_operations():
    assert vm_key(SNAPSHOT_PLURAL, snap()) == vm_key(VM_PLURAL, vm()) == ("vm", "ns", "vm-a")
    for action in snapshot_actions(snap()) + vm_actions(VMS["revert asked"]):
        assert ("vm", action.vm.namespace, action.vm.name) == ("vm", "ns", "vm-a")
    assert vm_key(SNAPSHOT_PLURAL, SNAPSHOTS["no vmName"]) == ("snapshot", "ns", "s-1")


def test_without_managed_fields():
    obj = snap()
    assert "managedFields" not in without_managed_fields(obj)["metadata"]
    assert without_managed_fields({"metadata": {}}) == {"metadata": {}}


class FakeCustom:
    """list_*_custom_object with limit/_continue over a fixed set of objects."""

    def __init__(self, items: list[dict]):
        self.items, self.calls = items, []

    def list_namespaced_custom_object(self, group, version, namespace, plural, limit=None, _continue=None):
        assert (group, version) == (GROUP, VERSION)
        self.calls.append((limit, _continue))
        start = int(_continue or 0)
        end = start + limit
        more = end < len(self.items)
        return {"items": [copy.deepcopy(o) for o in self.items[start:end]],
                "metadata": {"resourceVersion": "100", **({"continue": str(end)} if more else {})}}


def test_the_list_is_paginated_trimmed_and_sorted():
    items = [snap(f"s-{i:02d}", **{"metadata.creationTimestamp": f"2025-01-01T00:00:{59 - i:02d}Z"})
             for i in range(25)]
    delivered = []
    kube = Kube.__new__(Kube)
    kube.custom = FakeCustom(items)
    informer = Informer(kube, SNAPSHOT_PLURAL, delivered.append, namespace="ns", transform=snapshot_fields,
                        page_size=10)
    informer._list()
    assert kube.custom.calls == [(10, None), (10, "10"), (10, "20")]
    assert [e.obj["metadata"]["name"] for e in delivered] == [f"s-{i:02d}" for i in reversed(range(25))]
    assert informer.resource_version == "100" and informer.synced.is_set()
    assert len(informer.cache) == 25
    cached = [json.loads(raw) for raw in informer.cache.values()]
    assert all("managedFields" not in o["metadata"] and "labels" not in o["metadata"] for o in cached)
    assert {o["metadata"]["uid"]: o for o in cached} == {o["metadata"]["uid"]: snapshot_fields(o) for o in items}
    assert delivered[0].raw is informer.cache[delivered[0].obj["metadata"]["uid"]]  # shared, not copied


def test_an_event_keeps_its_object_encoded():
    event = Event("ADDED", SNAPSHOT_PLURAL, snapshot_fields(snap()))
    assert isinstance(event.raw, bytes) and len(event.raw) < 600
    assert event.obj == snapshot_fields(snap()) and event.obj is not event.obj


def test_a_delete_stops_the_create_only_of_a_snapshot_never_seen_ready():
    """Ready is a create's last write: deleting a Ready snapshot sends its create no cancel request."""
    def delete_of(obj: dict):
        [op] = snapshot_actions(with_overrides(obj, {"metadata.deletionTimestamp": NOW}))
        return op
    assert delete_of(copy.deepcopy(SNAPSHOTS["ready"])).stop_create is False
    for waiting in ("new", "created, csi requested", "created, csi completed"):
        assert delete_of(copy.deepcopy(SNAPSHOTS[waiting])).stop_create is True, waiting


def test_a_watch_only_process_never_loads_the_core_api():
    """kubernetes.client loads an API class on first use; CoreV1Api's module alone is ~22 MB resident. A process
    that makes Kube clients and informers of our kinds (the bridge) must not load it; the first use of `core` does."""
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from kubernetes import client\n"
        "from bridge.decisions import snapshot_fields\n"
        "from runtime.informer import Informer\n"
        "from runtime.kube import Kube\n"
        "kube = Kube(client.ApiClient())\n"
        "Informer(kube, 'virtualmachinesnapshots', print, transform=snapshot_fields)\n"
        "Informer(kube, 'virtualmachinesnapshotschedules', print, group='vmsnap.io', version='v1alpha1')\n"
        "kube.get_config_map\n"
        "print('kubernetes.client.api.core_v1_api' in sys.modules)\n"
        "kube.core\n"
        "print('kubernetes.client.api.core_v1_api' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
