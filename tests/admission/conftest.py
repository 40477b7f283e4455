"""Fixtures of the admission tests: the bridge's AdmissionServer on a loopback port, registered in the REAL
apiserver by URL, and namespaces that the registered webhooks apply to.

The webhooks are confined to namespaces carrying this run's label (plus the default kube-system exclusion), so
other tests of the same session, and other sessions against the same cluster, never meet them. Without the
shared tests/conftest.py, load this file as a plugin: `-p tests.admission.conftest`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from api.names import GROUP, SNAPSHOT_FINALIZER, SNAPSHOT_PLURAL, VERSION, VM_NAME_LABEL
from bridge.admission import DEFAULT_NAMESPACE_SELECTOR, AdmissionServer, UrlReference, webhook_configurations
from runtime.kube import Kube
from testbed.pki import CertificateAuthority
from tests.admission.kube_objects import Objects, snapshot_manifest
from tests.admission.server_thread import ServerThread

RUN_LABEL = "vmsnap.test/admission-run"
REGISTRATION_TIMEOUT_SECONDS = 60


@dataclass
class RegisteredWebhook:
    thread: ServerThread
    base_url: str
    ca_file: Path
    run_id: str

    @property
    def server(self) -> AdmissionServer:
        return self.thread.server

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}


def _create_namespace(core: client.CoreV1Api, labels: dict[str, str]) -> str:
    # Labelled at creation: the apiserver matches namespaceSelector against its namespace cache, and a label
    # added later could reach that cache after the test's first write.
    name = "adm-" + uuid.uuid4().hex[:10]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    return name


def _release_and_delete(api: client.ApiClient, namespace: str) -> None:
    """Remove our finalizer from the namespace's snapshots (no bridge runs here to do it), then delete it."""
    custom = client.CustomObjectsApi(api)
    for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL)["items"]:
        finalizers = item["metadata"].get("finalizers") or []
        if SNAPSHOT_FINALIZER in finalizers:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, SNAPSHOT_PLURAL, item["metadata"]["name"],
                {"metadata": {"finalizers": [f for f in finalizers if f != SNAPSHOT_FINALIZER],
                              "resourceVersion": item["metadata"]["resourceVersion"]}})
    client.CoreV1Api(api).delete_namespace(namespace)


def _register(registration: client.AdmissionregistrationV1Api, mutating: dict, validating: dict) -> None:
    for create, delete, body in (
            (registration.create_mutating_webhook_configuration,
             registration.delete_mutating_webhook_configuration, mutating),
            (registration.create_validating_webhook_configuration,
             registration.delete_validating_webhook_configuration, validating)):
        try:
            create(body)
        except ApiException as error:
            if error.status != 409:
                raise
            delete(body["metadata"]["name"])
            create(body)


def _wait_until_in_force(api: client.ApiClient, namespace: str) -> None:
    """The apiserver loads webhook configurations asynchronously: probe with dry-run creates until both the
    mutating webhook (finalizer added) and the validating one (wrong label refused) answer."""
    objects = Objects(api, namespace)
    deadline = time.monotonic() + REGISTRATION_TIMEOUT_SECONDS
    while True:
        mutated = objects.create_snapshot(snapshot_manifest("probe"), dry_run="All")
        mutating_on = SNAPSHOT_FINALIZER in (mutated["metadata"].get("finalizers") or [])
        try:
            objects.create_snapshot(snapshot_manifest("probe", labels={VM_NAME_LABEL: "other"}), dry_run="All")
            validating_on = False
        except ApiException as error:
            validating_on = error.status == 422 and "admission webhook" in (error.body or "")
        if mutating_on and validating_on:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the webhook configurations were not in force after {REGISTRATION_TIMEOUT_SECONDS}s "
                               f"(mutating: {mutating_on}, validating: {validating_on})")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def admission_webhook(kube_api: client.ApiClient, testbed_dir: Path) -> Iterator[RegisteredWebhook]:
    run_id = uuid.uuid4().hex[:8]
    authority = CertificateAuthority("vmsnap-webhook-test-ca")
    certs = testbed_dir / "admission"
    cert_file, key_file = authority.issue("vmsnap-webhook", dns=("localhost",), ips=("127.0.0.1",),
                                          server=True).write(certs, "webhook")
    ca_file = certs / "ca.crt"
    ca_file.write_bytes(authority.cert_pem)

    thread = ServerThread(AdmissionServer(Kube(kube_api), cert_file, key_file, "127.0.0.1", 0)).start()
    base_url = f"https://127.0.0.1:{thread.server.port}"
    selector = {"matchLabels": {RUN_LABEL: run_id},
                "matchExpressions": DEFAULT_NAMESPACE_SELECTOR["matchExpressions"]}
    mutating, validating = webhook_configurations(UrlReference(base_url), authority.cert_pem,
                                                  configuration_name=f"vmsnap-webhook-test-{run_id}",
                                                  namespace_selector=selector)
    registration = client.AdmissionregistrationV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    probe_namespace = _create_namespace(core, {RUN_LABEL: run_id})
    try:
        _register(registration, mutating, validating)
        _wait_until_in_force(kube_api, probe_namespace)
        yield RegisteredWebhook(thread, base_url, ca_file, run_id)
    finally:
        for delete, name in ((registration.delete_mutating_webhook_configuration, mutating["metadata"]["name"]),
                             (registration.delete_validating_webhook_configuration,
                              validating["metadata"]["name"])):
            try:
                delete(name)
            except ApiException as error:
                if error.status != 404:
                    raise
        core.delete_namespace(probe_namespace)
        thread.stop()


@pytest.fixture
def webhook_namespace(kube_api: client.ApiClient, admission_webhook: RegisteredWebhook) -> Iterator[str]:
    """A fresh namespace where this run's webhooks apply."""
    name = _create_namespace(client.CoreV1Api(kube_api), admission_webhook.namespace_labels)
    yield name
    _release_and_delete(kube_api, name)


@pytest.fixture
def objects(kube_api: client.ApiClient, webhook_namespace: str) -> Objects:
    return Objects(kube_api, webhook_namespace)
