"""A production-shaped Temporal: four `temporal-server` processes (frontend, history, matching, worker) on a
private PostgreSQL, with SQL visibility so the product's search attributes work. Same interface as
`TemporalDevServer` where it makes sense (start, stop, address, check_alive), plus killing and starting each
service on its own, for outage tests.

With `FrontendTLS` its frontend serves TLS only and requires a client certificate signed by the test bed's CA
(mutual TLS, as production Temporal does); the cluster's own system worker and the fixture's CLI calls present one.
With `FrontendAuth` its frontend serves TLS and lets in only callers with a bearer token (an API key, to the
product) that its JWT claim mapper accepts and whose permissions its default authorizer allows; a fifth service, an
internal frontend, serves the cluster's own system worker, which has no token.

With `ui=True` the Temporal UI server (testbed/temporal_ui.py) runs beside the four services, as operators run it.

The server and its SQL tool are built from the Go module proxy by `testbed/go/build-temporal.sh` into a per-version
cache outside the clone (~7 min cold; nothing on a second run).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from testbed.health import Watched
from testbed.pki import CertificateAuthority
from testbed.postgres import PASSWORD, USER, PrivatePostgres
from testbed.process import PartFailed, Process, built_by, cache_dir, free_port, port_is_free
from testbed.temporal import temporal_cli
from testbed.temporal_ui import TemporalUIServer
from testbed.tokens import TokenIssuer

PART = "temporal-cluster"
VERSION = "1.32.2"
SERVICES = ("frontend", "history", "matching", "worker")
DATABASES = {"temporal": "temporal", "temporal_visibility": "visibility"}  # database: its schema directory
RETENTION = "24h"
# the name the frontend's certificate is issued to (and 127.0.0.1): what clients verify
TLS_SERVER_NAME = "localhost"


@dataclass(frozen=True)
class FrontendTLS:
    """The frontend's mutual TLS: its serving certificate, the CA it trusts for client certificates (the same test
    bed CA that signs everything here, whose certificate clients trust in turn), and a client certificate for the
    cluster's own callers (its system worker, the CLI)."""

    ca: CertificateAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def issued(cls, directory: Path, ca: CertificateAuthority | None = None) -> "FrontendTLS":
        ca = ca or CertificateAuthority("vmsnap-temporal-ca")
        directory.mkdir(parents=True, exist_ok=True)
        ca_file = directory / "ca.crt"
        ca_file.write_bytes(ca.cert_pem)
        server_cert, server_key = ca.issue(TLS_SERVER_NAME, dns=(TLS_SERVER_NAME,), ips=("127.0.0.1",),
                                           server=True).write(directory, "frontend")
        client_cert, client_key = ca.issue("temporal-system").write(directory, "system")
        return cls(ca, ca_file, server_cert, server_key, client_cert, client_key)

    def server_config(self) -> dict:
        """`global.tls` of the server's configuration."""
        client = {"serverName": TLS_SERVER_NAME, "rootCaFiles": [str(self.ca_file)]}
        return {"frontend": {"server": {"certFile": str(self.server_cert), "keyFile": str(self.server_key),
                                        "requireClientAuth": True, "clientCaFiles": [str(self.ca_file)]},
                             "client": client},
                # whatever inside the cluster calls the frontend (its system worker, the frontend itself) presents
                # this certificate: the frontend requires one from every caller
                "systemWorker": {"certFile": str(self.client_cert), "keyFile": str(self.client_key),
                                 "client": client}}

    def cli_flags(self) -> list[str]:
        return ["--tls-cert-path", str(self.client_cert), "--tls-key-path", str(self.client_key),
                "--tls-ca-path", str(self.ca_file), "--tls-server-name", TLS_SERVER_NAME]

    def client_environment(self, cert: Path | None = None, key: Path | None = None) -> dict[str, str]:
        """The product's settings (Temporal's environment configuration) for a client with this certificate."""
        env = {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(self.ca_file), "TEMPORAL_TLS_SERVER_NAME": TLS_SERVER_NAME}
        if cert is not None:
            env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(cert)
        if key is not None:
            env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(key)
        return env


