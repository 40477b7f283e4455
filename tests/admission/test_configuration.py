"""The webhook configurations: deploy/base/webhook.yaml is what the builder produces for the in-cluster
Service, and both forms carry the settings the webhooks rely on. (The URL form is exercised for real by every
test that goes through the apiserver: conftest.py registers it.)"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from api.names import GROUP
from bridge.admission import (
    IN_CLUSTER_SERVICE,
    SCHEDULE_VALIDATING,
    SNAPSHOT_MUTATING,
    SNAPSHOT_VALIDATING,
    VM_VALIDATING,
    UrlReference,
    in_cluster_webhook_configurations,
    render_deploy_manifest,
    webhook_configurations,
)

DEPLOY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "webhook.yaml"


def test_deploy_manifest_is_what_the_builder_produces():
    assert list(yaml.safe_load_all(DEPLOY_FILE.read_text())) == list(in_cluster_webhook_configurations())
    assert DEPLOY_FILE.read_text() == render_deploy_manifest(), "regenerate: python -m bridge.admission"


def test_in_cluster_form_points_at_the_service_and_lets_cert_manager_inject_the_ca():
    mutating, validating = in_cluster_webhook_configurations()

    for configuration in (mutating, validating):
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "vmsnap-system/vmsnap-webhook"}
        for webhook in configuration["webhooks"]:
            assert webhook["clientConfig"]["service"]["name"] == IN_CLUSTER_SERVICE.name == "vmsnap-webhook"
            assert webhook["clientConfig"]["service"]["namespace"] == "vmsnap-system"
            assert webhook["clientConfig"]["service"]["port"] == 443
            assert "caBundle" not in webhook["clientConfig"]


def test_every_webhook_fails_closed_within_ten_seconds_and_spares_kube_system():
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    mutating, validating = webhook_configurations(UrlReference("https://127.0.0.1:9443/"), ca)

    assert mutating["kind"] == "MutatingWebhookConfiguration"
    assert validating["kind"] == "ValidatingWebhookConfiguration"
    by_name = {w["name"]: w for c in (mutating, validating) for w in c["webhooks"]}
    assert set(by_name) == {SNAPSHOT_MUTATING.name, SNAPSHOT_VALIDATING.name, VM_VALIDATING.name,
                            SCHEDULE_VALIDATING.name}
    for webhook_kind, resource, group, versions in (
            (SNAPSHOT_MUTATING, "virtualmachinesnapshots", GROUP, ["v1alpha5", "v1alpha6"]),
            (SNAPSHOT_VALIDATING, "virtualmachinesnapshots", GROUP, ["v1alpha5", "v1alpha6"]),
            (VM_VALIDATING, "virtualmachines", GROUP, ["v1alpha5", "v1alpha6"]),
            (SCHEDULE_VALIDATING, "virtualmachinesnapshotschedules", "vmsnap.io", ["v1alpha1"])):
        webhook = by_name[webhook_kind.name]
        assert webhook["clientConfig"] == {"url": f"https://127.0.0.1:9443{webhook_kind.path}",
                                           "caBundle": base64.b64encode(ca).decode()}
        assert (webhook["failurePolicy"], webhook["sideEffects"], webhook["timeoutSeconds"],
                webhook["matchPolicy"], webhook["admissionReviewVersions"]) == ("Fail", "None", 10, "Equivalent",
                                                                                 ["v1"])
        # both versions the CRDs serve (matchPolicy Equivalent would convert anyway, but then the webhook
        # could not tell which version the user wrote)
        assert webhook["rules"] == [{"apiGroups": [group], "apiVersions": versions,
                                     "operations": ["CREATE", "UPDATE"], "resources": [resource],
                                     "scope": "Namespaced"}]
        assert webhook["namespaceSelector"] == {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}


def test_paths_follow_the_controller_runtime_convention():
    # named for the storage version (VM Operator's hub), as VM Operator names its own
    assert SNAPSHOT_MUTATING.path == "/mutate-vmoperator-vmware-com-v1alpha6-virtualmachinesnapshot"
    assert SNAPSHOT_VALIDATING.path == "/validate-vmoperator-vmware-com-v1alpha6-virtualmachinesnapshot"
    assert VM_VALIDATING.path == "/validate-vmoperator-vmware-com-v1alpha6-virtualmachine"
    assert SNAPSHOT_VALIDATING.name == "vmsnap.validating.virtualmachinesnapshot.v1alpha6.vmoperator.vmware.com"
    assert SCHEDULE_VALIDATING.path == "/validate-vmsnap-io-v1alpha1-virtualmachinesnapshotschedule"
    assert SCHEDULE_VALIDATING.name == "vmsnap.validating.virtualmachinesnapshotschedule.v1alpha1.vmsnap.io"
