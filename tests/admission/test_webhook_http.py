"""The webhook server spoken to directly, as the apiserver speaks to it: its HTTP behaviour, its JSON patch,
and its own answers to the inputs that the CRD's CEL rules refuse before the apiserver would ever call it
(on a cluster whose CRDs are VM Operator's, without our CEL rules, the webhook is what refuses them)."""

from __future__ import annotations

import json

import pytest

from api import messages
from api.limits import SNAPSHOT_NAME_TOO_LONG
from api.names import (
    GROUP,
    SKIP_VALIDATION_ANNOTATION,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_KIND,
    SPEC_CURRENT_SNAPSHOT_NAME_PATH,
    SPEC_MEMORY_PATH,
    SPEC_QUEISCE_PATH,
    SPEC_QUIESCE_PATH,
    SPEC_QUIESCE_TIMEOUT_PATH,
    SPEC_VM_NAME_PATH,
    VERSION,
    VM_KIND,
    VM_NAME_LABEL,
    VM_NAME_LABEL_PATH,
)
from bridge.admission import SNAPSHOT_MUTATING, SNAPSHOT_VALIDATING, VM_VALIDATING
from bridge.admission.server import MAX_BODY_BYTES
from tests.admission.conftest import RegisteredWebhook
from tests.admission.kube_objects import snapshot_manifest, vm_manifest
from tests.admission.webhook_client import ReviewAnswer, admission_review, https_request, review

LABEL_POINTER = "/metadata/labels/" + VM_NAME_LABEL.replace("/", "~1")


def validate_snapshot(webhook: RegisteredWebhook, namespace: str, operation: str, new: dict,
                      old: dict | None = None, *, version: str = VERSION) -> ReviewAnswer:
    return review(webhook.base_url, SNAPSHOT_VALIDATING.path, webhook.ca_file,
                  admission_review(SNAPSHOT_KIND, operation, new, old, namespace, version=version))


def validate_vm(webhook: RegisteredWebhook, namespace: str, operation: str, new: dict,
                old: dict | None = None) -> ReviewAnswer:
    return review(webhook.base_url, VM_VALIDATING.path, webhook.ca_file,
                  admission_review(VM_KIND, operation, new, old, namespace))


def mutate_snapshot(webhook: RegisteredWebhook, operation: str, new: dict, old: dict | None = None) -> ReviewAnswer:
    return review(webhook.base_url, SNAPSHOT_MUTATING.path, webhook.ca_file,
                  admission_review(SNAPSHOT_KIND, operation, new, old))


# --- HTTP --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_answer_over_tls(admission_webhook: RegisteredWebhook, path: str):
    answer = https_request(admission_webhook.base_url, path, admission_webhook.ca_file)

    assert (answer.status, answer.body) == (200, b"ok")


@pytest.mark.parametrize(("body", "content_type", "status", "says"), [
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {', "application/json", 400,
     "the body is not JSON"),
    (b"[1, 2]", "application/json", 400, "must be a JSON object"),
    (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "application/json", 400, "expected apiVersion"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "application/json",
     400, "has no request"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "1", "operation": "CREATE"}}).encode(), "application/json", 400, "malformed"),
    (b"{}", "text/plain", 415, "Content-Type must be application/json"),
], ids=["truncated-json", "json-array", "not-a-review", "no-request", "request-without-kind", "text-plain"])
def test_a_malformed_review_is_answered_with_a_client_error(admission_webhook: RegisteredWebhook, body: bytes,
                                                            content_type: str, status: int, says: str):
    answer = https_request(admission_webhook.base_url, SNAPSHOT_VALIDATING.path, admission_webhook.ca_file,
                           body=body, content_type=content_type)

    assert answer.status == status
    assert says in answer.body.decode()


def test_a_body_over_the_limit_is_refused(admission_webhook: RegisteredWebhook):
    answer = https_request(admission_webhook.base_url, SNAPSHOT_VALIDATING.path, admission_webhook.ca_file,
                           body=b" " * (MAX_BODY_BYTES + 1))

    assert answer.status == 413


def test_a_review_of_the_wrong_kind_is_refused_as_a_bad_request(admission_webhook: RegisteredWebhook):
    document = admission_review(VM_KIND, "CREATE", vm_manifest("my-vm"))

    answer = review(admission_webhook.base_url, SNAPSHOT_VALIDATING.path, admission_webhook.ca_file, document)

    assert answer.uid == document["request"]["uid"]
    assert not answer.allowed and answer.code == 400
    assert "admits VirtualMachineSnapshot objects, not VirtualMachine" in answer.message


