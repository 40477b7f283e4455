"""Tracing and logs for the worker and the bridge.

Tracing goes through Temporal's own OpenTelemetry plugin (Temporal spans on), so one trace runs from the
bridge's handling of a watched change through the VM's queue into the operation's workflow, every activity and
the vCenter task it waits for. Export: OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, JSON lines to a file with `VMSNAP_TRACE_FILE`, the console with
`OTEL_TRACES_EXPORTER=console`. With none of them, no tracer provider is installed and tracing costs nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import opentelemetry.context
import opentelemetry.trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from temporalio import activity
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider

from runtime.settings import Settings
from runtime.temporal import OutageLogFilter

TRACER_NAME = "vmsnap"


def setup_tracing(settings: Settings, service_name: str) -> list[OpenTelemetryPlugin]:
    """Install the tracer provider; returns the Temporal client plugins to use (none when tracing is off)."""
    if not settings.tracing:
        return []
    provider = create_tracer_provider(resource=Resource.create({"service.name": service_name}))
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if settings.trace_file:
        out = open(settings.trace_file, "a", buffering=1)  # one span per line, flushed per line
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
            out=out, formatter=lambda span: span.to_json(indent=None) + "\n")))
    if settings.traces_exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    opentelemetry.trace.set_tracer_provider(provider)
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


def tracer() -> opentelemetry.trace.Tracer:
    return opentelemetry.trace.get_tracer(TRACER_NAME)


def current_trace_context() -> dict[str, str]:
    """The current span as W3C trace-context headers, to carry in a Temporal payload."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def parent_context(traceparent: str | None) -> opentelemetry.context.Context | None:
    """The context of a span given as a W3C traceparent (a group member's: the saga's span that made it); None
    without one."""
    return extract({"traceparent": traceparent}) if traceparent else None


def current_trace_id() -> str | None:
    context = opentelemetry.trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@dataclass(frozen=True)
class WorkflowLinks:
    """Where an operation's workflow is seen: its ID, and its page in the Temporal UI when the deployment says
    where the UI is (TEMPORAL_UI_URL)."""

    ui_url: str = ""
    namespace: str = "default"

    def url(self, workflow_id: str) -> str | None:
        if not self.ui_url:
            return None
        return f"{self.ui_url.rstrip('/')}/namespaces/{quote(self.namespace, safe='')}/workflows/" \
               f"{quote(workflow_id, safe='')}"

    def current(self) -> tuple[str, str | None] | None:
        """(workflow ID, UI link) of the operation the running activity belongs to; None outside activities."""
        if not activity.in_activity():
            return None
        workflow_id = activity.info().workflow_id
        return (workflow_id, self.url(workflow_id)) if workflow_id else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the Temporal context the SDK puts on its loggers' records
    (workflow and activity IDs) and the current trace ID."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                                 "message": record.getMessage()}
        for key in ("temporal_workflow", "temporal_activity"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(settings: Settings) -> None:
    """`VMSNAP_LOG_FORMAT=json` for JSON lines; human-readable lines otherwise."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(OutageLogFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
