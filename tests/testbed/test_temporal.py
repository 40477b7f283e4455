"""The Temporal dev server is real: a workflow's activity survives its worker being killed."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from testbed.process import Process
from tests.testbed.smoke_worker import STEPS, CountSteps


def start_worker(address: str, task_queue: str, log: Path) -> Process:
    return Process("smoke-worker", [sys.executable, "-m", "tests.testbed.smoke_worker", address, task_queue],
                   log).start()


async def wait_for_heartbeat(handle, at_least: int) -> None:
    while True:
        desc = await handle.describe()
        for pending in desc.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                step = int(pending.heartbeat_details.payloads[0].data)
                if step >= at_least:
                    return
        await asyncio.sleep(0.1)


async def test_workflow_survives_worker_kill(temporal_client: Client, temporal_address: str, tmp_path: Path):
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    first = start_worker(temporal_address, queue, tmp_path / "worker-a.log")
    handle = await temporal_client.start_workflow(CountSteps.run, STEPS, id=f"smoke-{queue}", task_queue=queue)
    await asyncio.wait_for(wait_for_heartbeat(handle, 3), timeout=60)
    first.kill()

    second = start_worker(temporal_address, queue, tmp_path / "worker-b.log")
    try:
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        second.stop()
    assert result["attempt"] >= 2, "the second worker must have retried the killed attempt"
    assert result["resumed_from"] >= 3, "the retry must resume from the heartbeat checkpoint"
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_dev_server_restart_keeps_workflows(temporal_on_disk, tmp_path: Path):
    server = temporal_on_disk()
    client = await Client.connect(server.address)
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(CountSteps.run, 3, id=f"restart-{queue}", task_queue=queue)
    server.restart()  # same SQLite file, same port: the queued workflow must still be there

    client = await Client.connect(server.address)
    worker = start_worker(server.address, queue, tmp_path / "worker.log")
    try:
        result = await asyncio.wait_for(client.get_workflow_handle(handle.id).result(), timeout=120)
    finally:
        worker.stop()
    assert result["resumed_from"] == 0
