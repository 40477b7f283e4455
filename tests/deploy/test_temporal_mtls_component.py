"""deploy/components/temporal-mtls, added to the production overlay the way a site adds it (a kustomization of its
own: the overlay as a resource, the component on top): the worker and the bridge get the client certificate, key and
CA from Secret vmsnap-temporal-tls as files in a directory the kubelet renews in place (no subPath), and the
settings that name those files, which are the files the product connects with and watches."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.settings import TEMPORAL_ENVIRONMENT, Settings
from tests.admission.kube_objects import KUBECTL
from tests.deploy.manifests import DEPLOY, build, container, env, one, product_env_names
from tests.deploy.test_manifests import mounted_secret_file

NAMESPACE = "vmsnap-system"
SECRET = "vmsnap-temporal-tls"
FILES = {"TEMPORAL_TLS_CLIENT_CERT_PATH": "tls.crt", "TEMPORAL_TLS_CLIENT_KEY_PATH": "tls.key",
         "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "ca.crt"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], ...]:
    # deploy/README.md's kustomization, as the page writes it, next to a checkout named `vmsnap`
    text = (DEPLOY / "README.md").read_text()
    found = re.search(r"```yaml\n# site/kustomization\.yaml, Temporal over mutual TLS[^\n]*\n(.*?)```", text, re.S)
    assert found, "deploy/README.md has no mutual-TLS kustomization"
    root = tmp_path_factory.mktemp("checkout")
    (root / "vmsnap").symlink_to(DEPLOY.parent)
    directory = root / "site"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text(found.group(1))
    done = subprocess.run([str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


@pytest.mark.parametrize("name", ["vmsnap-worker", "vmsnap-bridge"])
def test_the_processes_connect_with_the_secrets_files(site, name: str, monkeypatch: pytest.MonkeyPatch):
    deployment = one(site, "Deployment", name)
    variables = env(deployment)
    for variable, key in FILES.items():
        path = variables[variable]["value"]
        assert mounted_secret_file(deployment, path) == (SECRET, key)
    mount, = [m for m in container(deployment)["volumeMounts"] if m["name"] == "temporal-tls"]
    assert "subPath" not in mount, "a subPath mount is never renewed: the processes would keep the old certificate"
    assert variables["TEMPORAL_TLS_SERVER_NAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "vmsnap-temporal", "key": "server-name", "optional": True}
    assert set(variables) <= product_env_names()

    # what the product makes of them: these are the files it reads at each connect and watches for renewals
    for variable in TEMPORAL_ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    for variable in FILES:
        monkeypatch.setenv(variable, variables[variable]["value"])
    assert Settings().temporal_tls_files == {variable: Path(variables[variable]["value"]) for variable in FILES}


@pytest.mark.parametrize("name", ["vmsnap-worker", "vmsnap-bridge"])
def test_the_component_adds_to_the_production_overlay_and_takes_nothing_away(site, name: str):
    production = one(build("production"), "Deployment", name)
    with_mtls = one(site, "Deployment", name)
    assert set(env(production)) <= set(env(with_mtls))
    assert set(env(with_mtls)) - set(env(production)) == {*FILES, "TEMPORAL_TLS_SERVER_NAME"}
    volumes = {v["name"] for v in with_mtls["spec"]["template"]["spec"]["volumes"]}
    assert {v["name"] for v in production["spec"]["template"]["spec"]["volumes"]} | {"temporal-tls"} == volumes
    assert with_mtls["metadata"]["namespace"] == NAMESPACE
