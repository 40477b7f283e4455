"""VirtualMachine admission of reverts (spec.currentSnapshotName) against the REAL apiserver with the bridge's
webhooks registered."""

from __future__ import annotations

import pytest

from api import admission_messages, messages
from api.names import CAPI_CLUSTER_ROLE_LABELS, FAILURE_DEADLINE_ANNOTATION, SPEC_CURRENT_SNAPSHOT_NAME_PATH
from api.operation_policy import FAILURE_DEADLINE_PATH, failure_deadline_problem
from tests.admission.kube_objects import Objects, refused, snapshot_manifest, vm_manifest

PATH = SPEC_CURRENT_SNAPSHOT_NAME_PATH


def test_creating_a_vm_with_a_current_snapshot_is_forbidden(objects: Objects):
    refusal = refused(lambda: objects.create_vm(vm_manifest("my-vm", currentSnapshotName="snap-1")))

    assert refusal.by_schema and refusal.fields == {PATH}
    assert f"{PATH}: Forbidden: {messages.CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN}" in refusal.message


@pytest.mark.parametrize("blank", [" ", "\t  "], ids=["space", "tab-and-spaces"])
def test_a_current_snapshot_name_of_whitespace_only_is_invalid(objects: Objects, blank: str):
    objects.create_vm(vm_manifest("my-vm"))

    refusal = refused(lambda: objects.revert_vm("my-vm", blank))

    assert refusal.by_schema and refusal.code == 422 and refusal.fields == {PATH}
    assert f"{PATH}: Invalid value: " in refusal.message
    assert messages.CURRENT_SNAPSHOT_NAME_EMPTY in refusal.message


def test_the_revert_target_cannot_change_while_a_revert_is_pending(objects: Objects):
    objects.create_vm(vm_manifest("my-vm"))
    objects.create_snapshot(snapshot_manifest("snap-1", vm_name="my-vm"))
    objects.create_snapshot(snapshot_manifest("snap-2", vm_name="my-vm"))
    objects.revert_vm("my-vm", "snap-1")

    refusal = refused(lambda: objects.revert_vm("my-vm", "snap-2"))

    assert refusal.by_schema and refusal.fields == {PATH}
    assert f"{PATH}: Forbidden: {messages.REVERT_ALREADY_IN_PROGRESS}" in refusal.message
    # Clearing always works: it is how a user abandons a revert; then another target may be set.
    assert "currentSnapshotName" not in objects.revert_vm("my-vm", None)["spec"]
    assert objects.revert_vm("my-vm", "snap-2")["spec"]["currentSnapshotName"] == "snap-2"


@pytest.mark.parametrize("capi_label", CAPI_CLUSTER_ROLE_LABELS)
def test_reverting_a_vks_node_is_forbidden(objects: Objects, capi_label: str):
    objects.create_vm(vm_manifest("node-1", labels={capi_label: "control-plane"}))

    refusal = refused(lambda: objects.revert_vm("node-1", "snap-1"))

    assert refusal.by_vm_webhook and refusal.code == 403 and refusal.fields == {PATH}
    assert f"{PATH}: Forbidden: {messages.REVERT_OF_VKS_NODE_FORBIDDEN}" in refusal.message


def test_reverting_to_a_snapshot_of_another_vm_is_forbidden(objects: Objects):
    objects.create_vm(vm_manifest("vm-a"))
    objects.create_vm(vm_manifest("vm-b"))
    objects.create_snapshot(snapshot_manifest("snap-of-b", vm_name="vm-b"))

    refusal = refused(lambda: objects.revert_vm("vm-a", "snap-of-b"))

    assert refusal.by_vm_webhook and refusal.code == 403 and refusal.fields == {PATH}
    expected = admission_messages.snapshot_of_another_vm("snap-of-b", "vm-b", "vm-a")
    assert f"{PATH}: Forbidden: {expected}" in refusal.message
    assert "currentSnapshotName" not in objects.get_vm("vm-a")["spec"]


def test_reverting_to_its_own_snapshot_or_to_one_not_created_yet_is_allowed(objects: Objects):
    objects.create_vm(vm_manifest("vm-a"))
    objects.create_vm(vm_manifest("vm-b"))
    objects.create_snapshot(snapshot_manifest("snap-of-a", vm_name="vm-a"))

    assert objects.revert_vm("vm-a", "snap-of-a")["spec"]["currentSnapshotName"] == "snap-of-a"
    # As in VM Operator, a missing snapshot is the revert workflow's to report (a condition on the VM).
    assert objects.revert_vm("vm-b", "not-yet")["spec"]["currentSnapshotName"] == "not-yet"


