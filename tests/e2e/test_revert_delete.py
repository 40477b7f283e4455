"""Revert and delete end to end: the reference's scenario (vm-operator E2E 1) step by step."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException
from pyVim.connect import Disconnect

from activities.vsphere.properties import retrieve, virtual_machine
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL, PowerState, RevertReason, SnapshotReferenceType
from testbed.vms import connect, create_vm, eventually, get_snapshot, get_vm, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready


def vcenter_power(vcsim, sim_vm: str) -> str:
    si = connect(vcsim)
    try:
        return str(retrieve(si, virtual_machine(si, vcsim.control.vms()[sim_vm]), ["runtime.powerState"])
                   ["runtime.powerState"])
    finally:
        Disconnect(si)


def patch_vm(kube_api, namespace: str, name: str, patch: dict) -> None:
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, name,
                                                                     patch)


def revert(kube_api, namespace: str, snapshot: str) -> None:
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": snapshot}})

    def reverted():
        vm = get_vm(kube_api, namespace, "my-vm")
        assert vm.revert_condition is None or vm.revert_condition.reason == RevertReason.IN_PROGRESS, \
            vm.revert_condition
        done = vm.spec.current_snapshot_name is None and vm.status.current_snapshot is not None \
            and vm.status.current_snapshot.name == snapshot
        return vm if done else None
    return eventually(reverted, what=f"reverted to {snapshot}")


def children(kube_api, namespace: str, name: str) -> list[str]:
    return [c.name for c in get_snapshot(kube_api, namespace, name).status.children or []]


def delete_snapshot(kube_api, namespace: str, name: str) -> None:
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                                      name)

    def gone():
        try:
            get_snapshot(kube_api, namespace, name)
        except ApiException as e:
            return e.status == 404
        return False
    eventually(gone, what=f"{name} deleted")


def test_reference_scenario(product, kube_api, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    patch_vm(kube_api, namespace, "my-vm", {"metadata": {"annotations": {"stage": "at-snap1"}}})

    create(kube_api, namespace, snapshot_manifest("snap1", "my-vm", memory=True, quiesce={"timeout": "10m"}))
    snap1 = eventually(lambda: ready(kube_api, namespace, "snap1"))
    assert (snap1.status.power_state, snap1.status.quiesced) == (PowerState.POWERED_ON, True)
    vm = eventually(lambda: (v := get_vm(kube_api, namespace, "my-vm")).status.current_snapshot and v)
    assert vm.status.current_snapshot.name == "snap1"
    assert [r.name for r in vm.status.root_snapshots] == ["snap1"]

    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(  # the description may change
        GROUP, VERSION, namespace, SNAPSHOT_PLURAL, "snap1", {"spec": {"description": "renamed"}})

    patch_vm(kube_api, namespace, "my-vm", {"metadata": {"annotations": {"stage": "at-snap2"}}})
    create(kube_api, namespace, snapshot_manifest("snap2", "my-vm"))
    snap2 = eventually(lambda: ready(kube_api, namespace, "snap2"))
    assert (snap2.status.power_state, snap2.status.quiesced) == (PowerState.POWERED_OFF, False)
    create(kube_api, namespace, snapshot_manifest("snap3", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "snap3"))
    eventually(lambda: children(kube_api, namespace, "snap1") == ["snap2"] and
               children(kube_api, namespace, "snap2") == ["snap3"], what="chain 1→2→3")

    vm = revert(kube_api, namespace, "snap2")                  # no memory: the VM comes back powered off
    assert vcenter_power(vcsim, sim_vm) == "poweredOff"
    assert vm.spec.power_state == PowerState.POWERED_OFF
    assert vm.metadata.annotations["stage"] == "at-snap2"     # the spec and metadata the snapshot captured

    vm = revert(kube_api, namespace, "snap1")                  # memory: powered on again
    assert vcenter_power(vcsim, sim_vm) == "poweredOn"
    assert vm.spec.power_state == PowerState.POWERED_ON
    assert vm.metadata.annotations["stage"] == "at-snap1"
    revert(kube_api, namespace, "snap1")                       # reverting to the current one works too

    delete_snapshot(kube_api, namespace, "snap2")              # snap3 moves up under snap1
    eventually(lambda: children(kube_api, namespace, "snap1") == ["snap3"], what="snap1.children == [snap3]")
    vm = get_vm(kube_api, namespace, "my-vm")
    assert (vm.status.current_snapshot.type, vm.status.current_snapshot.name) == \
        (SnapshotReferenceType.MANAGED, "snap1")
    assert vm.revert_condition is None

    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, "my-vm")
    eventually(lambda: not client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, SNAPSHOT_PLURAL)["items"], what="the VM's snapshots garbage-collected")


def chain(kube_api, namespace, vcsim, sim_vm, names=("l1", "l2", "l3a")) -> None:
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    for name in names:
        create(kube_api, namespace, snapshot_manifest(name, "my-vm"))
        eventually(lambda name=name: ready(kube_api, namespace, name))


def nested_tree(kube_api, namespace, vcsim, sim_vm) -> None:
    """l1 → l2 → {l3a, l3b}, current = l3b (as the reference's unit cases)."""
    chain(kube_api, namespace, vcsim, sim_vm)
    revert(kube_api, namespace, "l2")
    create(kube_api, namespace, snapshot_manifest("l3b", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "l3b"))
    eventually(lambda: sorted(children(kube_api, namespace, "l2")) == ["l3a", "l3b"], what="l2 has two children")


def current_and_roots(kube_api, namespace):
    vm = get_vm(kube_api, namespace, "my-vm")
    current = vm.status.current_snapshot.name if vm.status.current_snapshot else None
    return current, [r.name for r in vm.status.root_snapshots or []]


def test_delete_internal_node(product, kube_api, namespace, vcsim, sim_vm):
    nested_tree(kube_api, namespace, vcsim, sim_vm)
    delete_snapshot(kube_api, namespace, "l2")
    eventually(lambda: sorted(children(kube_api, namespace, "l1")) == ["l3a", "l3b"], what="l1 adopts l2's children")
    assert current_and_roots(kube_api, namespace) == ("l3b", ["l1"])


def test_delete_root(product, kube_api, namespace, vcsim, sim_vm):
    chain(kube_api, namespace, vcsim, sim_vm)
    delete_snapshot(kube_api, namespace, "l1")
    eventually(lambda: current_and_roots(kube_api, namespace) == ("l3a", ["l2"]), what="l2 is the new root")


def test_delete_leaf(product, kube_api, namespace, vcsim, sim_vm):
    nested_tree(kube_api, namespace, vcsim, sim_vm)
    revert(kube_api, namespace, "l3a")
    delete_snapshot(kube_api, namespace, "l3a")
    eventually(lambda: current_and_roots(kube_api, namespace) == ("l2", ["l1"]), what="current moves to the parent")
    assert children(kube_api, namespace, "l2") == ["l3b"]


def revert_condition(kube_api, namespace):
    return get_vm(kube_api, namespace, "my-vm").revert_condition


def test_revert_failing_in_vcenter_leaves_the_vm_usable(product, kube_api, namespace, vcsim, sim_vm):
    chain(kube_api, namespace, vcsim, sim_vm, names=("good", "later"))
    vcsim.control.inject_fault("RevertToSnapshot_Task", sim_vm, "InvalidPowerState", "the host said no", count=0)
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "good"}})
    cond = eventually(lambda: (c := revert_condition(kube_api, namespace)) and
                      c.reason == RevertReason.TASK_FAILED and c, what="RevertTaskFailed")
    assert cond.status == "False" and "the host said no" in cond.message

    # the VM is not blocked: a snapshot can still be taken, and clearing the field clears the condition
    create(kube_api, namespace, snapshot_manifest("after-failure", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "after-failure"))
    vcsim.control.clear()
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": None}})
    eventually(lambda: revert_condition(kube_api, namespace) is None, what="condition cleared by the abort")
    revert(kube_api, namespace, "good")                         # and a later revert works