@pytest.mark.parametrize("version", ["v1alpha5", "v1alpha6"])
def test_reviews_of_both_served_versions_are_judged(admission_webhook: RegisteredWebhook, webhook_namespace: str,
                                                    version: str):
    snapshot = snapshot_manifest("snap", vm_name="my-vm")
    snapshot["apiVersion"] = f"{GROUP}/{version}"

    mutated = review(admission_webhook.base_url, SNAPSHOT_MUTATING.path, admission_webhook.ca_file,
                     admission_review(SNAPSHOT_KIND, "CREATE", snapshot, version=version))
    assert mutated.allowed and {"op": "add", "path": "/metadata/finalizers", "value": [SNAPSHOT_FINALIZER]} in \
        mutated.patch
    snapshot["metadata"]["labels"] = {VM_NAME_LABEL: "other-vm"}
    refused = validate_snapshot(admission_webhook, webhook_namespace, "CREATE", snapshot, version=version)
    assert not refused.allowed and refused.fields == {VM_NAME_LABEL_PATH}


@pytest.mark.parametrize(("group", "version"), [(GROUP, "v1alpha4"), (GROUP, "v1"), ("example.com", "v1alpha6")])
def test_a_review_of_a_version_not_served_is_refused_as_a_bad_request(admission_webhook: RegisteredWebhook,
                                                                      group: str, version: str):
    document = admission_review(SNAPSHOT_KIND, "CREATE", snapshot_manifest("snap"), group=group, version=version)

    answer = review(admission_webhook.base_url, SNAPSHOT_VALIDATING.path, admission_webhook.ca_file, document)

    assert not answer.allowed and answer.code == 400
    assert (f"admits VirtualMachineSnapshot objects of {GROUP} v1alpha5, v1alpha6, not of {group}/{version}"
            in answer.message)


# --- the JSON patch of the mutating webhook -----------------------------------------------------------------------


def test_create_gets_the_label_and_the_finalizer(admission_webhook: RegisteredWebhook):
    answer = mutate_snapshot(admission_webhook, "CREATE", snapshot_manifest("snap", vm_name="my-vm"))

    assert answer.allowed
    assert answer.patch == [
        {"op": "add", "path": "/metadata/labels", "value": {VM_NAME_LABEL: "my-vm"}},
        {"op": "add", "path": "/metadata/finalizers", "value": [SNAPSHOT_FINALIZER]}]


def test_create_keeps_existing_labels_and_finalizers_and_adds_to_them(admission_webhook: RegisteredWebhook):
    snapshot = snapshot_manifest("snap", vm_name="my-vm", labels={"team": "a"})
    snapshot["metadata"]["finalizers"] = ["example.com/keep"]

    answer = mutate_snapshot(admission_webhook, "CREATE", snapshot)

    assert answer.patch == [{"op": "add", "path": LABEL_POINTER, "value": "my-vm"},
                            {"op": "add", "path": "/metadata/finalizers/-", "value": SNAPSHOT_FINALIZER}]


def test_an_existing_label_is_never_overwritten(admission_webhook: RegisteredWebhook):
    snapshot = snapshot_manifest("snap", vm_name="my-vm", labels={VM_NAME_LABEL: "wrong"})
    snapshot["metadata"]["finalizers"] = [SNAPSHOT_FINALIZER]

    answer = mutate_snapshot(admission_webhook, "CREATE", snapshot)

    assert answer.allowed and answer.patch is None


def test_update_backfills_the_label_but_not_the_finalizer(admission_webhook: RegisteredWebhook):
    old = snapshot_manifest("snap", vm_name="my-vm", labels={VM_NAME_LABEL: "my-vm"})
    new = snapshot_manifest("snap", vm_name="my-vm", labels={})

    answer = mutate_snapshot(admission_webhook, "UPDATE", new, old)

    assert answer.patch == [{"op": "add", "path": LABEL_POINTER, "value": "my-vm"}]


def test_no_label_without_a_vm_name_and_nothing_for_an_object_being_deleted(admission_webhook: RegisteredWebhook):
    without_vm = mutate_snapshot(admission_webhook, "CREATE", snapshot_manifest("snap", vm_name=None))
    assert without_vm.patch == [{"op": "add", "path": "/metadata/finalizers", "value": [SNAPSHOT_FINALIZER]}]

    deleting = snapshot_manifest("snap", vm_name="my-vm")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert mutate_snapshot(admission_webhook, "UPDATE", deleting, deleting).patch is None


