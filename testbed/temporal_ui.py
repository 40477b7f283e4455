"""The Temporal UI server for a self-hosted Temporal (the test bed's four-service cluster): the Go module
`github.com/temporalio/ui-server/v2` (`cmd/server`, the built UI embedded), built from the Go module proxy by
`testbed/go/build-ui-server.sh` into a per-version cache outside the clone (~1 min cold; nothing on a second run).
The dev server has the same UI built in (`TemporalDevServer(ui=True)`); this one is what operators run beside a
cluster, configured as they would: `<root>/config/<env>.yaml` with `temporalGrpcAddress`, `port` and, for a frontend
that requires client certificates, `tls`.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from testbed.health import Watched
from testbed.process import PartFailed, Process, built_by, cache_dir, free_port, port_is_free

if TYPE_CHECKING:
    from testbed.temporal_cluster import FrontendTLS

PART = "temporal-ui"
VERSION = "2.58.1"
ENV = "vmsnap"  # `start --env vmsnap` reads config/vmsnap.yaml
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def ui_server_binary(version: str = VERSION) -> Path:
    """The cached UI server; built into the cache when missing."""
    built = cache_dir() / "ui-server" / version / "ui-server"
    if built.exists():
        return built
    return built_by(PART, "build-ui-server.sh", version, what="the Temporal UI server")


class TemporalUIServer:
    """One UI server on loopback in front of a Temporal frontend."""

    def __init__(self, workdir: Path, temporal_address: str, *, namespace: str = "default",
                 tls: FrontendTLS | None = None, port: int | None = None, version: str = VERSION):
        self.workdir = workdir
        self.temporal_address = temporal_address
        self.namespace = namespace
        self.tls = tls
        self.port = port or free_port()
        self.version = version
        self.log = workdir / "ui-server.log"
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict:
        config: dict = {
            "temporalGrpcAddress": self.temporal_address, "host": "127.0.0.1", "port": self.port,
            "enableUi": True, "defaultNamespace": self.namespace, "refreshInterval": "0s",
            # plain HTTP on loopback: the CSRF cookie must not be Secure-only, or the browser drops it and every
            # write action (terminate, signal) fails
            "cors": {"cookieInsecure": True},
            # a closed network: no news feed, no version check from the browser
            "disableNewsFetch": True, "notifyOnNewVersion": False, "hideLogs": False,
        }
        if self.tls is not None:
            config["tls"] = {"caFile": str(self.tls.ca_file), "certFile": str(self.tls.client_cert),
                             "keyFile": str(self.tls.client_key), "enableHostVerification": True,
                             "serverName": self._server_name()}
        return config

    def _server_name(self) -> str:
        from testbed.temporal_cluster import TLS_SERVER_NAME
        return TLS_SERVER_NAME

    def start(self) -> "TemporalUIServer":
        binary = ui_server_binary(self.version)
        if not port_is_free(self.port):
            raise PartFailed(PART, f"port {self.port} is already taken", self.log)
        (self.workdir / "config").mkdir(parents=True, exist_ok=True)
        (self.workdir / "config" / f"{ENV}.yaml").write_text(yaml.safe_dump(self.config()))
        self.process = Process(PART, [binary, "--root", self.workdir, "--config", "config", "--env", ENV, "start"],
                               self.log, cwd=self.workdir).start()
        self.process.wait_ready(lambda: self.healthy() and self.reaches_temporal(), timeout=30, what="serving")
        return self

    def healthy(self) -> bool:
        """The server itself answers (whether the frontend behind it does is the frontend's own probe: outage
        tests take the frontend down and the UI server stays up)."""
        with _direct.open(f"{self.url}/healthz", timeout=5) as resp:
            return resp.status == 200

    def reaches_temporal(self) -> bool:
        """Temporal's HTTP API answers through it."""
        with _direct.open(f"{self.url}/api/v1/cluster-info", timeout=5) as resp:
            return resp.status == 200

    def check_alive(self) -> None:
        if self.process:
            self.process.check_alive()

    def watched(self) -> Watched:
        return Watched(processes=lambda: [self.process] if self.process else [], probes=lambda: {PART: self.healthy})

    def stop(self) -> None:
        if self.process:
            self.process.stop()
