"""The VirtualMachineGroupSnapshot API (api/group_snapshot*.py) and its CRD say the same: names, short names,
printer columns, the status fields the saga writes; the whole spec check names each field; member names are
deterministic and fit vSphere; the skew is measured and printed as the Skew column shows it; a member is its
group's only when label, UID annotation and ownerReference agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from api import VirtualMachineSnapshot
from api.group_snapshot import (
    GroupSnapshotSpec,
    GroupSnapshotStatus,
    VirtualMachineGroupSnapshot,
    format_skew,
    member_snapshot_name,
    owning_group,
    skew_seconds,
    spec_problems,
    vm_group_members,
)
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_API_VERSION,
    GROUP_SNAPSHOT_CRD_NAME,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_LIST_KIND,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_SHORT_NAMES,
    GROUP_SNAPSHOT_SINGULAR,
    GROUP_SNAPSHOT_UID_ANNOTATION,
    GROUP_SNAPSHOT_VERSION,
    MAX_GROUP_MEMBERS,
    GroupReason,
)
from api.limits import MAX_SNAPSHOT_NAME_LENGTH
from api.names import TRUE_REASON

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy/components/group-snapshots/crds/vmsnap.io_virtualmachinegroupsnapshots.yaml"


def crd() -> dict:
    return yaml.safe_load(CRD.read_text())


def spec(**fields) -> GroupSnapshotSpec:
    return GroupSnapshotSpec.model_validate({"vmNames": ["db", "app"], **fields})


def test_the_crd_names_what_the_api_names():
    document = crd()
    names, (version,) = document["spec"]["names"], document["spec"]["versions"]
    assert document["metadata"]["name"] == GROUP_SNAPSHOT_CRD_NAME
    assert (names["kind"], names["listKind"], names["plural"], names["singular"], tuple(names["shortNames"])) == (
        GROUP_SNAPSHOT_KIND, GROUP_SNAPSHOT_LIST_KIND, GROUP_SNAPSHOT_PLURAL, GROUP_SNAPSHOT_SINGULAR,
        GROUP_SNAPSHOT_SHORT_NAMES)
    assert f"{document['spec']['group']}/{version['name']}" == GROUP_SNAPSHOT_API_VERSION
    assert version["name"] == GROUP_SNAPSHOT_VERSION and version["subresources"] == {"status": {}}
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec_schema["properties"]["vmNames"]["maxItems"] == MAX_GROUP_MEMBERS
    assert set(spec_schema["properties"]) == {field.alias or name
                                              for name, field in GroupSnapshotSpec.model_fields.items()}


def test_the_printer_columns_read_what_the_saga_writes():
    (version,) = crd()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"] if not c.get("priority")}
    assert list(columns) == ["Members", "Ready", "Skew", "Age"]
    status = GroupSnapshotStatus(member_count=3, skew="1.25s", phase="Ready").to_kube()
    assert columns["Members"]["jsonPath"] == ".status.memberCount" and status["memberCount"] == 3
    assert columns["Skew"]["jsonPath"] == ".status.skew" and status["skew"] == "1.25s"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(schema) == {field.alias or name for name, field in GroupSnapshotStatus.model_fields.items()}


def test_a_good_spec_has_no_problems():
    assert spec_problems(spec(template={"memory": True, "quiesce": {"timeout": "10min"}}, maxSkew="5s",
                              deadline="1h")) == []
    assert spec_problems(spec(vmNames=None, vmSelector={"matchLabels": {"tier": "db"}})) == []
    assert spec_problems(spec(vmNames=None, vmGroupName="three-tier")) == []
    assert spec().max_skew_seconds == 30 and spec().deadline_delta == timedelta(minutes=30)


@pytest.mark.parametrize(("fields", "path"), [
    ({"vmNames": []}, "spec.vmNames"),
    ({"vmNames": [f"vm-{i}" for i in range(MAX_GROUP_MEMBERS + 1)]}, "spec.vmNames"),
    ({"vmNames": ["db", "db"]}, "spec.vmNames[1]"),
    ({"vmNames": ["db", "ns/app"]}, "spec.vmNames[1]"),
    ({"vmSelector": {"matchLabels": {"a": "b"}}}, "spec.vmSelector"),
    ({"vmNames": None}, "spec.vmSelector"),
    ({"vmGroupName": "app"}, "spec.vmSelector"),                          # with vmNames
    ({"maxSkew": "quick"}, "spec.maxSkew"),
    ({"maxSkew": "-5s"}, "spec.maxSkew"),
    ({"deadline": "later"}, "spec.deadline"),
    ({"deadline": "5m", "template": {"quiesce": {"timeout": "10m"}}}, "spec.deadline"),
    ({"deadline": "5m", "template": {"quiesce": {}}}, "spec.deadline"),   # the default 10 minutes
    ({"template": {"quiesce": {"timeout": "5h"}}}, "spec.template.quiesce.timeout"),
])
def test_each_refusal_names_its_field(fields: dict, path: str):
    problems = spec_problems(spec(**fields))
    assert len(problems) == 1, problems
    field, message = problems[0]
    assert field == path
    assert message.startswith(path) or f" {path} " in f" {message} " or path.startswith("spec.vmSelector")


def test_member_names_are_deterministic_distinct_and_fit_vsphere():
    assert member_snapshot_name("app", "db") == member_snapshot_name("app", "db")
    assert member_snapshot_name("app", "db") != member_snapshot_name("app-db", "")
    long = member_snapshot_name("g" * 63, "v" * 253)
    assert len(long) <= MAX_SNAPSHOT_NAME_LENGTH and long != member_snapshot_name("g" * 63, "v" * 252)
    assert member_snapshot_name("App", "DB_1").startswith("app-db-1-")


def test_skew_is_first_to_last_and_prints_as_the_column_shows_it():
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    assert skew_seconds([t0 + timedelta(seconds=2), t0, t0 + timedelta(milliseconds=500)]) == 2.0
    assert skew_seconds([t0]) == 0.0
    assert [format_skew(s) for s in (0, 0.25, 1.5, 30, 125.5)] == ["0s", "0.25s", "1.5s", "30s", "2m5.5s"]


def member(**metadata) -> VirtualMachineSnapshot:
    return VirtualMachineSnapshot.model_validate({"apiVersion": "vmoperator.vmware.com/v1alpha5",
                                                  "kind": "VirtualMachineSnapshot",
                                                  "metadata": {"name": "m", "namespace": "ns", **metadata},
                                                  "spec": {"vmName": "db"}})


def test_a_member_is_its_groups_only_when_label_uid_and_owner_agree():
    owner = {"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND, "name": "app", "uid": "u1"}
    marks = {"labels": {GROUP_SNAPSHOT_LABEL: "app"}, "annotations": {GROUP_SNAPSHOT_UID_ANNOTATION: "u1"}}
    assert owning_group(member(**marks, ownerReferences=[owner])) == ("app", "u1")
    assert owning_group(member(**marks)) is None                                   # labelled by hand
    assert owning_group(member(**marks, ownerReferences=[{**owner, "uid": "u2"}])) is None
    assert owning_group(member(ownerReferences=[owner])) is None


def test_finished_is_ready_or_failed_for_good():
    def group(status: str, reason: str) -> VirtualMachineGroupSnapshot:
        return VirtualMachineGroupSnapshot.model_validate({"metadata": {"name": "g"}, "status": {"conditions": [
            {"type": "Ready", "status": status, "reason": reason, "lastTransitionTime": "2026-12-07T00:00:00Z"}]}})
    assert group("True", TRUE_REASON).finished
    assert group("False", GroupReason.MEMBER_FAILED).finished
    assert not group("False", GroupReason.IN_PROGRESS).finished
    assert not group("False", GroupReason.COMPENSATING).finished
    assert not VirtualMachineGroupSnapshot().finished


def vm_group(*steps: list[tuple[str, str]]) -> dict:
    return {"spec": {"bootOrder": [{"members": [{"kind": kind, "name": name} for kind, name in step]}
                                   for step in steps]}}


def test_a_vm_operator_groups_members_in_boot_order_nested_groups_followed():
    groups = {"app": vm_group([("VirtualMachine", "db")],
                              [("VirtualMachineGroup", "web"), ("VirtualMachine", "cache")]),
              "web": vm_group([("VirtualMachine", "web-2"), ("VirtualMachine", "web-1"), ("VirtualMachine", "db")])}
    assert vm_group_members("app", groups.get) == (["db", "web-2", "web-1", "cache"], "")


@pytest.mark.parametrize(("groups", "says"), [
    ({}, "VirtualMachineGroup 'app' does not exist"),
    ({"app": vm_group([("VirtualMachineGroup", "gone")])}, "VirtualMachineGroup 'gone' does not exist"),
    ({"app": vm_group([("VirtualMachineGroup", "web")]), "web": vm_group([("VirtualMachineGroup", "app")])},
     "'app' contains itself"),
    ({"app": vm_group()}, "has no VirtualMachine"),
])
def test_a_vm_operator_group_that_gives_no_members_says_why_naming_the_field(groups: dict, says: str):
    members, problem = vm_group_members("app", groups.get)
    assert members == [] and problem.startswith("spec.vmGroupName") and says in problem
