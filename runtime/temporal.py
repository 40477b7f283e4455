"""Connecting to Temporal the same way from the worker and the bridge: pydantic payloads, the connection from
Temporal's environment configuration (through the settings), and Prometheus metrics from Temporal's own runtime."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from runtime.settings import Settings


def runtime_with_metrics(bind_address: str | None) -> Runtime | None:
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def connect(settings: Settings, runtime: Runtime | None = None, plugins: list | None = None) -> Client:
    """A client for the address, namespace, TLS and API key of Temporal's environment configuration."""
    return await Client.connect(**settings.temporal, data_converter=pydantic_data_converter, runtime=runtime,
                                plugins=plugins or [],
                                **({"identity": settings.temporal_identity} if settings.temporal_identity else {}))
