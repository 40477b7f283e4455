"""The standalone overlay applied with `kubectl apply -k` on a real kubelet: 3 workers and 2 bridges Ready, as the
manifests declare them (their ServiceAccounts' mounted tokens, non-root, read-only root filesystem, the probes),
and the admission webhook answering from a bridge pod."""

from __future__ import annotations

import json

from tests.guide_examples import GUIDE_SNAPSHOT_WITHOUT_MEMORY
from tests.pods.cluster import BRIDGES, NAMESPACE, WORKERS, PodCluster


def test_three_workers_and_two_bridges_ready_as_declared(pod_cluster: PodCluster):
    assert len(pod_cluster.ready_pods(WORKERS)) == 3, pod_cluster.node.diagnostics(NAMESPACE, WORKERS)
    assert len(pod_cluster.ready_pods(BRIDGES)) == 2, pod_cluster.node.diagnostics(NAMESPACE, BRIDGES)
    for selector, account in ((WORKERS, "vmsnap-worker"), (BRIDGES, "vmsnap-bridge")):
        for pod in pod_cluster.pods(selector):
            spec = pod["spec"]
            assert spec["serviceAccountName"] == account and spec["hostNetwork"] is True
            (container,) = spec["containers"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"startupProbe", "livenessProbe", "readinessProbe"} <= container.keys()
            name = pod["metadata"]["name"]
            # what the process itself sees: uid 10001, its ServiceAccount's token and no kubeconfig
            who = pod_cluster.kubectl("-n", NAMESPACE, "exec", name, "--", "python3", "-c",
                                      "import os, json; print(json.dumps([os.getuid(), os.environ.get('KUBECONFIG'),"
                                      " sorted(os.listdir('/var/run/secrets/kubernetes.io/serviceaccount'))]))")
            uid, kubeconfig, files = json.loads(who.stdout)
            assert uid == 10001 and kubeconfig is None and "token" in files, (name, who.stdout)
            refused = pod_cluster.kubectl("-n", NAMESPACE, "exec", name, "--", "touch", "/opt/x", check=False)
            assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused.stderr


def test_the_webhook_answers_from_a_bridge_pod(pod_cluster: PodCluster, pod_namespace: str):
    bad = GUIDE_SNAPSHOT_WITHOUT_MEMORY.replace("vmName: my-vm", "vmName: ''")
    refused = pod_cluster.kubectl("-n", pod_namespace, "apply", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0
    assert 'admission webhook "vmsnap.validating.virtualmachinesnapshot' in refused.stderr, refused.stderr
    assert "denied the request" in refused.stderr, refused.stderr
