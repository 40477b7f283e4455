"""Scale-out under failure: three workers and two bridges against one Temporal; a burst of 200 snapshots over
25 VMs; one worker and one bridge SIGKILLed in the middle. Every snapshot reaches Ready, vCenter holds each
name exactly once, and no object is left stuck."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from testbed.vms import create_vm, eventually, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import create, ready
from tests.fixtures.product import Product, take_sim_vm

VMS, PER_VM = 25, 8


# 200 vCenter tasks through two workers' task slots: 76-160 s here depending on the machine's load, against the
# suite's 180 s default; its own bound is the one each snapshot's wait already had
@pytest.mark.timeout(600)
async def test_burst_with_a_worker_and_a_bridge_killed(product_env, tmp_path, kube_api, namespace, vcsim, csi_driver):
    running = Product(tmp_path, product_env)
    for _ in range(3):
        running.start_worker()
    bridges = [running.start_bridge(), running.start_bridge()]
    try:
        vms = {f"vm-{i}": take_sim_vm(vcsim) for i in range(VMS)}
        for vm, sim in vms.items():
            create_vm(kube_api, vcsim, namespace, vm, sim)
        names = [f"{vm}-s{j}" for j in range(PER_VM) for vm in vms]
        for n, name in enumerate(names):
            create(kube_api, namespace, snapshot_manifest(name, name.rsplit("-s", 1)[0]))
            if n == len(names) // 2:                      # mid-burst: lose a worker and a bridge
                running.processes[0].kill()
                bridges[0].kill()
        for name in names:
            await asyncio.to_thread(eventually, lambda name=name: ready(kube_api, namespace, name), 600, name)

        for vm, sim in vms.items():
            counts = Counter(vsphere_snapshot_names(vcsim, sim))
            assert counts == Counter({f"{vm}-s{j}": 1 for j in range(PER_VM)}), (vm, counts)
    finally:
        running.stop()
