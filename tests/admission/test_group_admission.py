"""VirtualMachineGroupSnapshot admission against the REAL apiserver with the bridge's webhooks registered: each
refusal names its field — no members, more than 64, a member twice or in another namespace, a member VM a single
snapshot could not be taken of (a VKS node, a shared SCSI bus: the same check, on the member's path), a skew or a
deadline that is not a duration, a deadline shorter than the quiesce timeout. Some are the CRD's (`by_schema`). And
a group's member deleted on its own is refused naming the group, while the group's own undo and its deletion go
through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.group_snapshot import GroupSnapshotSpec, member_snapshot_name, spec_problems
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_API_VERSION,
    GROUP_SNAPSHOT_GROUP,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_UID_ANNOTATION,
    GROUP_SNAPSHOT_VERSION,
    GroupPhase,
)
from api.names import CAPI_CLUSTER_ROLE_LABELS, GROUP, SNAPSHOT_PLURAL, VERSION
from bridge.admission import GROUP_SNAPSHOT_VALIDATING, MEMBER_DELETE_VALIDATING
from tests.admission.kube_objects import Objects, refused, snapshot_manifest, vm_manifest


def create(objects: Objects, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND, "metadata": {"name": name},
            "spec": {"vmNames": ["db", "app"], **spec}}
    return objects.custom.create_namespaced_custom_object(GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION,
                                                          objects.namespace, GROUP_SNAPSHOT_PLURAL, body)


def by_group_webhook(message: str) -> bool:
    return f'admission webhook "{GROUP_SNAPSHOT_VALIDATING.name}" denied the request' in message


def test_a_good_group_is_admitted(objects: Objects):
    objects.create_vm(vm_manifest("db"))
    made = create(objects, "app-1", template={"memory": True, "quiesce": {"timeout": "10min"}}, maxSkew="5s",
                  deadline="45m")
    assert made["spec"]["maxSkew"] == "5s"
    objects.create_vm(vm_manifest("web-1", labels={"tier": "web"}))
    assert create(objects, "web", vmNames=None, vmSelector={"matchLabels": {"tier": "web"}})["metadata"]["name"]


@pytest.mark.parametrize(("spec", "field", "says"), [
    ({"vmNames": []}, "spec.vmNames", "a group snapshot needs at least one"),
    ({"vmNames": ["db", "db"]}, "spec.vmNames[1]", "more than once"),
    ({"vmNames": ["db", "other-team/db"]}, "spec.vmNames[1]", "in another namespace"),
    ({"maxSkew": "a little"}, "spec.maxSkew", "is not a duration"),
    ({"deadline": "soon"}, "spec.deadline", "is not a duration"),
    ({"deadline": "0s"}, "spec.deadline", "is zero"),
    ({"deadline": "5m", "template": {"quiesce": {"timeout": "10m"}}}, "spec.deadline",
     "shorter than the members' quiesce timeout"),
    ({"template": {"quiesce": {"timeout": "2m"}}}, "spec.template.quiesce.timeout", "below vSphere's minimum"),
    ({"vmNames": None, "vmSelector": {"matchLabels": {"tier": "none-such"}}}, "spec.vmSelector", "selects no"),
    ({"vmNames": None, "vmGroupName": "none-such"}, "spec.vmGroupName", "VirtualMachineGroup 'none-such' does not"),
])
def test_refused_by_the_webhook_naming_the_field(objects: Objects, spec: dict, field: str, says: str):
    refusal = refused(lambda: create(objects, "bad", **spec))
    assert by_group_webhook(refusal.message), refusal.message
    assert refusal.code == 422 and field in refusal.fields
    assert says in refusal.message and f"{GROUP_SNAPSHOT_KIND}.{GROUP_SNAPSHOT_GROUP}" in refusal.message


def test_more_than_64_members_is_refused_naming_the_field(objects: Objects):
    refusal = refused(lambda: create(objects, "big", vmNames=[f"vm-{i}" for i in range(65)]))
    assert refusal.by_schema and refusal.code == 422 and "spec.vmNames" in refusal.message
    assert "64" in refusal.message


def test_members_by_exactly_one_of_names_and_selector(objects: Objects):
    refusal = refused(lambda: create(objects, "both", vmSelector={"matchLabels": {"a": "b"}}))
    assert refusal.by_schema and "exactly one of spec.vmNames, spec.vmSelector and spec.vmGroupName" in refusal.message


@pytest.mark.parametrize("capi_label", CAPI_CLUSTER_ROLE_LABELS[:1])
def test_a_member_a_snapshot_could_not_be_taken_of_is_refused_on_its_path(objects: Objects, capi_label: str):
    objects.create_vm(vm_manifest("db"))
    objects.create_vm(vm_manifest("node-1", labels={capi_label: "worker"}))
    refusal = refused(lambda: create(objects, "vks", vmNames=["db", "node-1"]))
    assert by_group_webhook(refusal.message) and refusal.code == 403
    assert refusal.fields == {"spec.vmNames[1]"}
    assert "member VirtualMachine 'node-1': snapshots are not allowed for VKS/TKG nodes" in refusal.message
    objects.create_vm(vm_manifest("shared", labels={"tier": "x"}, hardware={"scsiControllers": [
        {"busNumber": 0, "sharingMode": "Physical"}]}))
    refusal = refused(lambda: create(objects, "scsi", vmNames=None, vmSelector={"matchLabels": {"tier": "x"}}))
    assert by_group_webhook(refusal.message) and refusal.fields == {"spec.vmSelector"}
    assert "member VirtualMachine 'shared'" in refusal.message


def test_a_member_deleted_alone_is_refused_naming_the_group_until_the_group_undoes_it(objects: Objects):
    group = create(objects, "pair")
    uid = group["metadata"]["uid"]
    name = member_snapshot_name("pair", "db")
    member = snapshot_manifest(name, "db", labels={GROUP_SNAPSHOT_LABEL: "pair"},
                               annotations={GROUP_SNAPSHOT_UID_ANNOTATION: uid})
    member["metadata"]["ownerReferences"] = [{"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND,
                                              "name": "pair", "uid": uid, "controller": True}]
    objects.create_snapshot(member)

    def delete() -> Any:
        return objects.custom.delete_namespaced_custom_object(GROUP, VERSION, objects.namespace, SNAPSHOT_PLURAL,
                                                              name)
    refusal = refused(delete)
    assert f'admission webhook "{MEMBER_DELETE_VALIDATING.name}" denied the request' in refusal.message
    assert refusal.code == 403 and f"member of {GROUP_SNAPSHOT_KIND} 'pair'" in refusal.message
    # a snapshot merely labelled with the group (no ownerReference, another uid) is not a member: deleted as usual
    objects.create_snapshot(snapshot_manifest("look-alike", "db", labels={GROUP_SNAPSHOT_LABEL: "pair"},
                                              annotations={GROUP_SNAPSHOT_UID_ANNOTATION: "another"}))
    objects.custom.delete_namespaced_custom_object(GROUP, VERSION, objects.namespace, SNAPSHOT_PLURAL, "look-alike")
    # the group's saga undoing its members (phase Compensating) deletes them
    objects.custom.patch_namespaced_custom_object_status(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, objects.namespace, GROUP_SNAPSHOT_PLURAL, "pair",
        {"status": {"phase": GroupPhase.COMPENSATING}})
    delete()


def test_the_readme_example_is_admitted_as_written(objects: Objects):
    page = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = page.split("kubectl apply -f - <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    manifest = yaml.safe_load(block)
    assert manifest["kind"] == GROUP_SNAPSHOT_KIND and not spec_problems(GroupSnapshotSpec.model_validate(
        manifest["spec"]))
    made = objects.custom.create_namespaced_custom_object(GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION,
                                                          objects.namespace, GROUP_SNAPSHOT_PLURAL, manifest)
    assert made["spec"] == manifest["spec"]


def test_the_spec_is_immutable_but_for_revert_which_needs_a_ready_group(objects: Objects):
    create(objects, "pair")

    def patch(spec: dict[str, Any]) -> Any:
        return objects.custom.patch_namespaced_custom_object(GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION,
                                                             objects.namespace, GROUP_SNAPSHOT_PLURAL, "pair",
                                                             {"spec": spec})
    for change in ({"vmNames": ["db"]}, {"maxSkew": "1m"}, {"template": {"memory": True}}):
        refusal = refused(lambda change=change: patch(change))
        assert refusal.by_schema and "spec is immutable but for spec.revert" in refusal.message, change
    refusal = refused(lambda: patch({"revert": True}))
    assert by_group_webhook(refusal.message) and refusal.fields == {"spec.revert"}
    assert "needs a Ready group" in refusal.message
    objects.custom.patch_namespaced_custom_object_status(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, objects.namespace, GROUP_SNAPSHOT_PLURAL, "pair",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "True", "message": "",
                                    "lastTransitionTime": "2026-12-07T00:00:00Z"}]}})
    assert patch({"revert": True})["spec"]["revert"] is True
