"""The deployment on real pods: the image built here, a control plane and a node that runs pods (testbed/kubelet.py),
and the standalone overlay applied with `kubectl apply -k` through tests/pods/overlay and a last layer holding this
run's addresses, with the Secrets the manifests expect created as deploy/README.md tells a user to."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from testbed.health import Watched
from testbed.kube import ControlPlane
from testbed.kubelet import PodNode
from testbed.pki import CertificateAuthority
from testbed.process import PartFailed, free_port, repo_root

NAMESPACE = "vmsnap-system"
WORKERS = "app.kubernetes.io/name=vmsnap-worker"
BRIDGES = "app.kubernetes.io/name=vmsnap-bridge"
OVERLAY = repo_root() / "tests" / "pods" / "overlay"
ROLLOUT_TIMEOUT = 300


@dataclass
class PodCluster:
    plane: ControlPlane
    node: PodNode
    webhook_port: int
    timings: dict[str, float] = field(default_factory=dict)
    site: Path | None = None  # the last layer (site_overlay), as applied

    def kubectl(self, *args: str, **kwargs):
        return self.node.kubectl(*args, **kwargs)

    def watched(self) -> Watched:
        """The pods' own control plane and node."""
        plane, node = self.plane.watched(), self.node.watched()
        return Watched(processes=lambda: [*plane.processes(), *node.processes()],
                       probes=lambda: {**plane.probes(), **node.probes()})

    def pods(self, selector: str) -> list[dict]:
        return json.loads(self.kubectl("-n", NAMESPACE, "get", "pod", f"--selector={selector}", "-o",
                                       "json").stdout)["items"]

    def ready_pods(self, selector: str) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods(selector)
                if p["metadata"].get("deletionTimestamp") is None
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]

    def rollout_status(self, deployment: str, timeout: float = ROLLOUT_TIMEOUT) -> None:
        """Until the Deployment's rollout is complete; a failure carries the kubelet log, `describe pod` and the
        pods' logs."""
        done = self.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}",
                            f"--timeout={timeout:.0f}s", check=False, timeout=timeout + 30)
        if done.returncode != 0:
            self.fail(f"deployment {deployment} not rolled out: {done.stdout}{done.stderr}",
                      f"app.kubernetes.io/name={deployment}")

    def fail(self, what: str, selector: str = "") -> None:
        raise PartFailed("pods", f"{what}\n{self.node.diagnostics(NAMESPACE, selector)}")


def site_overlay(directory: Path, plane: ControlPlane, webhook_port: int, ca_pem: bytes) -> Path:
    """The last layer, as a site's own overlay: the apiserver on loopback for in-cluster clients (no kube-proxy
    routes the `kubernetes` Service's address), the webhook's port, and its URL and CA in the configurations."""
    directory.mkdir(parents=True, exist_ok=True)
    apiserver_env = [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                     {"name": "KUBERNETES_SERVICE_PORT", "value": str(plane.port)}]
    patches: list[dict] = []
    for part, extra in (("worker", []), ("bridge", [{"name": "VMSNAP_WEBHOOK_PORT", "value": str(webhook_port)}])):
        patches.append({"patch": yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"vmsnap-{part}", "namespace": NAMESPACE},
            "spec": {"template": {"spec": {"containers": [{"name": part, "env": apiserver_env + extra}]}}}})})
    ca_bundle = base64.b64encode(ca_pem).decode()
    for doc in yaml.safe_load_all((repo_root() / "deploy" / "base" / "webhook.yaml").read_text()):
        ops = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig",
                "value": {"url": f"https://127.0.0.1:{webhook_port}{hook['clientConfig']['service']['path']}",
                          "caBundle": ca_bundle}}
               for i, hook in enumerate(doc["webhooks"])]
        patches.append({"target": {"kind": doc["kind"], "name": doc["metadata"]["name"]},
                        "patch": yaml.safe_dump(ops)})
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAY, directory)], "patches": patches}))
    return directory


def deploy(workdir: Path, image: str, docker: str, temporal_address: str, vcsim) -> PodCluster:
    """Control plane, node, `kubectl apply -k`, Secrets; returns once 3 workers and 2 bridges are Ready."""
    plane = ControlPlane(workdir / "kube", pods=True).start()
    node = PodNode(workdir / "node", plane)
    try:
        node.start([image], docker)
        cluster = PodCluster(plane, node, free_port(), dict(node.timings))
        webhook_ca = CertificateAuthority("vmsnap-webhook-ca")
        certs = workdir / "webhook"
        certs.mkdir(parents=True, exist_ok=True)
        crt, key = webhook_ca.issue("vmsnap-webhook", ips=("127.0.0.1",), server=True).write(certs, "tls")
        site = cluster.site = site_overlay(workdir / "site", plane, cluster.webhook_port, webhook_ca.cert_pem)

        started = time.monotonic()
        cluster.kubectl("apply", "-k", str(site))
        ns = ("-n", NAMESPACE)
        # the URL without the credentials (they are keys of their own)
        url = f"https://{vcsim.host}:{vcsim.port}{urlsplit(vcsim.url).path}"
        cluster.kubectl(*ns, "create", "secret", "generic", "vmsnap-vcenter", f"--from-literal=url={url}",
                        f"--from-literal=username={vcsim.username}", f"--from-literal=password={vcsim.password}",
                        "--from-literal=insecure=true")
        cluster.kubectl(*ns, "create", "secret", "generic", "vmsnap-temporal",
                        f"--from-literal=address={temporal_address}", "--from-literal=namespace=default")
        cluster.kubectl(*ns, "create", "secret", "tls", "vmsnap-webhook-tls", f"--cert={crt}", f"--key={key}")
        for deployment in ("vmsnap-worker", "vmsnap-bridge"):
            cluster.rollout_status(deployment)
        cluster.timings["apply to 3 workers + 2 bridges Ready"] = time.monotonic() - started
        cluster.timings["pod start to Ready (slowest)"] = max(start_to_ready(p) for p in
                                                              cluster.pods(WORKERS) + cluster.pods(BRIDGES))
        return cluster
    except BaseException:
        node.stop()
        plane.stop()
        raise


def start_to_ready(pod: dict) -> float:
    """Seconds from the pod's start (the kubelet accepted it) to its Ready condition (the API's 1 s resolution)."""
    from datetime import datetime

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return at(ready["lastTransitionTime"]) - at(pod["status"]["startTime"])


def teardown(cluster: PodCluster) -> None:
    """The deployment first (its pods get their SIGTERM), then the node and the control plane."""
    try:
        cluster.kubectl("-n", NAMESPACE, "delete", "deployment", "--all", "--wait=true", "--timeout=120s",
                        check=False, timeout=150)
        cluster.kubectl("-n", NAMESPACE, "wait", "--for=delete", "pod", "--all", "--timeout=120s", check=False,
                        timeout=150)
    finally:
        cluster.node.stop()
        cluster.plane.stop()
