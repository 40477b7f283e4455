"""A delete that cannot finish never loses track of the vSphere snapshot: the object stays, with a condition
that says why, and the delete is retried until vCenter removes the snapshot. A snapshot whose VirtualMachine
object is gone (standalone clusters keep the vCenter VM) still has its vSphere snapshot removed."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from api.names import (
    GROUP,
    SNAPSHOT_DELETED_CONDITION,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_PLURAL,
    VERSION,
    VM_PLURAL,
    ConditionStatus,
    EventReason,
    SnapshotReason,
)
from testbed.product import Product
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready
from tests.e2e.test_snapshot_ownership import events_of, tree

REFUSAL = "the snapshot's delta disk is locked by a backup"


def gone(kube_api, namespace: str, name: str) -> bool:
    try:
        get_snapshot(kube_api, namespace, name)
    except ApiException as e:
        return e.status == 404
    return False


def test_a_delete_vcenter_refuses_keeps_the_object_with_a_condition_and_retries(
        product_env, tmp_path, csi_driver, kube_api, namespace, vcsim, sim_vm):
    product = Product(tmp_path, product_env)
    try:
        product.start_worker(VMSNAP_DELETE_RETRY_SECONDS="1", VMSNAP_DELETE_RETRY_MAX_SECONDS="2")
        product.start_bridge()
        create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
        create(kube_api, namespace, snapshot_manifest("stuck", "my-vm"))
        moref = eventually(lambda: ready(kube_api, namespace, "stuck")).status.unique_id

        vcsim.control.inject_fault("RemoveSnapshot_Task", sim_vm, "FileLocked", REFUSAL, count=0)
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                                          "stuck")

        def failed_twice():
            snap = get_snapshot(kube_api, namespace, "stuck")
            condition = snap.condition(SNAPSHOT_DELETED_CONDITION)
            return condition is not None and "attempt 2;" in condition.message and (snap, condition)
        snap, condition = eventually(failed_twice, what="the failed delete on the object, retried")
        assert (condition.status, condition.reason) == (ConditionStatus.FALSE, SnapshotReason.DELETION_FAILED)
        assert REFUSAL in condition.message
        assert SNAPSHOT_FINALIZER in snap.metadata.finalizers
        assert [n.moref for n in tree(vcsim, sim_vm).walk()] == [moref], "the vSphere snapshot is kept track of"
        warnings = eventually(lambda: [e for e in events_of(kube_api, namespace, "stuck")
                                       if e.reason == SnapshotReason.DELETION_FAILED])
        assert warnings[0].type == "Warning" and REFUSAL in warnings[0].message

        vcsim.control.clear()                        # vCenter recovers: the next retry goes through
        eventually(lambda: gone(kube_api, namespace, "stuck"), what="deleted once vCenter lets it")
        assert list(tree(vcsim, sim_vm).walk()) == []
        assert any(e.reason == EventReason.SNAPSHOT_DELETED for e in events_of(kube_api, namespace, "stuck"))
    finally:
        product.stop()


def test_snapshots_of_a_deleted_vm_object_are_removed_in_vcenter(product: Product, kube_api, namespace, vcsim,
                                                                 sim_vm):
    """Standalone: deleting the VirtualMachine object leaves the vCenter VM, so its snapshots' deletes (the
    garbage collector deletes them with their owner) must still find it."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    for name in ("first", "second"):
        create(kube_api, namespace, snapshot_manifest(name, "my-vm"))
        eventually(lambda name=name: ready(kube_api, namespace, name))

    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, "my-vm")
    for name in ("first", "second"):
        eventually(lambda name=name: gone(kube_api, namespace, name), what=f"{name} garbage-collected")
    assert list(tree(vcsim, sim_vm).walk()) == [], "the vCenter VM's snapshots are removed"