@dataclass(frozen=True)
class FrontendAuth:
    """The frontend's bearer-token authentication: TLS with a serving certificate from `ca` (a token is sent only
    over TLS), the default JWT claim mapper and authorizer with `issuer`'s key set from `jwks_url`, and a token
    with the system's admin role for the fixture's CLI calls."""

    ca: CertificateAuthority
    ca_file: Path
    server_cert: Path
    server_key: Path
    issuer: TokenIssuer
    jwks_url: str

    @classmethod
    def issued(cls, directory: Path, issuer: TokenIssuer, jwks_url: str) -> "FrontendAuth":
        ca = CertificateAuthority("vmsnap-temporal-ca")
        directory.mkdir(parents=True, exist_ok=True)
        ca_file = directory / "ca.crt"
        ca_file.write_bytes(ca.cert_pem)
        server_cert, server_key = ca.issue(TLS_SERVER_NAME, dns=(TLS_SERVER_NAME,), ips=("127.0.0.1",),
                                           server=True).write(directory, "frontend")
        return cls(ca, ca_file, server_cert, server_key, issuer, jwks_url)

    def server_config(self) -> dict:
        """`global.tls` and `global.authorization` of the server's configuration."""
        return {"tls": {"frontend": {"server": {"certFile": str(self.server_cert), "keyFile": str(self.server_key)},
                                     "client": {"serverName": TLS_SERVER_NAME,
                                                "rootCaFiles": [str(self.ca_file)]}}},
                "authorization": {"jwtKeyProvider": {"keySourceURIs": [self.jwks_url], "refreshInterval": "1m"},
                                  "permissionsClaimName": "permissions", "authorizer": "default",
                                  "claimMapper": "default"}}

    def cli_flags(self) -> list[str]:
        return ["--api-key", self.issuer.token("temporal-system:admin", subject="test-bed"),
                "--tls-ca-path", str(self.ca_file), "--tls-server-name", TLS_SERVER_NAME]


