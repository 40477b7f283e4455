"""The webhook configurations: deploy/base/webhook.yaml is what the builder produces for the in-cluster
Service, and both forms carry the settings the webhooks rely on. (The URL form is exercised for real by every
test that goes through the apiserver: conftest.py registers it.)"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from api.names import GROUP
from bridge.admission import (
    GROUP_SNAPSHOT_VALIDATING,
    IN_CLUSTER_SERVICE,
    IN_CLUSTER_USERS,
    MEMBER_DELETE_VALIDATING,
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
                            SCHEDULE_VALIDATING.name, GROUP_SNAPSHOT_VALIDATING.name, MEMBER_DELETE_VALIDATING.name}
    for webhook_kind, resource, group, versions, operations in (
            (SNAPSHOT_MUTATING, "virtualmachinesnapshots", GROUP, ["v1alpha5", "v1alpha6"], ["CREATE", "UPDATE"]),
            (SNAPSHOT_VALIDATING, "virtualmachinesnapshots", GROUP, ["v1alpha5", "v1alpha6"], ["CREATE", "UPDATE"]),
            (VM_VALIDATING, "virtualmachines", GROUP, ["v1alpha5", "v1alpha6"], ["CREATE", "UPDATE"]),
            (SCHEDULE_VALIDATING, "virtualmachinesnapshotschedules", "vmsnap.io", ["v1alpha1"], ["CREATE", "UPDATE"]),
            (GROUP_SNAPSHOT_VALIDATING, "virtualmachinegroupsnapshots", "vmsnap.io", ["v1alpha1"],
             ["CREATE", "UPDATE"]),
            # a group's member deleted on its own (only objects carrying the group label: its matchCondition)
            (MEMBER_DELETE_VALIDATING, "virtualmachinesnapshots", GROUP, ["v1alpha5", "v1alpha6"], ["DELETE"])):
        webhook = by_name[webhook_kind.name]
        assert webhook["clientConfig"] == {"url": f"https://127.0.0.1:9443{webhook_kind.path}",
                                           "caBundle": base64.b64encode(ca).decode()}
        assert (webhook["failurePolicy"], webhook["sideEffects"], webhook["timeoutSeconds"],
                webhook["matchPolicy"], webhook["admissionReviewVersions"]) == ("Fail", "None", 10, "Equivalent",
                                                                                 ["v1"])
        # both versions the CRDs serve (matchPolicy Equivalent would convert anyway, but then the webhook
        # could not tell which version the user wrote)
        assert webhook["rules"] == [{"apiGroups": [group], "apiVersions": versions,
                                     "operations": operations, "resources": [resource],
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
    assert GROUP_SNAPSHOT_VALIDATING.path == "/validate-vmsnap-io-v1alpha1-virtualmachinegroupsnapshot"
    assert MEMBER_DELETE_VALIDATING.path == ("/validate-vmoperator-vmware-com-v1alpha6-virtualmachinesnapshot"
                                             "-member-delete")
    assert MEMBER_DELETE_VALIDATING.name == "vmsnap.member-delete.virtualmachinesnapshot.v1alpha6.vmoperator.vmware.com"


def test_the_products_own_updates_skip_every_webhook_in_the_deploy_form():
    """With no bridge answering, the worker's UPDATEs (annotations, a revert's VM spec, a delete's finalizer
    removal) must still go through; its CREATEs (schedule runs) and everyone else's writes are still reviewed."""
    accounts = {f"system:serviceaccount:{d['metadata']['namespace']}:{d['metadata']['name']}"
                for f in sorted((DEPLOY_FILE.parent / "rbac").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
                if d and d["kind"] == "ServiceAccount"}
    assert set(IN_CLUSTER_USERS) == accounts == {"system:serviceaccount:vmsnap-system:vmsnap-worker",
                                                 "system:serviceaccount:vmsnap-system:vmsnap-bridge"}
    for configuration in in_cluster_webhook_configurations():
        for webhook in configuration["webhooks"]:
            if webhook["name"] == MEMBER_DELETE_VALIDATING.name:
                # deletes only: the product's own (a group's saga undoing its members) skip it altogether
                assert webhook["matchConditions"][-1] == {"name": "not-by-vmsnap", "expression":
                                                          "!(request.userInfo.username in "
                                                          "['system:serviceaccount:vmsnap-system:vmsnap-worker', "
                                                          "'system:serviceaccount:vmsnap-system:vmsnap-bridge'])"}
                continue
            own = [c for c in webhook["matchConditions"] if c["name"] == "not-an-update-by-vmsnap"]
            assert own == [{"name": "not-an-update-by-vmsnap", "expression":
                            "!(request.operation == 'UPDATE' && request.userInfo.username in "
                            "['system:serviceaccount:vmsnap-system:vmsnap-worker', "
                            "'system:serviceaccount:vmsnap-system:vmsnap-bridge'])"}]
    # the revert-only condition of the VM webhook stays: all conditions must hold for the webhook to be called
    _, validating = in_cluster_webhook_configurations()
    vm = next(w for w in validating["webhooks"] if w["name"] == VM_VALIDATING.name)
    assert [c["name"] for c in vm["matchConditions"]] == ["revert-requested", "not-an-update-by-vmsnap"]
    # the URL form the tests register on loopback has it only when asked
    mutating, validating = webhook_configurations(UrlReference("https://127.0.0.1:9443/"))
    assert not [c for w in mutating["webhooks"] + validating["webhooks"] for c in w.get("matchConditions", [])
                if c["name"] == "not-an-update-by-vmsnap"]


def test_snapshot_updates_reach_the_webhooks_only_when_they_change_what_the_webhooks_judge():
    """Anyone's metadata-only UPDATE (the CSI driver's handshake annotation, finalizers, VM Operator's writes) never
    waits on a bridge; the spec, the labels and the two annotations that govern a create are always reviewed.
    (The apiserver evaluates the expression: tests/admission and the no-bridge test in tests/deploy run it.)"""
    mutating, validating = in_cluster_webhook_configurations()
    for webhook in mutating["webhooks"] + validating["webhooks"]:
        names = [c["name"] for c in webhook.get("matchConditions", [])]
        if webhook["name"] in (SNAPSHOT_MUTATING.name, SNAPSHOT_VALIDATING.name):
            assert names == ["judged-fields-changed", "not-an-update-by-vmsnap"]
            expression = webhook["matchConditions"][0]["expression"]
            assert expression.startswith("request.operation != 'UPDATE' || ")
            for judged in ("object.spec", "object.metadata.labels", "'vmsnap.io/failure-deadline'",
                           "'vmsnap.io/quiesce-fallback'"):
                assert judged in expression
        else:
            assert "judged-fields-changed" not in names
