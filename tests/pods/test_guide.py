"""The guide's YAML through the pods: the three snapshots Ready, then the revert."""

from __future__ import annotations

from testbed.vms import create_vm, eventually, get_snapshot, get_vm, vsphere_snapshot_names
from tests.fixtures.product import take_sim_vm
from tests.guide_examples import GUIDE_SNAPSHOTS, GUIDE_VM_REVERT
from tests.pods.cluster import PodCluster


def test_guide_snapshots_ready_and_revert(pod_cluster: PodCluster, pods_api, namespace: str, vcsim):
    sim_vm = take_sim_vm(vcsim)
    create_vm(pods_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)  # the guide: quiescing needs VMware Tools
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=GUIDE_SNAPSHOTS)
    for name in ("snap-1", "snap-2", "snap-3"):
        eventually(lambda name=name: get_snapshot(pods_api, namespace, name).is_ready, 300, f"{name} Ready")
    assert sorted(vsphere_snapshot_names(vcsim, sim_vm)) == ["snap-1", "snap-2", "snap-3"]

    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=GUIDE_VM_REVERT)

    def reverted():
        vm = get_vm(pods_api, namespace, "my-vm")
        current = vm.status.current_snapshot
        return vm.spec.current_snapshot_name is None and current is not None and current.name == "snap-1"
    eventually(reverted, 300, "reverted to snap-1")