@pytest.mark.parametrize("vm_name", ["bad_vm!", "vm name with spaces", "v" * 70])
def test_a_vm_name_that_cannot_be_a_label_value_is_not_copied_into_the_label(admission_webhook: RegisteredWebhook,
                                                                             vm_name: str):
    for operation, old in (("CREATE", None), ("UPDATE", snapshot_manifest("snap", vm_name=vm_name))):
        answer = mutate_snapshot(admission_webhook, operation, snapshot_manifest("snap", vm_name=vm_name), old)
        assert answer.allowed
        assert not any(VM_NAME_LABEL in json.dumps(op) for op in answer.patch or []), answer.patch


# --- the validating webhook's own answers to what CEL refuses first -----------------------------------------------


@pytest.mark.parametrize(("vm_name", "expected"), [
    ("bad_vm!", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("vm name with spaces", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("v" * 70, [messages.VM_NAME_TOO_LONG_FOR_LABEL]),
    ("V" * 70, [messages.VM_NAME_NOT_A_VM_NAME, messages.VM_NAME_TOO_LONG_FOR_LABEL]),
    ("v" * 63, []),
], ids=["bad_vm!", "spaces", "70-characters", "both", "63-characters"])
def test_vm_name_must_be_a_vm_name_short_enough_for_the_label(admission_webhook: RegisteredWebhook,
                                                              webhook_namespace: str, vm_name: str,
                                                              expected: list[str]):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE",
                               snapshot_manifest("s", vm_name=vm_name))

    assert answer.allowed == (not expected)
    if expected:
        assert answer.code == 422 and answer.fields == {SPEC_VM_NAME_PATH}
        for message in expected:
            assert f"{SPEC_VM_NAME_PATH}: Invalid value: {message}" in answer.message


def test_missing_vm_name(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE", snapshot_manifest("s", vm_name=None))

    assert not answer.allowed and answer.code == 422 and answer.fields == {SPEC_VM_NAME_PATH}
    assert f"{SPEC_VM_NAME_PATH}: Required value: {messages.VM_NAME_REQUIRED}" in answer.message


def test_name_too_long_for_vsphere(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE", snapshot_manifest("n" * 81))

    assert not answer.allowed and answer.code == 422 and answer.fields == {"metadata.name"}
    assert f"metadata.name: Too long: {SNAPSHOT_NAME_TOO_LONG} (81 given)" in answer.message


@pytest.mark.parametrize(("timeout", "says"), [
    ("ten minutes", "'ten minutes' is not a duration: accepted forms are"),
    ("10", "a number needs a unit: write 10m for minutes"),
    ("P10M", "in ISO-8601 an M before the T means months: write PT10M for 10 minutes"),
    ("-5m", "'-5m' is negative"),
])
def test_malformed_or_negative_timeout(admission_webhook: RegisteredWebhook, webhook_namespace: str, timeout: str,
                                       says: str):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE",
                               snapshot_manifest("s", quiesce={"timeout": timeout}))

    assert not answer.allowed and answer.code == 422 and answer.fields == {SPEC_QUIESCE_TIMEOUT_PATH}
    assert f"{SPEC_QUIESCE_TIMEOUT_PATH}: Invalid value: {SPEC_QUIESCE_TIMEOUT_PATH} '{timeout}'" in answer.message
    assert says in answer.message


def test_both_spellings_with_different_timeouts(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE", snapshot_manifest(
        "s", quiesce={"timeout": "10m"}, queisce={"timeout": "20m"}))

    assert not answer.allowed and answer.fields == {SPEC_QUEISCE_PATH}
    assert f'{SPEC_QUEISCE_PATH}: Invalid value: {{"timeout":"20m"}}: {messages.QUIESCE_ALIAS_CONFLICT}' \
        in answer.message


def test_every_problem_is_listed_at_once(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_snapshot(admission_webhook, webhook_namespace, "CREATE", snapshot_manifest(
        "n" * 81, vm_name="my-vm", labels={VM_NAME_LABEL: "other"}, quiesce={"timeout": "1m"}))

    assert answer.fields == {"metadata.name", SPEC_QUIESCE_TIMEOUT_PATH, VM_NAME_LABEL_PATH}
    assert f'VirtualMachineSnapshot.vmoperator.vmware.com "{"n" * 81}" is invalid: [metadata.name: Too long' \
        in answer.message


@pytest.mark.parametrize(("change", "field", "shown"), [
    ({"memory": True}, SPEC_MEMORY_PATH, "true"),
    ({"quiesce": {"timeout": "20m"}}, SPEC_QUIESCE_PATH, '{"timeout":"20m"}'),
    ({"quiesce": None}, SPEC_QUIESCE_PATH, "null"),
    ({"vmName": "other-vm"}, SPEC_VM_NAME_PATH, '"other-vm"'),
], ids=["memory", "quiesce", "quiesce-removed", "vmName"])
def test_immutable_fields(admission_webhook: RegisteredWebhook, webhook_namespace: str, change: dict, field: str,
                          shown: str):
    old = snapshot_manifest("s", vm_name="my-vm", labels={VM_NAME_LABEL: "my-vm"}, quiesce={"timeout": "10m"})
    new = json.loads(json.dumps(old))
    new["spec"].update(change)
    new["metadata"]["labels"] = {VM_NAME_LABEL: new["spec"]["vmName"]}

    answer = validate_snapshot(admission_webhook, webhook_namespace, "UPDATE", new, old)

    assert not answer.allowed and answer.code == 422 and answer.fields == {field}
    assert f"{field}: Invalid value: {shown}: {messages.FIELD_IMMUTABLE}" in answer.message


def test_description_may_change_and_skip_validation_and_deleting_objects_pass(admission_webhook: RegisteredWebhook,
                                                                              webhook_namespace: str):
    old = snapshot_manifest("s", vm_name="my-vm", description="a")
    described = snapshot_manifest("s", vm_name="my-vm", description="b")
    assert validate_snapshot(admission_webhook, webhook_namespace, "UPDATE", described, old).allowed

    skipped = snapshot_manifest("s", vm_name="my-vm", labels={VM_NAME_LABEL: "other"}, memory=True)
    skipped["metadata"]["annotations"] = {SKIP_VALIDATION_ANNOTATION: ""}
    assert validate_snapshot(admission_webhook, webhook_namespace, "CREATE", skipped).allowed

    deleting = snapshot_manifest("s", vm_name="other-vm", memory=True)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert validate_snapshot(admission_webhook, webhook_namespace, "UPDATE", deleting, old).allowed


def test_vm_created_with_a_current_snapshot(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_vm(admission_webhook, webhook_namespace, "CREATE",
                         vm_manifest("my-vm", currentSnapshotName="snap-1"))

    assert not answer.allowed and answer.code == 403 and answer.fields == {SPEC_CURRENT_SNAPSHOT_NAME_PATH}
    assert (f"{SPEC_CURRENT_SNAPSHOT_NAME_PATH}: Forbidden: {messages.CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN}"
            in answer.message)


def test_vm_current_snapshot_of_whitespace(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_vm(admission_webhook, webhook_namespace, "UPDATE",
                         vm_manifest("my-vm", currentSnapshotName="  "), vm_manifest("my-vm"))

    assert not answer.allowed and answer.code == 422
    assert (f'{SPEC_CURRENT_SNAPSHOT_NAME_PATH}: Invalid value: "  ": {messages.CURRENT_SNAPSHOT_NAME_EMPTY}'
            in answer.message)


def test_vm_revert_target_changed_while_pending(admission_webhook: RegisteredWebhook, webhook_namespace: str):
    answer = validate_vm(admission_webhook, webhook_namespace, "UPDATE",
                         vm_manifest("my-vm", currentSnapshotName="snap-2"),
                         vm_manifest("my-vm", currentSnapshotName="snap-1"))

    assert not answer.allowed and answer.code == 403
    assert f"{SPEC_CURRENT_SNAPSHOT_NAME_PATH}: Forbidden: {messages.REVERT_ALREADY_IN_PROGRESS}" in answer.message


def test_a_vm_field_the_rules_do_not_read_never_blocks_an_update(admission_webhook: RegisteredWebhook,
                                                                   webhook_namespace: str):
    # VM Operator's VMs carry fields api.VirtualMachine types loosely; a value it cannot read is not ours to judge.
    odd = vm_manifest("my-vm", powerState="Blinking", volumes=[{"no-name": True}], currentSnapshotName="snap-1")

    answer = validate_vm(admission_webhook, webhook_namespace, "UPDATE", odd, vm_manifest("my-vm"))

    assert answer.allowed, answer.message
