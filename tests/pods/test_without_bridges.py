"""Every bridge pod gone — a rollout gone wrong, a drained node — while 10 deletes and 10 creates are in flight: the
worker's own writes skip the webhooks (deploy/base/webhook.yaml, matchConditions), so all of them finish; a user's
create in that window is refused, naming the webhook the apiserver could not call (deploy/README.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.client import Client

from bridge.admission import SNAPSHOT_MUTATING
from contract.names import VM_QUEUE_PENDING_QUERY
from contract.payloads import VMRef, vm_queue_workflow_id
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest, vsphere_snapshot_names
from tests.fixtures.product import take_sim_vm
from tests.pods.cluster import BRIDGES, NAMESPACE, PodCluster
from tests.pods.test_pod_loss import no_stuck_finalizer

VMS = 10
# each delete's vCenter task is held this long: in flight while the bridges go (scale-down: a 5 s preStop pause
# and the drain); the test checks that they still are once no bridge is left
HELD_SECONDS = 90


async def queued(temporal_client: Client, namespace: str, vm: str) -> list[str]:
    try:
        return await temporal_client.get_workflow_handle(vm_queue_workflow_id(VMRef(namespace=namespace, name=vm))
                                                         ).query(VM_QUEUE_PENDING_QUERY)
    except Exception:  # noqa: BLE001 - not started yet
        return []


@pytest.mark.timeout(600)  # 10 VMs' first snapshots, the held deletes, the creates behind them, bridges back
async def test_with_every_bridge_gone_in_flight_deletes_and_creates_finish(
        pod_cluster: PodCluster, pods_api, namespace, vcsim, temporal_client):
    vms = {f"vm-{i}": take_sim_vm(vcsim) for i in range(VMS)}
    for name, sim_vm in vms.items():
        create_vm(pods_api, vcsim, namespace, name, sim_vm)
        pod_cluster.kubectl("-n", namespace, "create", "-f", "-",
                            input=json.dumps(snapshot_manifest(f"old-{name}", name)))
    for name in vms:
        await asyncio.to_thread(eventually, lambda name=name: get_snapshot(pods_api, namespace,
                                                                           f"old-{name}").is_ready,
                                300, f"old-{name} Ready")

    for name, sim_vm in vms.items():
        vcsim.control.delay("RemoveSnapshot_Task", sim_vm, HELD_SECONDS, count=1)
        pod_cluster.kubectl("-n", namespace, "delete", "vmsnapshot", f"old-{name}", "--wait=false")
        pod_cluster.kubectl("-n", namespace, "create", "-f", "-",
                            input=json.dumps(snapshot_manifest(f"new-{name}", name)))

    async def both_handed_over(name: str) -> None:  # the delete running, the create waiting behind it in the queue
        while len(await queued(temporal_client, namespace, name)) < 2:
            await asyncio.sleep(0.5)
    await asyncio.wait_for(asyncio.gather(*(both_handed_over(name) for name in vms)), timeout=120)

    pod_cluster.kubectl("-n", NAMESPACE, "scale", "deployment/vmsnap-bridge", "--replicas=0")
    try:
        await asyncio.to_thread(eventually, lambda: not pod_cluster.pods(BRIDGES), 120, "every bridge pod gone")
        still = {name: await queued(temporal_client, namespace, name) for name in vms}
        assert all(len(q) == 2 and q[0].startswith("delete-snapshot/") for q in still.values()), \
            f"the deletes were to be in flight when the last bridge went: {still}"

        refused = pod_cluster.kubectl("-n", namespace, "create", "-f", "-", check=False,
                                      input=json.dumps(snapshot_manifest("meanwhile", "vm-0")))
        assert refused.returncode != 0
        assert f'failed calling webhook "{SNAPSHOT_MUTATING.name}"' in refused.stderr, refused.stderr

        for name in vms:
            await asyncio.to_thread(eventually, lambda name=name: get_snapshot(pods_api, namespace,
                                                                               f"new-{name}").is_ready,
                                    HELD_SECONDS + 180, f"new-{name} Ready with no bridge")
        listed = json.loads(pod_cluster.kubectl("-n", namespace, "get", "vmsnapshot", "-o", "json").stdout)
        assert sorted(i["metadata"]["name"] for i in listed["items"]) == sorted(f"new-{name}" for name in vms)
        for name, sim_vm in vms.items():
            assert vsphere_snapshot_names(vcsim, sim_vm) == [f"new-{name}"]
        assert not pod_cluster.pods(BRIDGES), "no bridge came back during the test"
    finally:
        pod_cluster.kubectl("-n", NAMESPACE, "scale", "deployment/vmsnap-bridge", "--replicas=2")
        pod_cluster.rollout_status("vmsnap-bridge")
    no_stuck_finalizer(pods_api, namespace)
