"""A real Kubernetes control plane on loopback: etcd + kube-apiserver (+ kube-controller-manager for
garbage collection and namespace deletion), started the way controller-runtime's envtest starts them.

`ControlPlane(..., pods=True)` is the control plane of a cluster that runs pods (testbed/kubelet.py): the
ServiceAccount admission plugin on (pods get their token mounted), the controllers Deployments need, and what
the apiserver needs to reach the kubelet (a client certificate, the node's host name, which resolves to loopback).

Binaries come from `KUBEBUILDER_ASSETS` (as envtest) or are built from the Go module proxy by
`testbed/go/build-k8s.sh` into a per-version cache outside the clone.
"""

from __future__ import annotations

import os
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from testbed.health import Watched
from testbed.pki import CertificateAuthority, service_account_key
from testbed.process import PartFailed, Process, built_by, cache_dir, free_port, repo_root

PART = "kube-apiserver"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
CONTROLLERS = ("namespace", "garbagecollector", "serviceaccount-token")
# a cluster with pods: default ServiceAccounts and the kube-root-ca.crt ConfigMap (the token volume mounts it),
# Deployments, PodDisruptionBudget status (evictions read it), and the node's not-ready taint lifted once Ready
POD_CONTROLLERS = ("serviceaccount", "root-ca-cert-publisher", "deployment", "replicaset", "disruption",
                   "nodelifecycle")


def product_crd_files(deploy: Path | None = None) -> list[Path]:
    """Our CRDs, as the standalone overlay installs them: the base's (VirtualMachineSnapshot), the schedules and
    group-snapshots components' (VirtualMachineSnapshotSchedule, VirtualMachineGroupSnapshot) and the overlay's own
    (VirtualMachine)."""
    deploy = deploy or repo_root() / "deploy"
    return [*sorted(deploy.glob("base/crds/*.yaml")), *sorted(deploy.glob("components/schedules/crds/*.yaml")),
            *sorted(deploy.glob("components/group-snapshots/crds/*.yaml")),
            *sorted(deploy.glob("overlays/standalone/crds/*.yaml"))]


