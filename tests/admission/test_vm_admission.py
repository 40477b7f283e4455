"""VirtualMachine admission of reverts (spec.currentSnapshotName) against the REAL apiserver with the bridge's
webhooks registered."""

from __future__ import annotations

import pytest

from api import admission_messages, messages
from api.names import CAPI_CLUSTER_ROLE_LABELS, SPEC_CURRENT_SNAPSHOT_NAME_PATH
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