def test_revert_refusals_change_nothing_in_vcenter(product, kube_api, namespace, vcsim, sim_vm, csi_driver):
    chain(kube_api, namespace, vcsim, sim_vm, names=("only",))
    before = current_and_roots(kube_api, namespace)
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "missing"}})
    cond = eventually(lambda: (c := revert_condition(kube_api, namespace)) and
                      c.reason == RevertReason.FAILED and c, what="RevertFailed")
    assert 'failed to get snapshot object "missing"' in cond.message
    assert current_and_roots(kube_api, namespace) == before
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": None}})
    eventually(lambda: revert_condition(kube_api, namespace) is None, what="abort clears it")

    # a snapshot that is not Ready yet: the CSI driver holds its answer back
    csi_driver.hold()
    try:
        create(kube_api, namespace, snapshot_manifest("unready", "my-vm"))
        eventually(lambda: get_snapshot(kube_api, namespace, "unready").is_created, what="unready created")
        patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "unready"}})
        cond = eventually(lambda: (c := revert_condition(kube_api, namespace)) and
                          c.reason == RevertReason.SKIPPED and c, what="RevertSkipped")
        assert cond.message == 'skipping revert for not-ready snapshot "unready"'
    finally:
        csi_driver.release()
    eventually(lambda: ready(kube_api, namespace, "unready"), what="Ready once the driver answers")