def test_other_changes_to_a_vm_pass_while_a_revert_is_pending(objects: Objects):
    objects.create_vm(vm_manifest("my-vm", powerState="PoweredOn"))
    objects.create_snapshot(snapshot_manifest("snap-1", vm_name="my-vm"))
    objects.revert_vm("my-vm", "snap-1")

    changed = objects.patch_vm("my-vm", {"metadata": {"labels": {"team": "b"}}, "spec": {"powerState": "PoweredOff"}})

    assert changed["spec"] == {"currentSnapshotName": "snap-1", "powerState": "PoweredOff"}


# --- ours: the failure deadline of the VM's reverts (annotation vmsnap.io/failure-deadline) ------------------------
# The apiserver calls the VM webhook only while a revert is asked (its match condition), so the deadline is judged
# by the request that asks a revert, and by any change to it while the revert is pending.

DEADLINE = FAILURE_DEADLINE_ANNOTATION


def _deadline_refusal_text(deadline: str) -> str:
    problem = failure_deadline_problem(deadline, None)
    assert problem is not None
    return f"{FAILURE_DEADLINE_PATH}: Invalid value: {problem}"


@pytest.mark.parametrize("deadline", ["soon", "0", "-1h", "90"], ids=["words", "zero", "negative", "bare-number"])
def test_a_revert_asked_under_a_bad_failure_deadline_is_refused_on_the_annotation(objects: Objects, deadline: str):
    # Written while no revert is pending, the value does not reach the webhook: the request that asks a revert is
    # refused, naming the annotation, before the revert would run under it.
    objects.create_vm(vm_manifest("my-vm", annotations={DEADLINE: deadline}))
    objects.create_snapshot(snapshot_manifest("snap-1", vm_name="my-vm"))

    refusal = refused(lambda: objects.revert_vm("my-vm", "snap-1"))

    assert refusal.by_vm_webhook and refusal.code == 422 and refusal.fields == {FAILURE_DEADLINE_PATH}
    assert _deadline_refusal_text(deadline) in refusal.message
    assert "currentSnapshotName" not in objects.get_vm("my-vm")["spec"]


@pytest.mark.parametrize("deadline", ["1m", "30m", "2h", "PT1H30M", "45 minutes"])
def test_a_revert_under_a_positive_failure_deadline_is_allowed(objects: Objects, deadline: str):
    # A revert has no quiesce timeout: any positive duration will do.
    objects.create_vm(vm_manifest("my-vm", annotations={DEADLINE: deadline}))
    objects.create_snapshot(snapshot_manifest("snap-1", vm_name="my-vm"))

    assert objects.revert_vm("my-vm", "snap-1")["spec"]["currentSnapshotName"] == "snap-1"


def test_the_failure_deadline_is_checked_when_it_changes_while_a_revert_is_pending(objects: Objects):
    objects.create_vm(vm_manifest("my-vm"))
    objects.create_snapshot(snapshot_manifest("snap-1", vm_name="my-vm"))
    objects.revert_vm("my-vm", "snap-1")

    refusal = refused(lambda: objects.patch_vm("my-vm", {"metadata": {"annotations": {DEADLINE: "whenever"}}}))
    assert refusal.by_vm_webhook and refusal.code == 422 and refusal.fields == {FAILURE_DEADLINE_PATH}
    assert _deadline_refusal_text("whenever") in refusal.message

    changed = objects.patch_vm("my-vm", {"metadata": {"annotations": {DEADLINE: "15m"}}})
    assert changed["metadata"]["annotations"][DEADLINE] == "15m"


def test_a_bad_failure_deadline_written_while_no_revert_is_pending_is_not_seen_by_the_webhook(objects: Objects):
    # The webhook's registration (webhooks.VM_VALIDATING) lets VM writes without a revert skip it, so VM Operator's
    # own updates never wait on the bridge: such a value is refused only once a revert is asked (above).
    objects.create_vm(vm_manifest("my-vm"))

    patched = objects.patch_vm("my-vm", {"metadata": {"annotations": {DEADLINE: "soon"}}})

    assert patched["metadata"]["annotations"][DEADLINE] == "soon"


def test_both_the_revert_rule_and_the_deadline_are_reported_together(objects: Objects):
    objects.create_vm(vm_manifest("vm-a", annotations={DEADLINE: "0"}))
    objects.create_vm(vm_manifest("vm-b"))
    objects.create_snapshot(snapshot_manifest("snap-of-b", vm_name="vm-b"))

    refusal = refused(lambda: objects.revert_vm("vm-a", "snap-of-b"))

    assert refusal.by_vm_webhook and refusal.code == 422 and refusal.fields == {PATH, FAILURE_DEADLINE_PATH}
    assert f"{PATH}: Forbidden: " in refusal.message and _deadline_refusal_text("0") in refusal.message
