"""The local stack of the dev command: each part of the test bed plus the product's own processes."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from kubernetes import config

from testbed.kube import ControlPlane, install_crds, product_crd_files
from testbed.temporal import TemporalDevServer
from testbed.vcsim import VCSim
from workflows.search_attributes import DEV_SERVER_SEARCH_ATTRIBUTES


class Stack:
    def __init__(self, directory: Path, vms_per_pool: int = 2):
        self.dir = directory
        self.vms_per_pool = vms_per_pool
        self.temporal: TemporalDevServer | None = None
        self.kube: ControlPlane | None = None
        self.vcsim: VCSim | None = None
        self.env_file = directory / "env"

    def start(self) -> None:
        # a fresh stack each time: Kubernetes and Temporal state must agree, so neither outlives the other
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.temporal = TemporalDevServer(self.dir / "temporal", db_file=self.dir / "temporal.db", ui=True,
                                          search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES)
        self.temporal.start()
        self.kube = ControlPlane(self.dir / "kube").start()
        install_crds(config.new_client_from_config(str(self.kube.kubeconfig)), product_crd_files())
        self.vcsim = VCSim(self.dir / "vcsim", vms_per_pool=self.vms_per_pool).start()
        self.env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.environment().items()))

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
            f"  logs             {self.dir}",
            f"In another shell:  source {self.env_file} && kubectl get vm,vmsnapshot -A",
        ])

    def check_alive(self) -> None:
        for part in (self.temporal, self.kube, self.vcsim):
            if part is not None:
                part.check_alive()

    def stop(self) -> None:
        for part in (self.vcsim, self.kube, self.temporal):
            if part is not None:
                part.stop()
