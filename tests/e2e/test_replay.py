"""The workflows are deterministic: every history the end-to-end operations produce replays against the code."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from testbed.product import Product
from testbed.vms import create_vm, eventually, snapshot_manifest
from tests.e2e.test_create_snapshot import create, ready
from tests.e2e.test_revert_delete import delete_snapshot, revert
from worker.main import WORKFLOWS


async def test_histories_of_create_revert_delete_replay(product: Product, kube_api, namespace, vcsim, sim_vm,
                                                        temporal_client: Client):
    import asyncio
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    for name in ("one", "two"):
        create(kube_api, namespace, snapshot_manifest(name, "my-vm", memory=True))
        await asyncio.to_thread(eventually, lambda name=name: ready(kube_api, namespace, name))
    await asyncio.to_thread(revert, kube_api, namespace, "one")
    await asyncio.to_thread(delete_snapshot, kube_api, namespace, "two")

    query = f"KubernetesNamespace = '{namespace}' AND ExecutionStatus = 'Completed'"
    histories = temporal_client.list_workflows(query).map_histories()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    results = await replayer.replay_workflows(histories, raise_on_replay_failure=False)
    assert results.replay_failures == {}
    assert len([w async for w in temporal_client.list_workflows(query)]) >= 4  # 2 creates, a revert, a delete
