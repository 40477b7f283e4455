"""The standalone overlay applied with `kubectl apply -k` on a real kubelet: 3 workers and 2 bridges Ready, as the
manifests declare them (their ServiceAccounts' mounted tokens, non-root, read-only root filesystem, the probes),
and the admission webhook answering from a bridge pod."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from api.names import GROUP, SNAPSHOT_FINALIZER, SNAPSHOT_PLURAL, VM_NAME_LABEL
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


def test_the_webhook_answers_from_a_bridge_pod(pod_cluster: PodCluster, pods_api, namespace: str):
    # a label that contradicts spec.vmName passes the CRD's schema: only the webhook refuses it
    bad = yaml.safe_load(GUIDE_SNAPSHOT_WITHOUT_MEMORY)
    bad["metadata"]["labels"] = {VM_NAME_LABEL: "other-vm"}
    with pytest.raises(ApiException) as refusal:
        client.CustomObjectsApi(pods_api).create_namespaced_custom_object(GROUP, "v1alpha5", namespace,
                                                                          SNAPSHOT_PLURAL, bad)
    status = json.loads(refusal.value.body)
    assert status["code"] == 422, status
    assert status["message"].startswith(
        'admission webhook "vmsnap.validating.virtualmachinesnapshot.v1alpha6.vmoperator.vmware.com" denied'), status
    assert 'must match spec.vmName "my-vm"' in status["message"], status
    # the guide's object as it is: admitted, with the mutating webhook's finalizer
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=GUIDE_SNAPSHOT_WITHOUT_MEMORY)
    created = json.loads(pod_cluster.kubectl("-n", namespace, "get", "vmsnapshot", "snap-1", "-o", "json").stdout)
    assert SNAPSHOT_FINALIZER in created["metadata"]["finalizers"]
