"""Connecting to Temporal the same way from the worker and the bridge: pydantic payloads, the connection from
Temporal's environment configuration (through the settings), and Prometheus metrics from Temporal's own runtime.
Also what an outage of Temporal looks like to a client, and the readiness check that finds one."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
)
from temporalio.client import Client, Plugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from runtime.settings import Settings

# Statuses of a call that Temporal (or one of its services) could not serve right now: the same call can simply be
# made again later. Anything else is an answer (NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT...).
OUTAGE_STATUSES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                             RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.CANCELLED})
# a workflow ID nobody uses: looking it up is answered by the history service (NOT_FOUND) when it is up
_PROBE_WORKFLOW_ID = "vmsnap-readiness-probe"
_PROBE_TIMEOUT = timedelta(seconds=3)


# what the SDK's messages say when Temporal (or one of its services) cannot be reached
_OUTAGE_WORDS = re.compile(r"Unavailable|UNAVAILABLE|tcp connect error|Not enough hosts|DeadlineExceeded|"
                           r"Connection refused|transport error|Network error")
_STATUS = re.compile(r'code: (\w+), message: "([^"]*)"')
OUTAGE_LOG_WINDOW_SECONDS = 60.0


def temporal_runtime(metrics_bind_address: str | None = None) -> Runtime:
    """Temporal's runtime for this process: the SDK core's warnings (its polls, heartbeats and completions) go
    through Python logging (`temporalio.core`), so they are formatted and collapsed like every other line
    (`OutageLogFilter`); Prometheus metrics on the address when one is given."""
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                              forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))),
        metrics=PrometheusConfig(bind_address=metrics_bind_address) if metrics_bind_address else None))


class OutageLogFilter(logging.Filter):
    """While Temporal cannot be reached the SDK warns for every retried poll, heartbeat and completion (several
    lines a second, each with the whole gRPC status) and logs a stack trace for each failed activity or workflow
    task report. This keeps the first line of each kind per minute, cut to one line without the stack trace:
    the log says what happened without repeating it."""

    def __init__(self, window: float = OUTAGE_LOG_WINDOW_SECONDS):
        super().__init__()
        self.window = window
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("temporalio"):
            return True
        text = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if not (_OUTAGE_WORDS.search(text) or (error is not None and (is_outage(error)
                                                                        or _OUTAGE_WORDS.search(str(error))))):
            return True
        # the core's lines end in the whole gRPC status ("... {'error': 'Status { code: Unavailable, ...")
        head = re.split(r" \{'error'| error=|: Status \{", text, maxsplit=1)[0].split("\n")[0]
        kind = record.name + re.sub(r"\d+", "N", head)[:160]
        now = time.monotonic()
        if now - self._last.get(kind, -self.window) < self.window:
            return False
        self._last[kind] = now
        status = _STATUS.search(text)
        line = head[:200] + (f": {status.group(1)}: {status.group(2)}" if status else "")
        if error is not None:
            line += f" ({outage_text(error)[:200]})"
        record.msg, record.args, record.exc_info, record.exc_text = line + " [repeats within a minute not logged]", \
            None, None, None
        return True


class NamespaceRefused(Exception):
    """The server let the client connect but refuses it the namespace: its credentials (an API key, a client
    certificate) lack the permission. `said` is the server's message."""

    def __init__(self, said: str):
        super().__init__(said)
        self.said = said


async def connect(settings: Settings, runtime: Runtime | None = None,
                  plugins: Sequence[Plugin] | None = None) -> Client:
    """A client for the address, namespace, TLS and API key of Temporal's environment configuration, once the
    server lets it read the namespace. The connect's own call is one every caller may make (a server that checks
    API keys answers it without one): a key without the namespace's permission would otherwise be refused only by
    the first call that needs it, wherever that is."""
    client = await Client.connect(**settings.temporal, data_converter=pydantic_data_converter, runtime=runtime,
                                  plugins=plugins or [], identity=settings.temporal_identity or None)
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace))
    except RPCError as e:
        if e.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNAUTHENTICATED):
            raise NamespaceRefused(e.message) from e
        # anything else (no such namespace, an outage) the process meets, and says, where it always did
    return client


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
