"""Connecting to Temporal the same way from the worker and the bridge: pydantic payloads, the connection from
Temporal's environment configuration (through the settings), and Prometheus metrics from Temporal's own runtime.
Also what an outage of Temporal looks like to a client, and the readiness check that finds one."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from runtime.settings import Settings

# Statuses of a call that Temporal (or one of its services) could not serve right now: the same call can simply be
# made again later. Anything else is an answer (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT...).
OUTAGE_STATUSES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                             RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.CANCELLED})
# a workflow ID nobody uses: looking it up is answered by the history service (NOT_FOUND) when it is up
_PROBE_WORKFLOW_ID = "vmsnap-readiness-probe"
_PROBE_TIMEOUT = timedelta(seconds=3)


def runtime_with_metrics(bind_address: str | None) -> Runtime | None:
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def connect(settings: Settings, runtime: Runtime | None = None, plugins: list | None = None) -> Client:
    """A client for the address, namespace, TLS and API key of Temporal's environment configuration."""
    return await Client.connect(**settings.temporal, data_converter=pydantic_data_converter, runtime=runtime,
                                plugins=plugins or [])


def is_outage(error: BaseException) -> bool:
    """The call failed because Temporal could not be reached or could not serve it now (not because of what it
    asked)."""
    return isinstance(error, RPCError) and error.status in OUTAGE_STATUSES


def outage_text(error: BaseException) -> str:
    """One line saying what failed, e.g. `UNAVAILABLE: Not enough hosts to serve the request`."""
    if isinstance(error, RPCError):
        return f"{error.status.name if error.status is not None else 'RPC error'}: {error.message}"
    return f"{type(error).__name__}: {error}"


async def unavailable(client: Client, task_queue: str) -> str | None:
    """Why Temporal cannot serve this deployment now, or None: the frontend's health, then a task-queue lookup
    (the matching service) and a workflow lookup (the history service), each with a short deadline and no retry."""
    service = client.workflow_service
    try:
        if not await client.service_client.check_health(timeout=_PROBE_TIMEOUT):
            return "temporal unreachable: the frontend reports not serving"
        await service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue)), retry=False, timeout=_PROBE_TIMEOUT)
        try:
            await service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=_PROBE_WORKFLOW_ID)),
                retry=False, timeout=_PROBE_TIMEOUT)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
    except Exception as e:  # noqa: BLE001 - any failure to get an answer is the reason
        return f"temporal unreachable: {outage_text(e)}"
    return None
