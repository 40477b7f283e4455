"""The start-up check of the Temporal namespace's search attributes (runtime/namespace_check.py), with the real worker
and bridge processes on a namespace of their own, registered on the test bed's real Temporal server without the
product's search attributes, which the test then adds the way an operator does (OperatorService
AddSearchAttributes, what `temporal operator search-attribute create` calls)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from google.protobuf.duration_pb2 import Duration
from kubernetes import client as kube
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
from contract.payloads import VMRef
from runtime.namespace_check import WANTED
from testbed.product import Product
from testbed.vms import snapshot_manifest
from tests.e2e.test_vm_operator_coexistence import becomes, log_of, queue_started
from tests.fixtures.health import watch_logs


async def answers(call, timeout: float = 60) -> None:
    """Wait until the call stops failing (a namespace just registered is not served at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await call()
            return
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture
async def fresh_namespace(temporal_client: Client) -> AsyncIterator[Client]:
    """A namespace of its own, without the product's search attributes: a client on it."""
    name = f"vmsnap-sa-{uuid.uuid4().hex[:8]}"
    await temporal_client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=name, workflow_execution_retention_period=Duration(seconds=24 * 3600)))
    await answers(lambda: temporal_client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name)))
    await answers(lambda: temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=name)))
    yield await Client.connect(temporal_client.service_client.config.target_host, namespace=name,
                               data_converter=pydantic_data_converter)


@pytest.fixture
def product_here(product_env: dict[str, str], fresh_namespace: Client, tmp_path) -> Iterator[Product]:
    running = Product(tmp_path, {**product_env, "TEMPORAL_NAMESPACE": fresh_namespace.namespace,
                                 "VMSNAP_PREREQUISITES_CHECK_SECONDS": "1", "VMSNAP_RESYNC_SECONDS": "2"})
    watch_logs(lambda: {p.part: p.log for p in running.processes})
    yield running
    running.stop()


async def pollers(temporal: Client, task_queue: str) -> int:
    described = await temporal.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=temporal.namespace, task_queue=TaskQueue(name=task_queue)))
    return len(described.pollers)


@pytest.mark.timeout(240)
async def test_the_processes_stand_aside_until_the_namespace_has_the_search_attributes(
        fresh_namespace, product_here, product_env, kube_api):
    namespace = fresh_namespace.namespace
    worker = product_here.start_worker()
    bridge = product_here.start_bridge()
    reason = await asyncio.to_thread(becomes, worker, 503)
    assert reason.startswith(f"standing aside: Temporal namespace {namespace} lacks the search attributes "
                             f"{', '.join(WANTED)}, which the product's workflows need. Add them (self-hosted: "
                             f"temporal operator search-attribute create --namespace {namespace} --name "
                             f"KubernetesNamespace --type Keyword; ")
    assert f"Temporal Cloud: tcld namespace search-attributes add --namespace {namespace} --search-attribute" in reason
    assert await asyncio.to_thread(becomes, bridge, 503) == reason
    for process in (worker, bridge):
        assert log_of(process).count(reason) == 1  # one line, however often it is checked
    assert "not polling task queue" in log_of(worker) and "worker polling task queue" not in log_of(worker)
    task_queue = product_env["VMSNAP_TASK_QUEUE"]
    assert await pollers(fresh_namespace, task_queue) == 0

    # a snapshot made meanwhile reaches nothing in Temporal (a start would fail without the attributes)
    kube.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, product_env["VMSNAP_WATCH_NAMESPACE"], SNAPSHOT_PLURAL, snapshot_manifest("meanwhile", "vm-x"))
    vm = VMRef(namespace=product_env["VMSNAP_WATCH_NAMESPACE"], name="vm-x")
    await asyncio.sleep(4)  # the watch event, two resyncs, four checks
    assert not await queue_started(fresh_namespace, vm)

    # added as an operator does: ready at the next check, the worker polls and the bridge hands the snapshot over
    added = time.monotonic()
    await fresh_namespace.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=namespace, search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in WANTED}))
    assert await asyncio.to_thread(becomes, worker, 200) == "ok"
    assert await asyncio.to_thread(becomes, bridge, 200) == "ok"
    ready_after = time.monotonic() - added
    deadline = time.monotonic() + 60
    while not (await pollers(fresh_namespace, task_queue) and await queue_started(fresh_namespace, vm)):
        assert time.monotonic() < deadline, "no poller, or the snapshot never reached Temporal, once they acted"
        await asyncio.sleep(0.5)
    assert "worker polling task queue" in log_of(worker)
    assert f"Temporal namespace {namespace} has the product's search attributes" in log_of(bridge)
    print(f"\nready {ready_after:.1f} s after the search attributes were added (checked every second)")
    assert ready_after < 30, f"ready {ready_after:.1f} s after the attributes were added"
