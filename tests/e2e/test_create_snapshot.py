"""CreateSnapshot end to end: kubectl → bridge → the VM's queue → workflow → vCenter → Ready."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.names import (CSI_VOLUME_SYNC_ANNOTATION, SNAPSHOT_FINALIZER, TRUE_REASON, VM_NAME_LABEL, CSIVolumeSync,
                       PowerState, SnapshotConditionType, SnapshotReferenceType)
from tests.e2e.vms import STORAGE_CLASS, create_vm, eventually, get_snapshot, get_vm, vsphere_snapshot_names

GUIDE_SNAPSHOTS = """
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-1
spec:
  description: "Snapshot of my-vm without memory"
  vmName: my-vm
---
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-2
spec:
  description: "Snapshot of my-vm with memory"
  vmName: my-vm
  memory: true
---
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-3
spec:
  description: "Snapshot of my-vm with a consistent state of the guest filesystem"
  vmName: my-vm
  memory: true
  queisce:
    timeout: 10min
"""


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
        assert snap.status.observed_generation == snap.metadata.generation

    assert snaps["snap-1"].status.power_state == PowerState.POWERED_OFF  # no memory: recorded powered off
    assert snaps["snap-2"].status.power_state == PowerState.POWERED_ON
    assert (snaps["snap-1"].status.quiesced, snaps["snap-3"].status.quiesced) == (False, True)
    # memory snapshots account the memory too
    assert int(snaps["snap-2"].status.storage.used) > int(snaps["snap-1"].status.storage.used)

    # the chain snap-1 → snap-2 → snap-3, as the guide's status shows it
    def tree_written():
        vm = get_vm(kube_api, namespace, "my-vm")
        assert vm.status.current_snapshot and vm.status.current_snapshot.name == "snap-3", vm.status.current_snapshot
        return vm
    vm = eventually(tree_written, what="VM tree status")
    assert [(r.type, r.name) for r in vm.status.root_snapshots] == [(SnapshotReferenceType.MANAGED, "snap-1")]
    assert [(c.type, c.name) for c in get_snapshot(kube_api, namespace, "snap-1").status.children] == \
        [(SnapshotReferenceType.MANAGED, "snap-2")]
    assert [c.name for c in get_snapshot(kube_api, namespace, "snap-2").status.children] == ["snap-3"]
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["snap-1", "snap-2", "snap-3"]
