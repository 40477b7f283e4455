"""The deployment's identities, installed for real in the test bed: namespace vmsnap-system, the ServiceAccounts,
the ClusterRoles and their bindings, exactly as the kustomize build has them; and kubeconfigs that authenticate
as those ServiceAccounts with tokens the apiserver issues (TokenRequest), as a pod's projected token would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.deploy.compose_stack import build_images
from tests.deploy.manifests import build, kubectl

# Role and RoleBinding: VM Operator's capabilities ConfigMap in kube-system (rbac/vm-operator-capabilities.yaml)
INSTALLED_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
TOKEN_SECONDS = 2 * 3600


@pytest.fixture(scope="session")
def installed_identities(control_plane, kube_api, kubeconfig: Path, tmp_path_factory) -> Iterator[list[dict]]:
    """Namespace, ServiceAccounts and RBAC of the build, applied (not dry-run). Only on the test bed's own
    control plane: on a cluster named by KUBECONFIG this would change cluster-wide RBAC."""
    if control_plane is None:
        pytest.skip("installs cluster-wide RBAC: runs on the test bed's own kube-apiserver only (KUBECONFIG is set)")
    objects = [o for o in build("standalone") if o["kind"] in INSTALLED_KINDS]
    manifest = tmp_path_factory.mktemp("deploy") / "identities.yaml"
    install_identities(kubeconfig, objects, manifest)
    yield objects
    kubectl(kubeconfig, "delete", "--wait=false", "--ignore-not-found", "-f", str(manifest))


def account_kubeconfig(api: client.ApiClient, admin_kubeconfig: Path, directory: Path, namespace: str,
                       name: str) -> Path:
    """A kubeconfig that authenticates as ServiceAccount `namespace/name` of the cluster `api` talks to, with a
    token that apiserver issues (TokenRequest), as a pod's projected token would."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=TOKEN_SECONDS))  # no audiences: the apiserver's own
    token = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    path = directory / f"{namespace}-{name}.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "testbed", "cluster": cluster["cluster"]}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "testbed", "user": name}}]}))
    return path


def install_identities(kubeconfig: Path, objects: list[dict], manifest: Path) -> None:
    manifest.write_text(yaml.safe_dump_all(objects))
    done = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def service_account_kubeconfig(installed_identities, kube_api, kubeconfig: Path,
                               tmp_path_factory) -> Callable[[str, str], Path]:
    """`(namespace, name)` → a kubeconfig that authenticates as that ServiceAccount."""
    directory = tmp_path_factory.mktemp("service-accounts")
    return lambda namespace, name: account_kubeconfig(kube_api, kubeconfig, directory, namespace, name)


@pytest.fixture
def importer_kubeconfig(service_account_kubeconfig, kube_api, namespace: str) -> Path:
    """A ServiceAccount of the test's namespace, granted ClusterRole vmsnap-vm-importer there by a RoleBinding,
    as the standalone overlay's comment tells an operator to grant it."""
    account = f"importer-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api).create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name=account)))
    client.RbacAuthorizationV1Api(kube_api).create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=account),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                  name="vmsnap-vm-importer"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)]))
    return service_account_kubeconfig(namespace, account)


@pytest.fixture(scope="session")
def compose_images(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The images of docker-compose.yml's stack and of the production file's, built once for
    test_compose_up.py and test_compose_production.py (one session runs both: the `docker` group); the Docker
    client and the environment for `docker compose`."""
    return build_images(tmp_path_factory.mktemp("compose"))
