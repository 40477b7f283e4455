"""Each overlay through the REAL apiserver's validation and admission (`kubectl apply --dry-run=server`): schemas,
CRDs, webhook configurations, RBAC, and Pod Security "restricted" for the Deployments' pods.

cert-manager's Issuers and Certificates are the exception: the test bed has no cert-manager, so its CRDs are not
there to validate them, and a stand-in CRD would only validate what we wrote into it. They are left out of the
dry run and checked client-side in test_manifests.py (their wiring from webhook configuration to mounted Secret).
The namespace itself must exist for a dry run of the objects in it: the `installed_identities` fixture creates it
from the same build.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import kubectl
from tests.deploy.manifests import OVERLAYS, build, is_cert_manager, one

POD_SECURITY_WARNING = "would violate PodSecurity"


def server_dry_run(kubeconfig: Path, objects: list[dict], manifest: Path):
    manifest.write_text(yaml.safe_dump_all(objects))
    return kubectl(kubeconfig, "apply", "--dry-run=server", "-f", str(manifest))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_apiserver_accepts_the_overlay(overlay, installed_identities, kubeconfig, tmp_path):
    objects = [o for o in build(overlay) if not is_cert_manager(o)]
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
