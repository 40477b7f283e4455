"""VirtualMachineSnapshot admission against the REAL apiserver with the bridge's webhooks registered: every
bad input is written through the kubernetes client (or kubectl) and must come back refused with a message that
names the field and the reason. Where the CRD's CEL rules refuse first, the test says so (`by_schema`); the
webhook's own answer to those inputs is tested in test_webhook_http.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import messages
from api.names import (
    CAPI_CLUSTER_ROLE_LABELS,
    FAILURE_DEADLINE_ANNOTATION,
    QUIESCE_FALLBACK_ANNOTATION,
    SKIP_VALIDATION_ANNOTATION,
    SNAPSHOT_FINALIZER,
    SPEC_MEMORY_PATH,
    SPEC_QUEISCE_PATH,
    SPEC_QUEISCE_TIMEOUT_PATH,
    SPEC_QUIESCE_PATH,
    SPEC_QUIESCE_TIMEOUT_PATH,
    SPEC_VM_NAME_PATH,
    VM_NAME_LABEL,
    VM_NAME_LABEL_PATH,
)
from api.operation_policy import (
    FAILURE_DEADLINE_PATH,
    QUIESCE_FALLBACK_PATH,
    failure_deadline_problem,
    quiesce_fallback_problem,
)
from tests.admission.kube_objects import Objects, kubectl, kubectl_apply, refused, snapshot_manifest, vm_manifest

# --- the mutating webhook ---------------------------------------------------------------------------------------


def test_created_snapshot_carries_the_finalizer_and_the_vm_name_label(objects: Objects):
    created = objects.create_snapshot(snapshot_manifest("snap", vm_name="my-vm", labels={"team": "a"}))

    assert created["metadata"]["finalizers"] == [SNAPSHOT_FINALIZER]
    assert created["metadata"]["labels"] == {"team": "a", VM_NAME_LABEL: "my-vm"}


def test_an_existing_wrong_label_is_not_overwritten_but_refused(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(
        snapshot_manifest("snap", vm_name="my-vm", labels={VM_NAME_LABEL: "other-vm"})))

    assert refusal.by_snapshot_webhook and refusal.code == 422
    assert refusal.fields == {VM_NAME_LABEL_PATH}
    assert f'{VM_NAME_LABEL_PATH}: Invalid value: "other-vm": must match spec.vmName "my-vm"' in refusal.message


def test_a_removed_label_is_put_back_and_a_changed_one_refused(objects: Objects):
    objects.create_snapshot(snapshot_manifest("snap", vm_name="my-vm"))

    relabelled = objects.patch_snapshot("snap", {"metadata": {"labels": {VM_NAME_LABEL: None}}})
    assert relabelled["metadata"]["labels"][VM_NAME_LABEL] == "my-vm"

    refusal = refused(lambda: objects.patch_snapshot("snap", {"metadata": {"labels": {VM_NAME_LABEL: "x"}}}))
    assert refusal.by_snapshot_webhook and refusal.fields == {VM_NAME_LABEL_PATH}
    assert 'must match spec.vmName "my-vm"' in refusal.message


# --- what the snapshot names: the VM ------------------------------------------------------------------------------


def test_missing_vm_name_is_refused(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", vm_name=None, memory=True)))

    assert refusal.by_schema and refusal.code == 422
    assert refusal.fields == {SPEC_VM_NAME_PATH}
    assert f"{SPEC_VM_NAME_PATH}: Required value: {messages.VM_NAME_MUST_BE_PROVIDED}" in refusal.message


@pytest.mark.parametrize(("vm_name", "message"), [
    ("bad_vm!", messages.VM_NAME_NOT_A_VM_NAME),
    ("vm name with spaces", messages.VM_NAME_NOT_A_VM_NAME),
    ("v" * 70, messages.VM_NAME_TOO_LONG_FOR_LABEL),
], ids=["bad_vm!", "spaces", "70-characters"])
def test_a_vm_name_that_cannot_be_a_vm_or_a_label_value_is_refused_on_spec_vm_name(objects: Objects, vm_name: str,
                                                                                   message: str):
    # The mutating webhook does not copy such a name into the vm-name label, so the apiserver reports the field
    # the user wrote, and only that one (never metadata.labels, which the user never wrote).
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", vm_name=vm_name)))

    assert refusal.by_schema and refusal.code == 422
    assert refusal.fields == {SPEC_VM_NAME_PATH}
    assert f"{SPEC_VM_NAME_PATH}: Invalid value: " in refusal.message and message in refusal.message
    assert "metadata.labels" not in refusal.message


def test_kubectl_shows_the_vm_name_refusal_on_spec_vm_name(objects: Objects, kubeconfig: Path):
    applied = kubectl_apply(kubeconfig, objects.namespace, snapshot_manifest("snap", vm_name="bad_vm!"))

    assert applied.returncode != 0
    assert f"{SPEC_VM_NAME_PATH}: Invalid value: " in applied.stderr
    assert messages.VM_NAME_NOT_A_VM_NAME in applied.stderr
    assert "metadata.labels" not in applied.stderr and VM_NAME_LABEL + ":" not in applied.stderr


def test_a_63_character_vm_name_is_accepted_and_labelled(objects: Objects):
    vm_name = "v" * 63

    created = objects.create_snapshot(snapshot_manifest("snap", vm_name=vm_name))

    assert created["spec"]["vmName"] == vm_name
    assert created["metadata"]["labels"] == {VM_NAME_LABEL: vm_name}


def test_snapshot_of_a_vm_that_does_not_exist_yet_is_allowed(objects: Objects):
    created = objects.create_snapshot(snapshot_manifest("snap", vm_name="not-there"))

    assert created["spec"]["vmName"] == "not-there"


@pytest.mark.parametrize("capi_label", CAPI_CLUSTER_ROLE_LABELS)
def test_snapshot_of_a_vks_node_is_forbidden(objects: Objects, capi_label: str):
    objects.create_vm(vm_manifest("node-1", labels={capi_label: "worker"}))

    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", vm_name="node-1")))

    assert refusal.by_snapshot_webhook and refusal.code == 403 and refusal.reason == "Forbidden"
    assert f"{SPEC_VM_NAME_PATH}: Forbidden: {messages.SNAPSHOT_OF_VKS_NODE_FORBIDDEN}" in refusal.message


@pytest.mark.parametrize("sharing_mode", ["Physical", "Virtual"])
def test_snapshot_of_a_vm_sharing_a_scsi_bus_is_not_supported(objects: Objects, sharing_mode: str):
    objects.create_vm(vm_manifest("clustered", hardware={"scsiControllers": [
        {"busNumber": 0, "sharingMode": "None"}, {"busNumber": 1, "sharingMode": sharing_mode}]}))

    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", vm_name="clustered")))

    assert refusal.by_snapshot_webhook and refusal.code == 422
    assert refusal.fields == {SPEC_VM_NAME_PATH}
    expected = messages.unsupported_scsi_sharing_mode(1, sharing_mode)
    assert f'{SPEC_VM_NAME_PATH}: Unsupported value: "{expected}": supported values: "None"' in refusal.message


def test_snapshot_of_a_vm_whose_scsi_buses_are_not_shared_is_allowed(objects: Objects):
    objects.create_vm(vm_manifest("plain", hardware={"scsiControllers": [{"busNumber": 0, "sharingMode": "None"},
                                                                         {"busNumber": 1}]}))

    assert objects.create_snapshot(snapshot_manifest("snap", vm_name="plain"))["metadata"]["name"] == "snap"


# --- immutability -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("patch", "field", "message"), [
    ({"spec": {"memory": True}}, SPEC_MEMORY_PATH, messages.MEMORY_IMMUTABLE),
    ({"spec": {"quiesce": {"timeout": "20m"}}}, SPEC_QUIESCE_PATH, messages.QUIESCE_IMMUTABLE),
    ({"spec": {"quiesce": None}}, SPEC_QUIESCE_PATH, messages.QUIESCE_IMMUTABLE),
    ({"spec": {"vmName": "other-vm"}}, SPEC_VM_NAME_PATH, messages.VM_NAME_IMMUTABLE),
], ids=["memory", "quiesce-timeout", "quiesce-removed", "vmName"])
def test_memory_quiesce_and_vm_name_cannot_change(objects: Objects, patch: dict, field: str, message: str):
    objects.create_snapshot(snapshot_manifest("snap", quiesce={"timeout": "10m"}))

    refusal = refused(lambda: objects.patch_snapshot("snap", patch))

    assert refusal.by_schema and refusal.code == 422
    assert field in refusal.fields
    assert f"{field}: Invalid value: " in refusal.message and message in refusal.message


def test_description_may_change(objects: Objects):
    objects.create_snapshot(snapshot_manifest("snap", description="before", memory=True))

    changed = objects.patch_snapshot("snap", {"spec": {"description": "after"}})

    assert changed["spec"]["description"] == "after"


def test_moving_the_same_quiesce_from_one_spelling_to_the_other_is_no_change(objects: Objects):
    objects.create_snapshot(snapshot_manifest("snap", queisce={"timeout": "10min"}))

    def respell(snapshot: dict) -> None:
        snapshot["spec"]["quiesce"] = snapshot["spec"].pop("queisce")

    assert objects.replace_snapshot("snap", respell)["spec"]["quiesce"] == {"timeout": "10min"}


# --- quiesce timeout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spelling", "timeout", "refused_by_schema", "reason"), [
    ("quiesce", "ten minutes", True, "must be a duration"),
    ("quiesce", "10", True, "must be a duration"),
    ("quiesce", "-5m", True, "must not be negative"),
    ("quiesce", "0", False, "is zero: vSphere needs a quiesce timeout of 5 to 240 minutes"),
    ("quiesce", "4m", False, "4 minutes is below vSphere's minimum quiesce timeout of 5 minutes"),
    ("quiesce", "241m", False, "241 minutes is above vSphere's maximum quiesce timeout of 240 minutes"),
    ("quiesce", "240m30s", False, "(rounded up to whole minutes): 241 minutes is above vSphere's maximum"),
    ("queisce", "4m", False, "4 minutes is below vSphere's minimum quiesce timeout of 5 minutes"),
    ("queisce", "5 hours", False, "300 minutes is above vSphere's maximum quiesce timeout of 240 minutes"),
], ids=["words", "bare-number", "negative", "zero", "4m", "241m", "240m30s", "queisce-4m", "queisce-5h"])
def test_quiesce_timeout_outside_vsphere_bounds_is_refused(objects: Objects, spelling: str, timeout: str,
                                                           refused_by_schema: bool, reason: str):
    path = SPEC_QUIESCE_TIMEOUT_PATH if spelling == "quiesce" else SPEC_QUEISCE_TIMEOUT_PATH

    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", **{spelling: {"timeout": timeout}})))

    assert refusal.code == 422
    assert refusal.by_schema is refused_by_schema and refusal.by_snapshot_webhook is not refused_by_schema
    assert refusal.fields == {path}
    assert f"{path}: Invalid value: " in refusal.message and reason in refusal.message
    assert "5 to 240 minutes" in refusal.message


# 4m1s is rounded up to 5 minutes, what vSphere receives: within bounds.
@pytest.mark.parametrize("quiesce", [{"timeout": "5m"}, {"timeout": "240m"}, {"timeout": "10min"},
                                     {"timeout": "PT10M"}, {"timeout": "4h"}, {"timeout": "4m1s"}, {}],
                         ids=["5m", "240m", "10min", "PT10M", "4h", "4m1s", "default"])
def test_quiesce_timeout_within_vsphere_bounds_is_accepted(objects: Objects, quiesce: dict):
    created = objects.create_snapshot(snapshot_manifest("snap", quiesce=quiesce))

    assert created["spec"]["quiesce"] == quiesce


def test_quiesce_and_queisce_with_different_timeouts_are_refused(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(
        snapshot_manifest("snap", quiesce={"timeout": "10m"}, queisce={"timeout": "20m"})))

    assert refusal.by_schema and refusal.code == 422
    assert SPEC_QUEISCE_PATH in refusal.fields
    assert messages.QUIESCE_ALIAS_CONFLICT in refusal.message


def test_quiesce_and_queisce_with_the_same_timeout_are_accepted(objects: Objects):
    created = objects.create_snapshot(snapshot_manifest("snap", quiesce={"timeout": "10m"},
                                                        queisce={"timeout": "10m"}))

    assert created["spec"]["queisce"] == created["spec"]["quiesce"]


# --- names and numbers --------------------------------------------------------------------------------------------


def test_a_name_longer_than_vsphere_allows_is_refused(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("s" * 81)))

    assert refusal.by_schema and refusal.code == 422
    assert "metadata.name must be at most 80 characters" in refusal.message
    assert objects.create_snapshot(snapshot_manifest("s" * 80))["metadata"]["name"] == "s" * 80


def test_32nd_snapshot_of_a_vm_is_warned_about_and_33rd_refused(objects: Objects, kubeconfig: Path):
    for number in range(1, 32):
        objects.create_snapshot(snapshot_manifest(f"snap-{number}", vm_name="busy-vm"))
    objects.create_snapshot(snapshot_manifest("of-another-vm", vm_name="quiet-vm"))

    applied = kubectl_apply(kubeconfig, objects.namespace, snapshot_manifest("snap-32", vm_name="busy-vm"))
    assert applied.returncode == 0, applied.stderr
    assert "Warning: spec.vmName: VM 'busy-vm' will have 32 snapshots; prefer fewer than 32" in applied.stderr

    thirty_third = kubectl_apply(kubeconfig, objects.namespace, snapshot_manifest("snap-33", vm_name="busy-vm"))
    assert thirty_third.returncode != 0
    assert "Error from server (Forbidden)" in thirty_third.stderr
    assert "spec.vmName: Forbidden: VM 'busy-vm' already has 32 snapshots" in thirty_third.stderr

    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap-33", vm_name="busy-vm")))
    assert refusal.by_snapshot_webhook and refusal.code == 403 and refusal.fields == {SPEC_VM_NAME_PATH}

    # A snapshot being deleted (held by its finalizer until the delete workflow ends) no longer counts.
    deleting = kubectl(kubeconfig, objects.namespace, "delete", "virtualmachinesnapshot", "snap-1", "--wait=false")
    assert deleting.returncode == 0, deleting.stderr
    assert objects.create_snapshot(snapshot_manifest("snap-33", vm_name="busy-vm"))["metadata"]["name"] == "snap-33"


# --- ours: the failure deadline and the quiesce fallback (annotations that govern the create) ----------------------

DEADLINE = FAILURE_DEADLINE_ANNOTATION
FALLBACK = QUIESCE_FALLBACK_ANNOTATION


@pytest.mark.parametrize(("given", "spec"), [
    ({DEADLINE: "30m"}, {}),
    ({DEADLINE: "1h30m", FALLBACK: "crash-consistent"}, {"quiesce": {"timeout": "10m"}}),
    ({DEADLINE: "PT2H", FALLBACK: "fail"}, {"queisce": {"timeout": "2h"}}),
    ({DEADLINE: "10 minutes"}, {"quiesce": {}}),   # as long as the default quiesce timeout: enough
    ({DEADLINE: "10m"}, {"quiesce": {"timeout": "10min"}}),
    ({DEADLINE: "1m"}, {"memory": True}),           # no quiesce: any positive duration
    ({FALLBACK: "crash-consistent"}, {}),           # a fallback without quiesce is harmless
], ids=["30m", "1h30m-quiesce-10m", "PT2H-queisce-2h", "default-quiesce", "equal-to-quiesce", "no-quiesce",
        "fallback-alone"])
def test_a_failure_deadline_and_quiesce_fallback_within_the_rules_are_accepted(objects: Objects, given: dict,
                                                                              spec: dict):
    created = objects.create_snapshot(snapshot_manifest("snap", annotations=given, **spec))

    assert {k: created["metadata"]["annotations"][k] for k in given} == given


@pytest.mark.parametrize(("deadline", "reason"), [
    ("soon", "is not a duration"),
    ("30", "a number needs a unit: write 30m for minutes"),
    ("0", "is zero: a failure deadline is how long the operation may take"),
    ("-30m", "is negative: a failure deadline is how long the operation may take"),
    ("", "is empty: write a duration such as 10m"),
], ids=["words", "bare-number", "zero", "negative", "empty"])
def test_a_failure_deadline_that_is_not_a_positive_duration_is_refused_on_the_annotation(objects: Objects,
                                                                                          deadline: str, reason: str):
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest("snap", annotations={DEADLINE: deadline})))

    assert refusal.by_snapshot_webhook and refusal.code == 422
    assert refusal.fields == {FAILURE_DEADLINE_PATH}
    problem = failure_deadline_problem(deadline, None)
    assert problem is not None and reason in problem
    assert f"{FAILURE_DEADLINE_PATH}: Invalid value: {problem}" in refusal.message


@pytest.mark.parametrize(("spelling", "quiesce", "deadline", "minutes"), [
    ("quiesce", {"timeout": "30m"}, "20m", 30),
    ("queisce", {"timeout": "1h"}, "45m", 60),
    ("quiesce", {"timeout": "4m1s"}, "4m30s", 5),   # the timeout vSphere gets is rounded up to whole minutes
    ("quiesce", {}, "5m", 10),                       # the default timeout
], ids=["quiesce-30m", "queisce-1h", "rounded-up", "default"])
def test_a_failure_deadline_shorter_than_the_quiesce_timeout_is_refused(objects: Objects, spelling: str,
                                                                        quiesce: dict, deadline: str, minutes: int):
    manifest = snapshot_manifest("snap", annotations={DEADLINE: deadline}, **{spelling: quiesce})

    refusal = refused(lambda: objects.create_snapshot(manifest))

    assert refusal.by_snapshot_webhook and refusal.code == 422
    assert refusal.fields == {FAILURE_DEADLINE_PATH}
    expected = (f"{FAILURE_DEADLINE_PATH} {deadline!r} is shorter than the quiesce timeout ({minutes} minutes): "
                f"the guest may take that long to freeze before vSphere takes the snapshot")
    assert failure_deadline_problem(deadline, minutes) == expected
    assert f"{FAILURE_DEADLINE_PATH}: Invalid value: {expected}" in refusal.message


@pytest.mark.parametrize("spelling", ["quiesce", "queisce"])
def test_with_a_refused_quiesce_timeout_the_deadline_is_checked_as_a_duration_only(objects: Objects, spelling: str):
    timeout_path = SPEC_QUIESCE_TIMEOUT_PATH if spelling == "quiesce" else SPEC_QUEISCE_TIMEOUT_PATH
    short = snapshot_manifest("snap", annotations={DEADLINE: "1m"}, **{spelling: {"timeout": "4m"}})

    refusal = refused(lambda: objects.create_snapshot(short))
    assert refusal.by_snapshot_webhook and refusal.fields == {timeout_path}  # the timeout, not the deadline

    zero = snapshot_manifest("snap", annotations={DEADLINE: "0"}, **{spelling: {"timeout": "4m"}})
    refusal = refused(lambda: objects.create_snapshot(zero))
    assert refusal.by_snapshot_webhook and refusal.fields == {timeout_path, FAILURE_DEADLINE_PATH}
    assert f"{FAILURE_DEADLINE_PATH}: Invalid value: {failure_deadline_problem('0', None)}" in refusal.message


@pytest.mark.parametrize("fallback", ["crash", "Fail", "crash_consistent", ""])
def test_a_quiesce_fallback_that_is_not_one_of_the_values_is_refused_on_the_annotation(objects: Objects,
                                                                                        fallback: str):
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest(
        "snap", annotations={FALLBACK: fallback}, quiesce={"timeout": "10m"})))

    assert refusal.by_snapshot_webhook and refusal.code == 422
    assert refusal.fields == {QUIESCE_FALLBACK_PATH}
    expected = f"{QUIESCE_FALLBACK_PATH} {fallback!r} is not one of 'fail' or 'crash-consistent'"
    assert quiesce_fallback_problem(fallback) == expected
    assert f"{QUIESCE_FALLBACK_PATH}: Invalid value: {expected}" in refusal.message


def test_both_annotations_wrong_are_refused_together(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(snapshot_manifest(
        "snap", annotations={DEADLINE: "5m", FALLBACK: "retry"}, queisce={"timeout": "10min"})))

    assert refusal.by_snapshot_webhook and refusal.fields == {FAILURE_DEADLINE_PATH, QUIESCE_FALLBACK_PATH}
    assert "is shorter than the quiesce timeout (10 minutes)" in refusal.message
    assert "'retry' is not one of 'fail' or 'crash-consistent'" in refusal.message


def test_the_annotations_are_checked_again_when_they_change(objects: Objects):
    objects.create_snapshot(snapshot_manifest("snap", annotations={DEADLINE: "1h"}, quiesce={"timeout": "30m"}))

    for change, field in (({DEADLINE: "20m"}, FAILURE_DEADLINE_PATH), ({DEADLINE: "later"}, FAILURE_DEADLINE_PATH),
                          ({FALLBACK: "skip"}, QUIESCE_FALLBACK_PATH)):
        refusal = refused(lambda: objects.patch_snapshot("snap", {"metadata": {"annotations": change}}))
        assert refusal.by_snapshot_webhook and refusal.code == 422 and refusal.fields == {field}

    changed = objects.patch_snapshot("snap", {"metadata": {"annotations": {DEADLINE: "30m",
                                                                           FALLBACK: "crash-consistent"}}})
    assert changed["metadata"]["annotations"][DEADLINE] == "30m"
    assert changed["metadata"]["annotations"][FALLBACK] == "crash-consistent"
    removed = objects.patch_snapshot("snap", {"metadata": {"annotations": {DEADLINE: None, FALLBACK: None}}})
    assert DEADLINE not in (removed["metadata"].get("annotations") or {})


def test_a_value_the_object_already_had_does_not_block_other_writes(objects: Objects):
    # Only an object that bypassed the webhook can carry a bad value; writes that leave it as it is go through
    # (the worker's finalizer and annotations, VM Operator's), a write that changes it to another bad one does not.
    objects.create_snapshot(snapshot_manifest("snap", annotations={SKIP_VALIDATION_ANNOTATION: "", DEADLINE: "soon"}))

    unskipped = objects.patch_snapshot("snap", {"metadata": {"annotations": {SKIP_VALIDATION_ANNOTATION: None}},
                                                "spec": {"description": "checked again"}})
    assert unskipped["metadata"]["annotations"] == {DEADLINE: "soon"}

    refusal = refused(lambda: objects.patch_snapshot("snap", {"metadata": {"annotations": {DEADLINE: "sooner"}}}))
    assert refusal.by_snapshot_webhook and refusal.fields == {FAILURE_DEADLINE_PATH}


def test_kubectl_shows_the_failure_deadline_refusal_on_the_annotation(objects: Objects, kubeconfig: Path):
    applied = kubectl_apply(kubeconfig, objects.namespace, snapshot_manifest(
        "snap", annotations={DEADLINE: "5m"}, quiesce={"timeout": "10m"}))

    assert applied.returncode != 0
    assert (f"{FAILURE_DEADLINE_PATH}: Invalid value: {FAILURE_DEADLINE_PATH} '5m' is shorter than the quiesce "
            f"timeout (10 minutes)") in applied.stderr
