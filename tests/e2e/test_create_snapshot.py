"""CreateSnapshot end to end: kubectl → bridge → the VM's queue → workflow → vCenter → Ready."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.names import (
    CSI_VOLUME_SYNC_ANNOTATION,
    SNAPSHOT_FINALIZER,
    TRUE_REASON,
    VM_NAME_LABEL,
    CSIVolumeSync,
    PowerState,
    SnapshotConditionType,
    SnapshotReason,
    SnapshotReferenceType,
)
from testbed.temporal_views import activity_windows
from testbed.vms import (
    STORAGE_CLASS,
    create_vm,
    eventually,
    get_snapshot,
    get_vm,
    snapshot_manifest,
    vsphere_snapshot_names,
)
from tests.guide_examples import GUIDE_SNAPSHOTS


def kubectl(kubeconfig: Path, namespace: str, *args: str, stdin: str | None = None) -> str:
    kubectl_bin = Path(sys.executable).parent / "kubectl"
    done = subprocess.run([str(kubectl_bin), "--kubeconfig", str(kubeconfig), "-n", namespace, *args],
                          input=stdin, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ready(kube_api, namespace: str, name: str):
    snapshot = get_snapshot(kube_api, namespace, name)
    return snapshot if snapshot.is_ready else None


def test_guide_examples_reach_ready_with_the_guide_status(product, kube_api, kubeconfig, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)  # the guide: quiescing needs VMware Tools

    kubectl(kubeconfig, namespace, "apply", "-f", "-", stdin=GUIDE_SNAPSHOTS)
    snaps = {n: eventually(lambda n=n: ready(kube_api, namespace, n), what=f"{n} Ready")
             for n in ("snap-1", "snap-2", "snap-3")}

    for name, snap in snaps.items():
        assert SNAPSHOT_FINALIZER in snap.metadata.finalizers
        assert snap.metadata.labels[VM_NAME_LABEL] == "my-vm"
        assert snap.metadata.annotations[CSI_VOLUME_SYNC_ANNOTATION] == CSIVolumeSync.COMPLETED
        for ctype in SnapshotConditionType:
            c = snap.condition(ctype)
            assert (c.status, c.reason, c.message) == ("True", TRUE_REASON, ""), (name, c)
        assert snap.status.unique_id.startswith("snapshot-")
        assert snap.status.storage.requested[0].storage_class == STORAGE_CLASS
        assert snap.status.storage.requested[0].total.endswith(("Gi", "Mi", "Ki"))
        assert int(snap.status.storage.used) > 0
        assert {c.observed_generation for c in snap.status.conditions} == {snap.metadata.generation}

    assert snaps["snap-1"].status.power_state == PowerState.POWERED_OFF  # no memory: recorded powered off
    assert snaps["snap-2"].status.power_state == PowerState.POWERED_ON
    assert (snaps["snap-1"].status.quiesced, snaps["snap-3"].status.quiesced) == (False, True)
    # memory snapshots account the memory too
    assert int(snaps["snap-2"].status.storage.used) > int(snaps["snap-1"].status.storage.used)

    # the chain snap-1 → snap-2 → snap-3, as the guide's status shows it
    # the VM's status and each parent's children are separate writes: wait for the last of them
    def tree_written():
        vm = get_vm(kube_api, namespace, "my-vm")
        current = vm.status.current_snapshot
        children = {n: [(c.type, c.name) for c in get_snapshot(kube_api, namespace, n).status.children or []]
                    for n in ("snap-1", "snap-2")}
        done = current is not None and current.name == "snap-3" and children["snap-2"] == [
            (SnapshotReferenceType.MANAGED, "snap-3")]
        return (vm, children) if done else None
    vm, children = eventually(tree_written, what="VM tree status and snap-2's child")
    assert [(r.type, r.name) for r in vm.status.root_snapshots] == [(SnapshotReferenceType.MANAGED, "snap-1")]
    assert children["snap-1"] == [(SnapshotReferenceType.MANAGED, "snap-2")]
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["snap-1", "snap-2", "snap-3"]


def create(kube_api, namespace: str, manifest: dict) -> None:
    from kubernetes import client

    from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                                      manifest)


def created_workflow_id(kube_api, namespace: str, name: str) -> str:
    from contract.payloads import Operation, OperationKind, VMRef
    snap = get_snapshot(kube_api, namespace, name)
    return Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=namespace, name=snap.vm_name),
                     snapshot_name=name, snapshot_uid=snap.metadata.uid).workflow_id


async def test_five_at_once_are_created_one_at_a_time_in_order(product, kube_api, namespace, vcsim, sim_vm,
                                                               temporal_client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    names = [f"burst-{i}" for i in range(5)]
    for name in names:
        create(kube_api, namespace, snapshot_manifest(name, "my-vm"))
    for name in names:
        eventually(lambda name=name: ready(kube_api, namespace, name), what=f"{name} Ready")

    windows = [await activity_windows(temporal_client, created_workflow_id(kube_api, namespace, n),
                                      "vsphere_create_snapshot") for n in names]
    assert all(len(w) == 1 for w in windows)
    spans = [w[0] for w in windows]
    assert spans == sorted(spans), "created in creation order"
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "never two vSphere creates on the VM at once"
    # each one a child of the one before: a chain in creation order
    assert vsphere_snapshot_names(vcsim, sim_vm) == names
    for parent, child in zip(names, names[1:]):  # the last child is written after the VM's status: waited for
        eventually(lambda: [c.name for c in get_snapshot(kube_api, namespace, parent).status.children or []]
                   == [child], what=f"{parent}'s child {child}")


def test_quiesce_without_tools_fails_with_the_cause_as_reason(product, kube_api, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, False)
    create(kube_api, namespace, snapshot_manifest("quiet", "my-vm", quiesce={"timeout": "5m"}))

    def failed():
        c = get_snapshot(kube_api, namespace, "quiet").condition(SnapshotConditionType.CREATED)
        return c if c is not None and c.reason == SnapshotReason.TOOLS_NOT_RUNNING else None
    created = eventually(failed, what="ToolsNotRunning")
    assert created.status == "False" and "Tools" in created.message, created.message
    assert "vmsnap.io/quiesce-fallback" in created.message, "the message says what the user can do"
    ready_c = get_snapshot(kube_api, namespace, "quiet").condition(SnapshotConditionType.READY)
    assert (ready_c.status, ready_c.reason, ready_c.message) == ("False", SnapshotReason.TOOLS_NOT_RUNNING,
                                                                 created.message)
    assert vsphere_snapshot_names(vcsim, sim_vm) == []


def test_a_task_that_fails_once_is_retried_to_success(product, kube_api, namespace, vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.inject_fault("CreateSnapshotEx_Task", sim_vm, "TaskInProgress", count=1)
    create(kube_api, namespace, snapshot_manifest("retried", "my-vm"))
    eventually(lambda: ready(kube_api, namespace, "retried"), what="Ready after a retry")
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["retried"]


def test_vm_missing_in_vcenter_ends_in_a_condition(product, kube_api, namespace, vcsim, sim_vm):
    from kubernetes import client

    from api.names import GROUP, VERSION, VM_PLURAL
    create_vm(kube_api, vcsim, namespace, "ghost", sim_vm)
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, VM_PLURAL, "ghost", {"status": {"uniqueID": "vm-999999"}})
    create(kube_api, namespace, snapshot_manifest("orphan", "ghost"))

    def failed():
        c = get_snapshot(kube_api, namespace, "orphan").condition(SnapshotConditionType.CREATED)
        return c if c is not None and c.reason == SnapshotReason.CREATION_FAILED else None
    assert "vm-999999 not found" in eventually(failed, what="CreationFailed").message

    # and its deletion does not hang on the finalizer: there is nothing to remove in vCenter
    from tests.e2e.test_revert_delete import delete_snapshot
    delete_snapshot(kube_api, namespace, "orphan")


def test_status_conflicts_are_retried(product, kube_api, namespace, vcsim, sim_vm):
    """Another writer keeps changing the object: every status write of ours meets 409s and still lands."""
    import threading

    from kubernetes import client

    from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    create(kube_api, namespace, snapshot_manifest("contended", "my-vm"))
    custom, stop, writes = client.CustomObjectsApi(kube_api), threading.Event(), [0]

    def churn():
        while not stop.is_set():
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL, "contended",
                                                  {"metadata": {"annotations": {"churn": str(writes[0])}}})
            writes[0] += 1
    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        eventually(lambda: ready(kube_api, namespace, "contended"), what="Ready under contention")
    finally:
        stop.set()
        writer.join()
    assert writes[0] > 10
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["contended"]
