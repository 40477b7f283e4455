"""The test bed's Temporal cluster is real and production-shaped: four server processes with their own ports on
PostgreSQL, SQL visibility answering queries on the product's search attributes, and a workflow that outlives
the SIGKILL of any service."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from runtime import search_attributes as sa
from testbed.process import Process
from testbed.temporal_cluster import SERVICES, TemporalCluster
from tests.testbed.smoke_worker import CountSteps

pytestmark = pytest.mark.cluster


def start_worker(address: str, task_queue: str, log: Path) -> Process:
    process = Process("smoke-worker", [sys.executable, "-m", "tests.testbed.smoke_worker", address, task_queue],
                      log).start()
    process.wait_ready(lambda: "running" in log.read_text(), timeout=60, what="running")
    return process


def test_four_services_each_a_process_with_its_own_ports(temporal_cluster: TemporalCluster):
    pids = {svc: temporal_cluster.processes[svc].pid for svc in SERVICES}
    assert len(set(pids.values())) == 4
    ports = [port for svc in SERVICES for port in temporal_cluster.ports[svc].values()]
    assert len(set(ports)) == len(ports)
    for svc in SERVICES:
        assert temporal_cluster.processes[svc].alive()
        with socket.create_connection(("127.0.0.1", temporal_cluster.ports[svc]["grpc"]), timeout=5):
            pass
        with urllib.request.urlopen(temporal_cluster.metrics_url(svc), timeout=10) as answer:
            assert answer.status == 200
    temporal_cluster.postgres.check_alive()


async def test_product_search_attributes_find_a_workflow(temporal_cluster: TemporalCluster, tmp_path: Path):
    client = await Client.connect(temporal_cluster.address, data_converter=pydantic_data_converter)
    queue = f"sa-{uuid.uuid4().hex[:8]}"
    worker = start_worker(temporal_cluster.address, queue, tmp_path / "worker.log")
    try:
        vm = f"vm-{queue}"
        handle = await client.start_workflow(CountSteps.run, 1, id=f"sa-{queue}", task_queue=queue,
                                             search_attributes=sa.for_vm("team-a", vm, snapshot="s1",
                                                                         operation="create"))
        await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        worker.stop()
    query = f"VirtualMachine = '{vm}' AND KubernetesNamespace = 'team-a' AND Snapshot = 's1' " \
            "AND SnapshotOperation = 'create' AND ExecutionStatus = 'Completed'"
    deadline = time.monotonic() + 30
    while (found := [w.id async for w in client.list_workflows(query)]) != [handle.id]:
        assert time.monotonic() < deadline, f"visibility found {found} for {query!r}"
        await asyncio.sleep(0.5)


@pytest.mark.takes_down(*(f"temporal-{service}" for service in SERVICES))
@pytest.mark.parametrize("service", ["history", "matching", "frontend"])
async def test_workflow_finishes_through_a_service_crash(temporal_cluster: TemporalCluster, tmp_path: Path,
                                                         service: str):
    client = await Client.connect(temporal_cluster.address)
    queue = f"crash-{service}-{uuid.uuid4().hex[:8]}"
    worker = start_worker(temporal_cluster.address, queue, tmp_path / "worker.log")
    try:
        handle = await client.start_workflow(CountSteps.run, 20, id=f"crash-{queue}", task_queue=queue)
        await asyncio.sleep(1)
        old_pid = temporal_cluster.processes[service].pid
        await asyncio.to_thread(temporal_cluster.restart, service, 3)  # SIGKILL, 3 s down, start again
        assert temporal_cluster.processes[service].pid != old_pid
        result = await asyncio.wait_for(handle.result(), timeout=180)
    finally:
        worker.stop()
    assert result["resumed_from"] >= 0, result
    temporal_cluster.check_alive()
