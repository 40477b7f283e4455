"""A create survives the death of every part: the worker (SIGKILL mid-task), the bridge, a second bridge
running at once, and the Temporal server itself (on its SQLite file)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from testbed.product import Product
from testbed.temporal_views import activity_attempts, count_runs
from testbed.vms import create_vm, eventually, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready

SLOW_TASK_SECONDS = 15


async def wait_for_running_task(client: Client, workflow_id: str) -> None:
    """Until the create activity has heartbeated the vCenter task it started."""
    await wait_for_pending(client, workflow_id, "vsphere_create_snapshot")


async def wait_for_pending(client: Client, workflow_id: str, activity_type: str) -> None:
    while True:
        try:
            desc = await client.get_workflow_handle(workflow_id).describe()
            if any(p.activity_type.name == activity_type and p.heartbeat_details.payloads
                   for p in desc.raw_description.pending_activities):
                return
        except Exception:  # noqa: BLE001 - not started yet
            pass
        await asyncio.sleep(0.2)


async def test_worker_killed_mid_task_finishes_once(product: Product, kube_api, namespace, vcsim, sim_vm,
                                                    temporal_client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
    create(kube_api, namespace, snapshot_manifest("long", "my-vm", memory=True, quiesce={"timeout": "10m"}))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "long"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=120)

    product.processes[0].kill()                      # SIGKILL the worker with the task in flight
    product.start_worker()
    await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "long"), 240, "Ready")

    assert vsphere_snapshot_names(vcsim, sim_vm) == ["long"], "exactly one snapshot of that name"
    assert max(await activity_attempts(temporal_client, workflow_id, "vsphere_create_snapshot")) >= 2


async def test_two_bridges_never_double_run(product: Product, kube_api, namespace, vcsim, sim_vm,
                                            temporal_client):
    product.start_bridge()
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    names = [f"pair-{i}" for i in range(3)]
    for name in names:
        create(kube_api, namespace, snapshot_manifest(name, "my-vm"))
    for name in names:
        await asyncio.to_thread(eventually, lambda name=name: ready(kube_api, namespace, name))
    assert vsphere_snapshot_names(vcsim, sim_vm) == names
    for name in names:
        assert await count_runs(temporal_client, created_workflow_id(kube_api, namespace, name)) == 1


async def test_bridge_killed_and_restarted_while_objects_are_created(product: Product, kube_api, namespace,
                                                                     vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    bridge = product.processes[1]
    create(kube_api, namespace, snapshot_manifest("before", "my-vm"))
    bridge.kill()
    create(kube_api, namespace, snapshot_manifest("while-down", "my-vm"))
    product.start_bridge()
    create(kube_api, namespace, snapshot_manifest("after", "my-vm"))
    for name in ("before", "while-down", "after"):
        await asyncio.to_thread(eventually, lambda name=name: ready(kube_api, namespace, name))
    assert sorted(vsphere_snapshot_names(vcsim, sim_vm)) == ["after", "before", "while-down"]


async def test_temporal_server_restarted_mid_operation(product_env, temporal_on_disk, tmp_path, kube_api,
                                                       namespace, vcsim, sim_vm, csi_driver):
    server = temporal_on_disk()
    running = Product(tmp_path, {**product_env, "TEMPORAL_ADDRESS": server.address})
    running.start_worker()
    running.start_bridge()
    try:
        create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
        vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
        create(kube_api, namespace, snapshot_manifest("through-restart", "my-vm"))
        client = await Client.connect(server.address)
        workflow_id = await asyncio.to_thread(
            eventually, lambda: created_workflow_id(kube_api, namespace, "through-restart"))
        await asyncio.wait_for(wait_for_running_task(client, workflow_id), timeout=120)

        server.kill()                                   # crash, not a clean stop
        server.start()                                  # same port, same SQLite file
        await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "through-restart"), 240, "Ready")
        assert vsphere_snapshot_names(vcsim, sim_vm) == ["through-restart"]
    finally:
        running.stop()


def revert_tasks(vcsim, sim_vm: str) -> int:
    """How many revert tasks vCenter lists among the VM's recent tasks."""
    from pyVim.connect import Disconnect

    from activities.vsphere.properties import retrieve, virtual_machine
    from testbed.vms import connect
    si = connect(vcsim)
    try:
        tasks = retrieve(si, virtual_machine(si, vcsim.control.vms()[sim_vm]), ["recentTask"]).get("recentTask", [])
        return sum(1 for t in tasks if "revert" in str(retrieve(si, t, ["info.descriptionId"])
                                                      .get("info.descriptionId", "")).lower())
    finally:
        Disconnect(si)


async def test_worker_killed_mid_revert_reverts_once(product: Product, kube_api, namespace, vcsim, sim_vm,
                                                    temporal_client):
    from contract.payloads import Operation, OperationKind, VMRef
    from testbed.vms import get_vm
    from tests.e2e.test_revert_delete import patch_vm
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    for name in ("first", "second"):
        create(kube_api, namespace, snapshot_manifest(name, "my-vm", memory=True))
        await asyncio.to_thread(eventually, lambda name=name: ready(kube_api, namespace, name))
    vcsim.control.delay("RevertToSnapshot_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "first"}})
    generation = get_vm(kube_api, namespace, "my-vm").metadata.generation
    workflow_id = Operation(kind=OperationKind.REVERT, vm=VMRef(namespace=namespace, name="my-vm"),
                            snapshot_name="first", vm_generation=generation).workflow_id
    await asyncio.wait_for(wait_for_pending(temporal_client, workflow_id, "vsphere_revert_snapshot"), 120)

    product.processes[0].kill()
    product.start_worker()

    def reverted():
        vm = get_vm(kube_api, namespace, "my-vm")
        return vm.spec.current_snapshot_name is None and vm.status.current_snapshot \
            and vm.status.current_snapshot.name == "first"
    await asyncio.to_thread(eventually, reverted, 240, "reverted")
    assert max(await activity_attempts(temporal_client, workflow_id, "vsphere_revert_snapshot")) >= 2
    assert revert_tasks(vcsim, sim_vm) == 1, "the retried attempt re-attached to the running task"


async def test_deleting_queued_and_running_creates(product: Product, kube_api, namespace, vcsim, sim_vm,
                                                   temporal_client):
    """A delete joins the VM's order: a running create finishes first and is then removed; a queued create
    never reaches vCenter. Neither object is left behind, nothing is orphaned in vCenter."""
    from tests.e2e.test_revert_delete import delete_snapshot
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
    create(kube_api, namespace, snapshot_manifest("running", "my-vm"))
    create(kube_api, namespace, snapshot_manifest("queued", "my-vm"))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "running"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=120)
    await asyncio.to_thread(delete_snapshot, kube_api, namespace, "queued")
    await asyncio.to_thread(delete_snapshot, kube_api, namespace, "running")
    assert vsphere_snapshot_names(vcsim, sim_vm) == []
