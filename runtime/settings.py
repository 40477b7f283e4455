"""The one configuration model of the worker and the bridge: the only code that reads the environment (and
secret files). The Temporal connection comes from Temporal's own environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, or a profile in `TEMPORAL_CONFIG_FILE`), read here too.

Secrets are `SecretStr`: they never appear in logs, reprs or traces.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig

from api.names import QuiesceFallback
from api.operation_policy import parse_failure_deadline

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_TEMPORAL_NAMESPACE = "default"
# what Temporal's environment configuration reads (temporalio.envconfig), through `Settings.temporal`
TEMPORAL_ENVIRONMENT = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
                        "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
                        "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME",
                        "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "TEMPORAL_CONFIG_FILE", "TEMPORAL_PROFILE")


class CSISyncMode(StrEnum):
    HANDSHAKE = "handshake"  # wait for the vSphere CSI driver to set csi.vsphere.volume.sync: completed
    SKIP = "skip"            # clusters without the vSphere CSI driver: mark CSISynced at once


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VMSNAP_", extra="ignore", populate_by_name=True)

    task_queue: str = "vm-snapshots"
    # who this process is in Temporal's histories ("" = the SDK's pid@hostname, which says nothing when pods share
    # the node's network and so its host name, each being PID 1: set it to the pod's name then)
    temporal_identity: str = Field("", validation_alias=_env("TEMPORAL_IDENTITY", "VMSNAP_TEMPORAL_IDENTITY"))
    # the TLS files of the Temporal connection (TEMPORAL_TLS_*_PATH) are looked at this often: when they change, the
    # process connects anew with them and moves every use of Temporal to the new connection (no restart)
    temporal_certificate_check_seconds: float = Field(10.0, gt=0)
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
    # every Kubernetes request but a watch gives up after this long without an answer (connecting: a third of
    # it): a half-open connection fails the step's attempt, to be retried, instead of holding its thread past
    # the step's 30 s start-to-close
    kube_request_timeout_seconds: float = Field(15.0, gt=0)

    # vCenter snapshot tasks this worker runs at once (the deployment's cap is replicas × slots)
    vcenter_task_slots: int = Field(8, ge=1)
    csi_sync: CSISyncMode = CSISyncMode.HANDSHAKE
    # how long an operation may take before it is stopped, undone and reported DeadlineExceeded (a duration; an
    # object's vmsnap.io/failure-deadline annotation overrides it), and what a create does when the guest cannot
    # be quiesced (`fail`, or `crash-consistent`: take it again without quiescing; vmsnap.io/quiesce-fallback)
    failure_deadline: str = "1h"
    quiesce_fallback: QuiesceFallback = QuiesceFallback.FAIL
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

    # VM Operator's own VirtualMachineSnapshot controller (its Supervisor capability supports_VM_service_VM_snapshots):
    # where it is on, or where it cannot be told, the worker does not poll and the bridge hands nothing to Temporal
    # (runtime/coexistence.py); true = act anyway, with a warning (the operator knows VM Operator's controller leaves
    # these objects alone). Checked at start and every vm_operator_check_seconds (an upgrade can turn it on).
    allow_beside_vm_operator_snapshots: bool = False
    vm_operator_check_seconds: float = Field(180.0, gt=0)
    # What else must hold before the processes act, checked at start and every prerequisites_check_seconds (so that
    # fixing it resumes work without a restart): the Temporal namespace has the product's search attributes
    # (runtime/namespace_check.py; worker and bridge), and the vCenter user holds the product's privileges
    # (runtime/vsphere_privileges.py; worker), on the root folder, or where vcenter_privileges_on says: inventory
    # paths, comma-separated (e.g. /DC0/vm/team-a), for a role granted on those folders only.
    prerequisites_check_seconds: float = Field(60.0, gt=0)
    vcenter_privileges_on: str = ""

    # the bridge's admission webhook (HTTPS); no cert file = not served (e.g. a second, watch-only bridge)
    webhook_port: int = 9443
    webhook_cert_file: Path | None = None
    webhook_key_file: Path | None = None
    # SO_REUSEPORT on the webhook's listener: bridges that share a network (hostNetwork pods on one node) all
    # listen on the one port the webhook configuration names, and the kernel spreads the reviews over them
    webhook_reuse_port: bool = False

    # 0: the kernel picks a free port, written to health_port_file (pods sharing the host's network, whose probes
    # read it there); 8080 is the Deployments' port
    health_port: int = 8080
    health_port_file: Path | None = None
    metrics_port: int = 9464
    graceful_shutdown_seconds: float = 30.0

    # telemetry: traces go to OTLP (the standard OTEL_* names, read again by the exporter itself), to a JSON-lines
    # file, or to the console; with none, tracing is off
    otlp_endpoint: str = Field("", validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    traces_exporter: str = Field("", validation_alias=_env("OTEL_TRACES_EXPORTER"))
    trace_file: Path | None = None
    log_format: str = "text"

    @cached_property
    def temporal_profile(self) -> ClientConfigProfile:
        """Temporal's environment configuration (variables over the profile file), read once: what to connect to,
        and the paths of the TLS files (read at each connect, `temporal`)."""
        return ClientConfigProfile.load()

    @property
    def temporal(self) -> ClientConnectConfig:
        """Keyword arguments of `Client.connect` (target_host, namespace, api_key, tls, rpc_metadata) from
        Temporal's environment configuration, with the SDK's usual defaults for address and namespace. The TLS
        files are read anew each time: a renewed client certificate is used from the next connect."""
        config = self.temporal_profile.to_client_connect_config()
        config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
        config.setdefault("namespace", DEFAULT_TEMPORAL_NAMESPACE)
        return config

    @property
    def temporal_tls_files(self) -> dict[str, Path]:
        """The TLS files of the Temporal connection, by the variable that names them (those given as paths)."""
        tls = self.temporal_profile.tls
        if tls is None:
            return {}
        files = {"TEMPORAL_TLS_CLIENT_CERT_PATH": tls.client_cert,
                 "TEMPORAL_TLS_CLIENT_KEY_PATH": tls.client_private_key,
                 "TEMPORAL_TLS_SERVER_CA_CERT_PATH": tls.server_root_ca_cert}
        return {name: Path(source) for name, source in files.items() if isinstance(source, Path)}

    @property
    def temporal_address(self) -> str:
        return self.temporal_profile.address or DEFAULT_TEMPORAL_ADDRESS

    @property
    def temporal_namespace(self) -> str:
        return self.temporal_profile.namespace or DEFAULT_TEMPORAL_NAMESPACE

    @property
    def tracing(self) -> bool:
        return bool(self.otlp_endpoint or self.trace_file or self.traces_exporter == "console")

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
    def failure_deadline_default(self) -> timedelta:
        return parse_failure_deadline(self.failure_deadline, field="VMSNAP_FAILURE_DEADLINE")

    @model_validator(mode="after")
    def _failure_deadline_parses(self) -> "Settings":
        self.failure_deadline_default  # noqa: B018 - a bad value stops the process at start, naming the setting
        return self

    @property
    def vsphere_host(self) -> str:
        return urlsplit(self.vsphere_url).hostname or ""

    @property
    def vsphere_port(self) -> int:
        return urlsplit(self.vsphere_url).port or 443
