"""The local stack of the dev command: each part of the test bed plus the product's own processes."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from kubernetes import client, config

from bridge.admission.configuration import UrlReference, webhook_configurations
from testbed.csi_driver import CSIDriverStandIn
from testbed.kube import ControlPlane, install_crds, product_crd_files
from testbed.process import PartFailed, Process, free_port
from testbed.temporal import TemporalDevServer
from testbed.vcsim import VCSim
from workflows.search_attributes import DEV_SERVER_SEARCH_ATTRIBUTES

# fixed, so the URLs the dev command prints stay the same from run to run
PRODUCT_PORTS = {
    "worker.main": {"VMSNAP_HEALTH_PORT": "8080", "VMSNAP_METRICS_PORT": "9464"},
    "bridge.main": {"VMSNAP_HEALTH_PORT": "8081", "VMSNAP_METRICS_PORT": "9465"},
}


class Stack:
    def __init__(self, directory: Path, vms_per_pool: int = 2):
        self.dir = directory
        self.vms_per_pool = vms_per_pool
        self.temporal: TemporalDevServer | None = None
        self.kube: ControlPlane | None = None
        self.vcsim: VCSim | None = None
        self.csi: CSIDriverStandIn | None = None
        self.product: list[Process] = []
        self.webhook_port = free_port()
        self.env_file = directory / "env"

    def start(self) -> None:
        # a fresh stack each time: Kubernetes and Temporal state must agree, so neither outlives the other
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.temporal = TemporalDevServer(self.dir / "temporal", db_file=self.dir / "temporal.db", ui=True,
                                          search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES)
        self.temporal.start()
        self.kube = ControlPlane(self.dir / "kube").start()
        api = config.new_client_from_config(str(self.kube.kubeconfig))
        install_crds(api, product_crd_files())
        self.vcsim = VCSim(self.dir / "vcsim", vms_per_pool=self.vms_per_pool, tools_running=True).start()
        self.env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.environment().items()))
        self._run("import-vms", [sys.executable, "-m", "worker.import_vms", "--namespace", "default",
                                 "--name", "*", "--storage-class", "vmsnap-default"])
        self.csi = CSIDriverStandIn(api).start()
        self._start_product(api)

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
               "VMSNAP_WEBHOOK_PORT": str(self.webhook_port)}
        for module, ports in PRODUCT_PORTS.items():
            name = module.split(".")[0]
            process = Process(module, [sys.executable, "-m", module], self.dir / f"{name}.log",
                              env={**env, **ports, "VMSNAP_TRACE_FILE": str(self.dir / f"traces-{name}.jsonl")}
                              ).start()
            process.wait_ready(lambda p=process: "running" in p.log.read_text(errors="replace"), 60, "running")
            self.product.append(process)
        mutating, validating = webhook_configurations(UrlReference(f"https://127.0.0.1:{self.webhook_port}"),
                                                      self.kube.ca.cert_pem)
        admission = client.AdmissionregistrationV1Api(api)
        admission.create_mutating_webhook_configuration(mutating)
        admission.create_validating_webhook_configuration(validating)

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
            f"  Temporal UI      {self.temporal.ui_url}",
            f"  Temporal         {self.temporal.address}",
            f"  kube-apiserver   {self.kube.url}",
            f"  vCenter (vcsim)  {self.vcsim.url}",
            *(f"  {m.split('.')[0]:<16} metrics http://127.0.0.1:{p['VMSNAP_METRICS_PORT']}/metrics, "
              f"health http://127.0.0.1:{p['VMSNAP_HEALTH_PORT']}/healthz" for m, p in PRODUCT_PORTS.items()),
            f"  admission        https://127.0.0.1:{self.webhook_port} (served by the bridge)",
            f"  logs             {self.dir}",
            f"  traces           {self.dir}/traces-*.jsonl (one span per line; set OTEL_EXPORTER_OTLP_ENDPOINT "
            "to send them to Jaeger or any OTLP collector)",
            f"In another shell:  source {self.env_file} && kubectl get vm,vmsnapshot -A",
        ])

    def check_alive(self) -> None:
        for part in (self.temporal, self.kube, self.vcsim, *self.product):
            if part is not None:
                part.check_alive()

    def stop(self) -> None:
        for process in reversed(self.product):
            process.stop()
        if self.csi is not None:
            self.csi.stop()
        for part in (self.vcsim, self.kube, self.temporal):
            if part is not None:
                part.stop()
