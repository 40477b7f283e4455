"""The deployment never runs more vCenter snapshot tasks at once than its slots (VMSNAP_VCENTER_TASK_SLOTS per
worker), even across different VMs: vCenter's limits on concurrent tasks hold by construction."""

from __future__ import annotations

import asyncio

from testbed.temporal_views import activity_windows
from testbed.vms import create_vm, eventually, snapshot_manifest
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready
from tests.fixtures.product import Product, take_sim_vm


async def test_one_slot_means_one_vcenter_task_at_a_time(product_env, tmp_path, kube_api, namespace, vcsim,
                                                         csi_driver, temporal_client):
    running = Product(tmp_path, {**product_env, "VMSNAP_VCENTER_TASK_SLOTS": "1"})
    running.start_worker()
    running.start_bridge()
    try:
        vms = [f"vm-{i}" for i in range(3)]
        for vm in vms:
            sim = take_sim_vm(vcsim)
            create_vm(kube_api, vcsim, namespace, vm, sim)
            vcsim.control.delay("CreateSnapshotEx_Task", sim, 2, count=1)
        for vm in vms:  # three VMs: without the cap their creates would run side by side
            create(kube_api, namespace, snapshot_manifest(f"snap-of-{vm}", vm))
        for vm in vms:
            await asyncio.to_thread(eventually, lambda vm=vm: ready(kube_api, namespace, f"snap-of-{vm}"))
        windows = sorted([w for vm in vms for w in await activity_windows(
            temporal_client, created_workflow_id(kube_api, namespace, f"snap-of-{vm}"), "vsphere_create_snapshot")])
        assert len(windows) == 3
        assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:])), "two vCenter tasks ran at once"
    finally:
        running.stop()