def binaries_dir() -> Path:
    """KUBEBUILDER_ASSETS if set, else the cache, building into it when empty."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        missing = [b for b in BINARIES if not (Path(assets) / b).exists()]
        if missing:
            raise PartFailed(PART, f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}")
        return Path(assets)
    current = cache_dir() / "k8s" / "current"
    if all((current / b).exists() for b in BINARIES):
        return current.resolve()
    return built_by(PART, "build-k8s.sh", what="the control plane")


class ControlPlane:
    """etcd, kube-apiserver (RBAC on) and kube-controller-manager, with an admin kubeconfig."""

    def __init__(self, workdir: Path, *, controller_manager: bool = True, pods: bool = False):
        self.workdir = workdir
        self.controller_manager = controller_manager
        self.pods = pods
        self.ca = CertificateAuthority()
        self.port = free_port()
        self.processes: list[Process] = []
        self.kubeconfig = workdir / "kubeconfig"
        self.etcd_url = ""
        self.controller_manager_port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "ControlPlane":
        bins = binaries_dir()
        certs = self.workdir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        ca_file = certs / "ca.crt"
        ca_file.write_bytes(self.ca.cert_pem)
        serving_crt, serving_key = self.ca.issue("kube-apiserver", dns=("localhost",), ips=("127.0.0.1",),
                                                 server=True).write(certs, "apiserver")
        sa_pub, sa_key = service_account_key().write(certs, "sa")

        etcd_port, etcd_peer = free_port(), free_port()
        etcd_url = self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = Process("etcd", [bins / "etcd", "--data-dir", self.workdir / "etcd",
                                "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                                "--unsafe-no-fsync=true", "--log-level", "warn"],
                       self.workdir / "etcd.log").start()
        self.processes.append(etcd)
        etcd.wait_ready(self._etcd_healthy, timeout=60, what="healthy")

        if self.pods:
            kubelet_crt, kubelet_key = self.ca.issue("kube-apiserver-kubelet-client",
                                                     organizations=("system:masters",)).write(certs, "kubelet-client")
            node_flags = [f"--kubelet-client-certificate={kubelet_crt}", f"--kubelet-client-key={kubelet_key}",
                          # the node's host name resolves to 127.0.0.1; its InternalIP is not loopback
                          "--kubelet-preferred-address-types=Hostname"]
        else:  # no kubelet: nothing would mount the tokens the plugin asks for
            node_flags = ["--disable-admission-plugins=ServiceAccount"]
        apiserver = Process(PART, [
            bins / "kube-apiserver", f"--etcd-servers={etcd_url}", f"--cert-dir={certs}",
            f"--secure-port={self.port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={serving_crt}", f"--tls-private-key-file={serving_key}",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true", *node_flags,
            "--authorization-mode=RBAC",
            f"--client-ca-file={ca_file}",
            f"--service-account-issuer=https://127.0.0.1:{self.port}/",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            # watches served by etcd with a short compaction interval, so a stale resourceVersion turns into
            # 410 Gone within seconds (the watch cache would keep serving it for much longer)
            "--etcd-compaction-interval=10s", "--watch-cache=false",
        ], self.workdir / "kube-apiserver.log").start()
        self.processes.append(apiserver)

        admin_crt, admin_key = self.ca.issue("admin", organizations=("system:masters",)).write(certs, "admin")
        self._write_kubeconfig(self.kubeconfig, admin_crt, admin_key)
        apiserver.wait_ready(self._ready, timeout=90, what="ready (/readyz)")

        if self.controller_manager:
            kcm_port = self.controller_manager_port = free_port()
            kcm = Process("kube-controller-manager", [
                bins / "kube-controller-manager", f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}", f"--authorization-kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(CONTROLLERS + (POD_CONTROLLERS if self.pods else ()))}",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa_key}", f"--root-ca-file={ca_file}",
                "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
            ], self.workdir / "kube-controller-manager.log").start()
            self.processes.append(kcm)
            kcm.wait_ready(self._controller_manager_healthy, timeout=60, what="healthy")
        self._wait_default_namespace()
        return self

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1) as r:
            return b"true" in r.read()

    def _controller_manager_healthy(self) -> bool:
        return _healthz(f"https://127.0.0.1:{self.controller_manager_port}/healthz")

    def ready_probes(self) -> dict[str, Callable[[], bool]]:
        """Part name → a check that it serves again (each process keeps its ports and data when restarted)."""
        probes = {"etcd": self._etcd_healthy, PART: self._ready}
        if self.controller_manager:
            probes["kube-controller-manager"] = self._controller_manager_healthy
        return probes

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.workdir / "certs" / "ca.crt"))
        ctx.load_cert_chain(self.workdir / "certs" / "admin.crt", self.workdir / "certs" / "admin.key")
        return ctx

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/readyz", context=self._ssl_context(), timeout=5) as r:
            return r.status == 200

    def _wait_default_namespace(self) -> None:
        def ok() -> bool:
            with urllib.request.urlopen(f"{self.url}/api/v1/namespaces/default", context=self._ssl_context(),
                                        timeout=5) as r:
                return r.status == 200
        self.processes[1].wait_ready(ok, timeout=60, what="serving namespace default")

    def _write_kubeconfig(self, path: Path, crt: Path, key: Path, user: str = "admin") -> None:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
            "clusters": [{"name": "testbed", "cluster": {
                "server": self.url, "certificate-authority": str(self.workdir / "certs" / "ca.crt")}}],
            "users": [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": user}}],
        }))

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for another identity, to test RBAC: a client cert with CN=user, O=groups."""
        certs = self.workdir / "certs"
        stem = "user-" + user.replace(":", "_")
        crt, key = self.ca.issue(user, organizations=groups).write(certs, stem)
        path = self.workdir / f"kubeconfig-{stem}"
        self._write_kubeconfig(path, crt, key, user)
        return path

    def check_alive(self) -> None:
        for p in self.processes:
            p.check_alive()

    def watched(self) -> Watched:
        return Watched(processes=lambda: list(self.processes), probes=self.ready_probes)

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()


def _healthz(url: str) -> bool:
    # the controller-manager serves /healthz to anyone over a self-signed cert
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
        return r.status == 200


def install_crds(api_client, files: list[Path], timeout: float = 60) -> list[str]:
    """Create or replace each CRD, then wait until it is Established and its plural is in discovery
    (as envtest's WaitForCRDs does). Returns the CRD names."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(api_client)
    names: list[str] = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            name = doc["metadata"]["name"]
            names.append(name)
            try:
                ext.create_custom_resource_definition(doc)
            except ApiException as e:
                if e.status != 409:
                    raise
                current = ext.read_custom_resource_definition(name)
                doc["metadata"]["resourceVersion"] = current.metadata.resource_version
                ext.replace_custom_resource_definition(name, doc)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            established = any(c.type == "Established" and c.status == "True"
                              for c in (crd.status.conditions or []))
            if established and _served(api_client, crd):
                break
            if time.monotonic() > deadline:
                raise PartFailed(PART, f"CRD {name} not established and served after {timeout:.0f}s")
            time.sleep(0.1)
    return names


def _served(api_client, crd) -> bool:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    custom = client.CustomObjectsApi(api_client)
    group, plural = crd.spec.group, crd.spec.names.plural
    for version in (v.name for v in crd.spec.versions if v.served):
        try:
            resources = custom.get_api_resources(group, version)
        except ApiException:
            return False
        if plural not in {r.name for r in resources.resources or []}:
            return False
    return True
