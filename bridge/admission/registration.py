"""The MutatingWebhookConfiguration and ValidatingWebhookConfiguration registered with the apiserver, which send
reviews to this server.

One builder for both forms of endpoint: a Service reference (in a cluster; manifests.py renders that form into
deploy/base/webhook.yaml) and a URL (the dev stack, docker compose and the tests, on loopback).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Any

from .webhooks import MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS, Webhook

DEFAULT_CONFIGURATION_NAME = "vmsnap-webhook"
# The control plane's own namespace is never subject to these webhooks (a broken webhook must not be able to
# block it); nothing there is a VirtualMachine or a snapshot of one.
DEFAULT_NAMESPACE_SELECTOR: dict[str, Any] = {"matchExpressions": [
    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ServiceReference:
    name: str
    namespace: str
    port: int = 443


@dataclass(frozen=True)
class UrlReference:
    base_url: str  # e.g. https://127.0.0.1:9443, the paths are appended

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


WebhookEndpoint = ServiceReference | UrlReference

# The product's own UPDATEs skip every webhook, so that with no bridge answering (a rollout gone wrong, a drained
# node) the worker still finishes what is in flight: annotations, the VM spec a revert restores, and the finalizer
# removal that ends a delete. Its CREATEs (a schedule's runs) are still admitted: they need the finalizer and the
# checks, and fail with the refusal while no bridge answers. Everyone else's writes fail closed, as before.
OWN_UPDATES_CONDITION = "not-an-update-by-vmsnap"
# A webhook of deletes only (a group's member deleted on its own) skips the product's own deletes too: a group's
# saga undoing its members must never wait on a bridge.
OWN_WRITES_CONDITION = "not-by-vmsnap"


def own_updates_expression(users: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{user}'" for user in users)
    return f"!(request.operation == 'UPDATE' && request.userInfo.username in [{listed}])"


def own_writes_expression(users: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{user}'" for user in users)
    return f"!(request.userInfo.username in [{listed}])"


def webhook_configurations(endpoint: WebhookEndpoint, ca_bundle: bytes | None = None, *,
                           configuration_name: str = DEFAULT_CONFIGURATION_NAME,
                           namespace_selector: dict[str, Any] | None = None,
                           annotations: dict[str, str] | None = None,
                           own_users: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MutatingWebhookConfiguration, ValidatingWebhookConfiguration) as plain dicts.

    `ca_bundle` is the PEM of the CA that signed the server's certificate (None when something else, such as
    cert-manager's cainjector, fills it in). `namespace_selector` replaces the default one (which only leaves
    out kube-system); the tests use it to confine the webhooks to their own namespaces. `own_users` are the
    product's own identities, whose UPDATEs no webhook is called for (OWN_UPDATES_CONDITION).
    """
    selector = copy.deepcopy(namespace_selector if namespace_selector is not None else DEFAULT_NAMESPACE_SELECTOR)

    def entries(webhooks: tuple[Webhook, ...]) -> list[dict[str, Any]]:
        return [_webhook_entry(w, endpoint, ca_bundle, selector, own_users) for w in webhooks]

    metadata: dict[str, Any] = {"name": configuration_name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    mutating = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": copy.deepcopy(metadata), "webhooks": entries(MUTATING_WEBHOOKS)}
    validating = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                  "metadata": copy.deepcopy(metadata), "webhooks": entries(VALIDATING_WEBHOOKS)}
    return mutating, validating


def _webhook_entry(webhook: Webhook, endpoint: WebhookEndpoint, ca_bundle: bytes | None,
                   namespace_selector: dict[str, Any], own_users: tuple[str, ...]) -> dict[str, Any]:
    client_config: dict[str, Any]
    if isinstance(endpoint, ServiceReference):
        client_config = {"service": {"name": endpoint.name, "namespace": endpoint.namespace,
                                     "path": webhook.path, "port": endpoint.port}}
    else:
        client_config = {"url": endpoint.url(webhook.path)}
    if ca_bundle is not None:
        client_config["caBundle"] = base64.b64encode(ca_bundle).decode()
    entry: dict[str, Any] = {
        "name": webhook.name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config,
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": copy.deepcopy(namespace_selector),
        # Every served version: the review then carries the object in the version the client wrote.
        "rules": [{"apiGroups": [webhook.group], "apiVersions": list(webhook.served_versions),
                   "operations": list(webhook.operations),
                   "resources": [webhook.plural], "scope": "Namespaced"}],
        "sideEffects": "None",
        "timeoutSeconds": TIMEOUT_SECONDS,
    }
    conditions = list(webhook.match_conditions)
    if own_users and webhook.operations == ("DELETE",):
        conditions.append((OWN_WRITES_CONDITION, own_writes_expression(own_users)))
    elif own_users:
        conditions.append((OWN_UPDATES_CONDITION, own_updates_expression(own_users)))
    if conditions:
        entry["matchConditions"] = [{"name": n, "expression": e} for n, e in conditions]
    return entry