VOLUME_SNAPSHOT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "volumesnapshots.snapshot.storage.k8s.io",
                 "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/419"}},
    "spec": {"group": "snapshot.storage.k8s.io", "scope": "Namespaced",
             "names": {"plural": "volumesnapshots", "singular": "volumesnapshot", "kind": "VolumeSnapshot"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_revert_across_a_csi_volume_snapshot_is_refused_with_the_guides_advice(product, kube_api, namespace, vcsim,
                                                                               sim_vm, tmp_path):
    import time

    from api.messages import REVERT_CROSSES_CSI_VOLUME_SNAPSHOT
    from testbed.kube import install_crds
    crd_file = tmp_path / "volumesnapshot-crd.yaml"
    import yaml
    crd_file.write_text(yaml.safe_dump(VOLUME_SNAPSHOT_CRD))
    install_crds(kube_api, [crd_file])  # the external-snapshotter's API, as on a cluster with CSI snapshots

    core = client.CoreV1Api(kube_api)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                                               "resources": {"requests": {"storage": "1Gi"}}}})
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm,
              volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    create(kube_api, namespace, snapshot_manifest("before-csi", "my-vm"))
    snapshot = eventually(lambda: ready(kube_api, namespace, "before-csi"))
    while int(time.time()) <= int(snapshot.metadata.creation_timestamp.timestamp()):
        time.sleep(0.1)  # creation times have whole seconds: make "after" unambiguous
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "snapshot.storage.k8s.io", "v1", namespace, "volumesnapshots",
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "data-snap"},
         "spec": {"source": {"persistentVolumeClaimName": "data"}}})

    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "before-csi"}})
    cond = eventually(lambda: (c := revert_condition(kube_api, namespace)) and
                      c.reason == RevertReason.FAILED and c, what="RevertFailed")
    assert '"data-snap"' in cond.message and cond.message.endswith(REVERT_CROSSES_CSI_VOLUME_SNAPSHOT)


def test_delete_the_current_root_while_another_root_remains(product, kube_api, namespace, vcsim, sim_vm):
    """a → b, revert to a, a → c, delete a: b and c are two roots, c current; deleting c leaves b alone."""
    chain(kube_api, namespace, vcsim, sim_vm, names=("a", "b"))
    revert(kube_api, namespace, "a")
    create(kube_api, namespace, snapshot_manifest("c", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "c"))
    delete_snapshot(kube_api, namespace, "a")
    eventually(lambda: current_and_roots(kube_api, namespace) == ("c", ["b", "c"]), what="two roots, c current")
    delete_snapshot(kube_api, namespace, "c")
    eventually(lambda: current_and_roots(kube_api, namespace) == (None, ["b"]), what="b alone, no current")