def membership_port() -> int:
    """A free loopback port below 32768: the cluster_membership table keeps a service's port as a smallint (an
    ephemeral port from `free_port` overflows it and the service exits)."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        if port_is_free(port):
            return port
    raise PartFailed(PART, "no free port between 20000 and 32767")


def server_dir(version: str = VERSION) -> Path:
    """The cached temporal-server, temporal-sql-tool and schema; built into the cache when missing."""
    built = cache_dir() / "temporal" / version
    if (built / "temporal-server").exists() and (built / "temporal-sql-tool").exists():
        return built
    return built_by(PART, "build-temporal.sh", version, what="the Temporal server")


class TemporalCluster:
    """Four services on loopback, each with its own gRPC, membership and metrics ports and its own PID."""

    def __init__(self, workdir: Path, *, search_attributes: Iterable[str] = (), namespace: str = "default",
                 version: str = VERSION, tls: FrontendTLS | None = None, auth: FrontendAuth | None = None,
                 ui: bool = False):
        self.workdir = workdir
        self.tls, self.auth = tls, auth
        self.services = (*SERVICES, "internal-frontend") if auth else SERVICES
        self.search_attributes = list(search_attributes)  # "Name=Keyword", as the dev server takes them
        self.namespace = namespace
        self.version = version
        self.ports = {svc: {"grpc": free_port(), "membership": membership_port(), "metrics": free_port()}
                      for svc in self.services}
        self.http_port = free_port()
        self.postgres = PrivatePostgres(workdir / "postgres")
        self.processes: dict[str, Process] = {}
        self.log = workdir / "frontend.log"
        self.ui = TemporalUIServer(workdir / "ui", self.address, namespace=namespace, tls=tls) if ui else None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['frontend']['grpc']}"

    @property
    def ui_url(self) -> str:
        """The UI server's address ("" without `ui`)."""
        return self.ui.url if self.ui else ""

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]['metrics']}/metrics"

    def start(self) -> "TemporalCluster":
        bins = server_dir(self.version)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self._apply_schema(bins)
        self._write_config()
        for svc in self.services:
            self.processes[svc] = Process(
                f"temporal-{svc}", [bins / "temporal-server", "--root", self.workdir, "--config", "config",
                                    "--env", "cluster", "--zone", svc, "start", "--service", svc],
                self.workdir / f"{svc}.log", cwd=self.workdir)
        # The first boot writes the cluster's metadata row: services started together race for it and the losers
        # exit (duplicate key). One service first, the rest once it listens.
        self.start_service("history")
        rest = [svc for svc in self.services if svc != "history"]
        for svc in rest:
            self.processes[svc].start()
        for svc in rest:
            self.processes[svc].wait_ready(lambda svc=svc: self._listening(svc), timeout=90, what="listening")
        self.wait_serving()
        self._create_namespace()
        if self.ui:
            self.ui.start()
        return self

    # -- one service at a time (outage tests) --

    def kill(self, service: str) -> None:
        """SIGKILL one service, as a crash."""
        self.processes[service].kill()

    def start_service(self, service: str) -> None:
        """Start a service (again) and wait until it listens."""
        process = self.processes[service]
        process.start()
        process.wait_ready(lambda: self._listening(service), timeout=90, what="listening")

    def restart(self, service: str, after: float = 0.0) -> None:
        """SIGKILL a service, keep it down `after` seconds, start it again."""
        self.kill(service)
        time.sleep(after)
        self.start_service(service)

    def wait_serving(self, timeout: float = 90) -> None:
        self.processes["frontend"].wait_ready(self._healthy, timeout=timeout, what="serving")

    def _listening(self, service: str) -> bool:
        with socket.create_connection(("127.0.0.1", self.ports[service]["grpc"]), timeout=1):
            return True

    def _healthy(self) -> bool:
        done = self._cli("operator", "cluster", "health")
        return done.returncode == 0 and "SERVING" in done.stdout

    # -- the whole cluster --

    def check_alive(self) -> None:
        self.postgres.check_alive()
        for process in self.processes.values():
            process.check_alive()
        if self.ui:
            self.ui.check_alive()

    def watched(self) -> Watched:
        """Postgres and the four services alive, the frontend answering a health check; the UI server too."""
        def processes() -> list[Process]:
            ui = self.ui.process if self.ui else None
            return [p for p in (self.postgres.process, *self.processes.values(), ui) if p is not None]

        def probes() -> dict:
            return {"temporal-frontend": self._healthy, **({self.ui.process.part: self.ui.healthy}
                                                           if self.ui and self.ui.process else {})}
        return Watched(processes=processes, probes=probes)

    def stop(self) -> None:
        if self.ui:
            self.ui.stop()
        for process in self.processes.values():
            process.stop(timeout=20)
        self.postgres.stop()

    # -- set-up --

    def _cli(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        tls = self.tls.cli_flags() if self.tls else self.auth.cli_flags() if self.auth else []
        return subprocess.run([temporal_cli(), *args, "--address", self.address, *tls], capture_output=True,
                              text=True, timeout=timeout)

    def _apply_schema(self, bins: Path) -> None:
        env = {"SQL_PLUGIN": "postgres12", "SQL_HOST": "127.0.0.1", "SQL_PORT": str(self.postgres.port),
               "SQL_USER": USER, "SQL_PASSWORD": PASSWORD}
        log = self.workdir / "schema.log"
        for database, schema in DATABASES.items():
            versioned = bins / "schema" / "postgresql" / "v12" / schema / "versioned"
            for step in (["create-database"], ["setup-schema", "-v", "0.0"], ["update-schema", "-d", versioned]):
                with open(log, "ab") as out:
                    done = subprocess.run([bins / "temporal-sql-tool", "--db", database, *step], stdout=out,
                                          stderr=subprocess.STDOUT, env={**os.environ, **env})
                if done.returncode != 0:
                    raise PartFailed(PART, f"temporal-sql-tool {step[0]} on {database} failed", log)

    def _write_config(self) -> None:
        config = self.workdir / "config"
        config.mkdir(exist_ok=True)
        dynamic = self.workdir / "dynamicconfig.yaml"
        dynamic.write_text(yaml.safe_dump({
            # a search attribute is usable as soon as it is created (not after the cache's refresh)
            "system.forceSearchAttributesCacheRefreshOnRead": [{"value": True}],
        }))

        def store(database: str, conns: int) -> dict:
            return {"sql": {"pluginName": "postgres12", "databaseName": database, "connectAddr": self.postgres.address,
                            "connectProtocol": "tcp", "user": USER, "password": PASSWORD, "maxConns": conns,
                            "maxIdleConns": conns, "maxConnLifetime": "1h"}}
        base = {
            "log": {"stdout": True, "level": "warn"},
            "persistence": {"defaultStore": "default", "visibilityStore": "visibility", "numHistoryShards": 4,
                            "datastores": {"default": store("temporal", 20),
                                           "visibility": store("temporal_visibility", 5)}},
            "global": {"membership": {"maxJoinDuration": "30s", "broadcastAddress": "127.0.0.1"},
                       "pprof": {"port": 0}, **({"tls": self.tls.server_config()} if self.tls else {}),
                       **(self.auth.server_config() if self.auth else {})},
            "services": {svc: {"rpc": {"grpcPort": p["grpc"], "membershipPort": p["membership"],
                                       "bindOnIP": "127.0.0.1", **({"httpPort": self.http_port}
                                                                   if svc == "frontend" else {})}}
                         for svc, p in self.ports.items()},
            "clusterMetadata": {"enableGlobalNamespace": False, "failoverVersionIncrement": 10,
                                "masterClusterName": "vmsnap", "currentClusterName": "vmsnap",
                                "clusterInformation": {"vmsnap": {"enabled": True, "initialFailoverVersion": 1,
                                                                  "rpcName": "frontend",
                                                                  "rpcAddress": self.address}}},
            "dcRedirectionPolicy": {"policy": "noop"},
            "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}},
            "namespaceDefaults": {"archival": {"history": {"state": "disabled"},
                                               "visibility": {"state": "disabled"}}},
            "dynamicConfigClient": {"filepath": str(dynamic), "pollInterval": "10s"},
        }
        (config / "cluster.yaml").write_text(yaml.safe_dump(base))
        for svc, p in self.ports.items():  # the overlay `--zone svc` adds: its own metrics port
            (config / f"cluster_{svc}.yaml").write_text(yaml.safe_dump({"global": {"metrics": {"prometheus": {
                "framework": "tally", "timerType": "histogram", "listenAddress": f"127.0.0.1:{p['metrics']}"}}}}))

    def _create_namespace(self) -> None:
        done = self._cli("operator", "namespace", "create", "--namespace", self.namespace, "--retention", RETENTION)
        if done.returncode != 0 and "already" not in (done.stderr + done.stdout).lower():
            raise PartFailed(PART, f"creating namespace {self.namespace} failed: {done.stderr.strip()}", self.log)
        self._poll(lambda: self._cli("operator", "namespace", "describe", "--namespace",
                                     self.namespace).returncode == 0, f"namespace {self.namespace}")
        wanted = dict(attr.split("=", 1) for attr in self.search_attributes)
        # one name per call: with several --name flags the CLI registers only the first and still says OK
        for name, kind in wanted.items():
            done = self._cli("operator", "search-attribute", "create", "--namespace", self.namespace,
                             "--name", name, "--type", kind)
            if done.returncode != 0 and "already" not in (done.stderr + done.stdout).lower():
                raise PartFailed(PART, f"creating search attribute {name} failed: {done.stderr.strip()}", self.log)
        self._poll(lambda: set(wanted) <= self._search_attributes(), f"search attributes {sorted(wanted)}")

    def _search_attributes(self) -> set[str]:
        done = self._cli("operator", "search-attribute", "list", "--namespace", self.namespace, "--output", "json")
        if done.returncode != 0:
            return set()
        listed = json.loads(done.stdout)
        return set(listed.get("customAttributes", {})) if isinstance(listed, dict) else set()

    def _poll(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.5)
        raise PartFailed(PART, f"{what} not visible after {timeout:.0f}s", self.log)
