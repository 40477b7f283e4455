"""Each overlay through the REAL apiserver's validation and admission (`kubectl apply --dry-run=server`): schemas,
CRDs, webhook configurations, RBAC, and Pod Security "restricted" for the Deployments' pods.

cert-manager's Issuers and Certificates are the exception: the test bed has no cert-manager, so its CRDs are not
there to validate them, and a stand-in CRD would only validate what we wrote into it. They are left out of the
dry run and checked client-side in test_manifests.py (their wiring from webhook configuration to mounted Secret).
The namespace itself must exist for a dry run of the objects in it: the `installed_identities` fixture creates it
from the same build. The documented install without cert-manager goes through the dry run whole.
"""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from api.names import SNAPSHOT_CRD_NAME
from bridge.admission.manifests import CERT_MANAGER_INJECT_CA_ANNOTATION
from testbed.pki import CertificateAuthority
from tests.admission.kube_objects import KUBECTL
from tests.deploy.manifests import DEPLOY, OVERLAYS, REPO, build, is_cert_manager, kubectl, one

POD_SECURITY_WARNING = "would violate PodSecurity"


def server_dry_run(kubeconfig: Path, objects: list[dict], manifest: Path):
    manifest.write_text(yaml.safe_dump_all(objects))
    return kubectl(kubeconfig, "apply", "--dry-run=server", "-f", str(manifest))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_apiserver_accepts_the_overlay(overlay, installed_identities, kube_api, kubeconfig, tmp_path):
    objects = [o for o in build(overlay) if not is_cert_manager(o)]
    # the namespaces the build puts objects in without making them exist on a user's cluster already (the
    # namespaced overlay's scope holds their VMs)
    made = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    for name in {o["metadata"].get("namespace") for o in objects} - made - {None}:
        try:
            client.CoreV1Api(kube_api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except client.ApiException as e:
            if e.status != 409:
                raise
    done = server_dry_run(kubeconfig, objects, tmp_path / f"{overlay}.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects), done.stdout
    assert POD_SECURITY_WARNING not in done.stderr, done.stderr


def test_pod_security_warnings_would_show(installed_identities, kubeconfig, tmp_path):
    """The control for the check above: a pod that breaks "restricted" does draw the warning in this namespace."""
    worker = copy.deepcopy(one(build("production"), "Deployment", "vmsnap-worker"))
    del worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    done = server_dry_run(kubeconfig, [worker], tmp_path / "insecure.yaml")
    assert done.returncode == 0, done.stderr
    assert POD_SECURITY_WARNING in done.stderr


def readme_recipe(directory: Path, ca_pem: bytes) -> Path:
    """deploy/README.md's "Without cert-manager" kustomization, written out as the page says (the heredoc with the
    CA filled in, and the kustomization block), next to a checkout named `vmsnap`."""
    text = (DEPLOY / "README.md").read_text()
    heredoc = re.search(r"cat > site/webhook-ca\.yaml <<EOF\n(.*?)\nEOF\n", text, re.S).group(1)
    kustomization = re.search(r"```yaml\n# site/kustomization\.yaml\n(.*?)```", text, re.S).group(1)
    site = directory / "site"
    site.mkdir()
    (directory / "vmsnap").symlink_to(REPO)
    (site / "webhook-ca.yaml").write_text(heredoc.replace("$ca", base64.b64encode(ca_pem).decode()))
    (site / "kustomization.yaml").write_text(kustomization)
    return site


def test_the_documented_supervisor_install_leaves_vm_operators_snapshot_crd_alone(tmp_path):
    """deploy/README.md's "Running next to VM Operator" kustomization: the production overlay without this product's
    VirtualMachineSnapshot CRD (VM Operator's on a Supervisor), everything else as built."""
    text = (DEPLOY / "README.md").read_text()
    kustomization = re.search(r"```yaml\n# supervisor/kustomization\.yaml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "vmsnap").symlink_to(REPO)
    (tmp_path / "supervisor").mkdir()
    (tmp_path / "supervisor" / "kustomization.yaml").write_text(kustomization)
    done = subprocess.run([str(KUBECTL), "kustomize", str(tmp_path / "supervisor")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    built = [o for o in yaml.safe_load_all(done.stdout) if o]
    production = build("production")
    crds = {o["metadata"]["name"] for o in built if o["kind"] == "CustomResourceDefinition"}
    assert crds == {o["metadata"]["name"] for o in production if o["kind"] == "CustomResourceDefinition"} - \
        {SNAPSHOT_CRD_NAME}
    assert len(built) == len(production) - 1


def test_the_documented_install_without_cert_manager(installed_identities, kubeconfig, tmp_path):
    ca = CertificateAuthority("vmsnap-webhook-ca").cert_pem
    site = readme_recipe(tmp_path, ca)
    done = kubectl(kubeconfig, "kustomize", str(site))
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    assert not [o for o in objects if is_cert_manager(o)]
    for configuration in [o for o in objects if o["kind"].endswith("WebhookConfiguration")]:
        assert CERT_MANAGER_INJECT_CA_ANNOTATION not in configuration["metadata"].get("annotations", {})
        for webhook in configuration["webhooks"]:
            assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca
    assert one(objects, "Deployment", "vmsnap-worker") == one(build("production"), "Deployment", "vmsnap-worker")
    done = server_dry_run(kubeconfig, objects, tmp_path / "site.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(server dry run)") == len(objects), done.stdout
