"""Connecting to Temporal the same way from the worker and the bridge: pydantic payloads, TLS or API key
from the settings, and Prometheus metrics from Temporal's own runtime."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from worker.settings import Settings


def runtime_with_metrics(bind_address: str | None) -> Runtime | None:
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


async def connect(settings: Settings, runtime: Runtime | None = None, plugins: list | None = None) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                api_key=api_key, tls=settings.temporal_tls or bool(api_key),
                                data_converter=pydantic_data_converter, runtime=runtime, plugins=plugins or [])
