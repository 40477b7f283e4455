"""Connecting to Temporal the same way from the worker and the bridge: pydantic payloads, TLS or API key
from the settings, and Prometheus metrics from Temporal's own runtime."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from worker.settings import Settings


def runtime_with_metrics(bind_address: str | None) -> Runtime | None:
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS from the settings: files for mutual TLS or a private CA; plain TLS for an API key or TEMPORAL_TLS."""
    def read(path):
        return path.read_bytes() if path else None
    s = settings
    if s.temporal_tls_client_cert_path or s.temporal_tls_server_ca_cert_path:
        return TLSConfig(server_root_ca_cert=read(s.temporal_tls_server_ca_cert_path),
                         client_cert=read(s.temporal_tls_client_cert_path),
                         client_private_key=read(s.temporal_tls_client_key_path))
    return s.temporal_tls or s.temporal_api_key is not None


async def connect(settings: Settings, runtime: Runtime | None = None, plugins: list | None = None) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                api_key=api_key, tls=tls_config(settings),
                                data_converter=pydantic_data_converter, runtime=runtime, plugins=plugins or [])
