"""The one configuration model of the worker and the bridge, read from the environment (and secret files).

Secrets are `SecretStr`: they never appear in logs, reprs or traces.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CSISyncMode(StrEnum):
    HANDSHAKE = "handshake"  # wait for the vSphere CSI driver to set csi.vsphere.volume.sync: completed
    SKIP = "skip"            # clusters without the vSphere CSI driver: mark CSISynced at once


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VMSNAP_", extra="ignore", populate_by_name=True)

    # Temporal (the SDK's own TEMPORAL_* names, so a Temporal operator's environment just works)
    temporal_address: str = Field("localhost:7233",
                                  validation_alias=_env("TEMPORAL_ADDRESS", "VMSNAP_TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field("default", validation_alias=_env("TEMPORAL_NAMESPACE"))
    temporal_api_key: SecretStr | None = Field(None, validation_alias=_env("TEMPORAL_API_KEY"))
    temporal_tls: bool = Field(False, validation_alias=_env("TEMPORAL_TLS"))
    # mutual TLS / a private CA (the SDK's environment-configuration names)
    temporal_tls_client_cert_path: Path | None = Field(None, validation_alias=_env("TEMPORAL_TLS_CLIENT_CERT_PATH"))
    temporal_tls_client_key_path: Path | None = Field(None, validation_alias=_env("TEMPORAL_TLS_CLIENT_KEY_PATH"))
    temporal_tls_server_ca_cert_path: Path | None = Field(None,
                                                          validation_alias=_env("TEMPORAL_TLS_SERVER_CA_CERT_PATH"))
    task_queue: str = "vm-snapshots"
    # the Temporal UI, for the workflow links put on objects and in Events ("" = IDs only)
    temporal_ui_url: str = Field("", validation_alias=_env("TEMPORAL_UI_URL"))

    # vCenter
    vsphere_url: str = Field("", validation_alias=_env("VSPHERE_URL", "VMSNAP_VSPHERE_URL"))
    vsphere_username: str = Field("", validation_alias=_env("VSPHERE_USERNAME"))
    vsphere_password: SecretStr = Field(SecretStr(""), validation_alias=_env("VSPHERE_PASSWORD"))
    vsphere_password_file: Path | None = Field(None, validation_alias=_env("VSPHERE_PASSWORD_FILE"))
    vsphere_ca_file: Path | None = Field(None, validation_alias=_env("VSPHERE_CA_FILE"))
    vsphere_insecure: bool = Field(False, validation_alias=_env("VSPHERE_INSECURE"),
                                   description="skip vCenter TLS verification (explicit opt-out)")

    # Kubernetes: KUBECONFIG when set, else the in-cluster service account
    kubeconfig: Path | None = Field(None, validation_alias=_env("KUBECONFIG"))

    # vCenter snapshot tasks this worker runs at once (the deployment's cap is replicas × slots)
    vcenter_task_slots: int = Field(8, ge=1)
    csi_sync: CSISyncMode = CSISyncMode.HANDSHAKE
    # how often a waiting CSI handshake re-reads the annotation in case a signal was missed
    csi_poll_seconds: float = 60.0
    # a delete that vCenter fails for its whole retry schedule is queued again after this long, doubling up to
    # the maximum, until it succeeds or the finalizer is removed by hand
    delete_retry_seconds: float = Field(300.0, gt=0)
    delete_retry_max_seconds: float = Field(3600.0, gt=0)

    # the bridge watches this namespace only ("" = every namespace)
    watch_namespace: str = ""
    # the bridge hands every watched object over again this often (the safety net for missed events)
    resync_seconds: float = 300.0
    # the bridge hands this many VMs' changes to Temporal at once (each VM's own changes stay in order)
    bridge_dispatch_concurrency: int = Field(16, ge=1)

    # the bridge's admission webhook (HTTPS); no cert file = not served (e.g. a second, watch-only bridge)
    webhook_port: int = 9443
    webhook_cert_file: Path | None = None
    webhook_key_file: Path | None = None

    health_port: int = 8080
    metrics_port: int = 9464
    graceful_shutdown_seconds: float = 30.0

    @model_validator(mode="after")
    def _credentials_from_url_or_file(self) -> "Settings":
        parts = urlsplit(self.vsphere_url)
        if parts.username and not self.vsphere_username:
            self.vsphere_username = unquote(parts.username)
        if parts.password and not self.vsphere_password.get_secret_value():
            self.vsphere_password = SecretStr(unquote(parts.password))
        if self.vsphere_password_file:
            self.vsphere_password = SecretStr(self.vsphere_password_file.read_text().strip())
        return self

    @property
    def vsphere_host(self) -> str:
        return urlsplit(self.vsphere_url).hostname or ""

    @property
    def vsphere_port(self) -> int:
        return urlsplit(self.vsphere_url).port or 443
