"""The API models against the guide's YAML and Kubernetes JSON, plus quantities, limits and the two CRD files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from api import limits, messages, names
from api.conditions import Condition
from api.duration import TIMEOUT_PATTERN
from api.meta import ObjectMeta
from api.quantity import QUANTITY_PATTERN, format_binary_bytes, format_plain_bytes, parse_quantity, quantity_bytes
from api.virtualmachine import (
    VirtualMachine,
    VirtualMachineSpec,
    VirtualMachineStatus,
    VMSnapshotUsage,
    VMStorageStatus,
    VMStorageUsage,
)
from api.virtualmachinesnapshot import (
    QuiesceSpec,
    RequestedStorage,
    SnapshotReference,
    VirtualMachineSnapshot,
    VirtualMachineSnapshotSpec,
    VirtualMachineSnapshotStatus,
    vm_name_problems,
)
from tests.guide_examples import (
    GUIDE_SNAPSHOT_QUIESCED,
    GUIDE_SNAPSHOT_STATUS,
    GUIDE_SNAPSHOT_WITH_MEMORY,
    GUIDE_SNAPSHOT_WITHOUT_MEMORY,
    GUIDE_VM_REVERT,
    GUIDE_VM_STATUS_AFTER_REVERT,
    GUIDE_VM_STATUS_TREE,
)

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_CRD = REPO / "deploy/base/crds/vmoperator.vmware.com_virtualmachinesnapshots.yaml"
VM_CRD = REPO / "deploy/overlays/standalone/crds/vmoperator.vmware.com_virtualmachines.yaml"

def _load(text: str) -> dict[str, Any]:
    return yaml.safe_load("\n".join(line for line in text.splitlines() if line.strip() != "..."))


def _kube(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)


# --- the guide's examples parse ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [GUIDE_SNAPSHOT_WITHOUT_MEMORY, GUIDE_SNAPSHOT_WITH_MEMORY, GUIDE_SNAPSHOT_QUIESCED])
def test_guide_snapshots_parse_and_round_trip(text: str) -> None:
    raw = _load(text)
    snapshot = VirtualMachineSnapshot.model_validate(raw)
    # the guide's version, one of those served (and kept as written)
    assert snapshot.api_version == "vmoperator.vmware.com/v1alpha5" in names.API_VERSIONS
    assert snapshot.kind == names.SNAPSHOT_KIND
    assert snapshot.vm_name == "my-vm"
    assert _kube(snapshot) == raw


def test_guide_snapshot_without_memory() -> None:
    snapshot = VirtualMachineSnapshot.model_validate(_load(GUIDE_SNAPSHOT_WITHOUT_MEMORY))
    assert snapshot.name == "snap-1"
    assert snapshot.spec.description == "Snapshot of my-vm without memory"
    assert not snapshot.spec.includes_memory
    assert not snapshot.spec.quiesced and snapshot.spec.quiesce_minutes is None
    assert snapshot.spec.quiesce_problem() is None


def test_guide_snapshot_with_memory() -> None:
    snapshot = VirtualMachineSnapshot.model_validate(_load(GUIDE_SNAPSHOT_WITH_MEMORY))
    assert snapshot.spec.includes_memory and not snapshot.spec.quiesced


def test_guide_quiesced_snapshot_means_ten_minutes() -> None:
    snapshot = VirtualMachineSnapshot.model_validate(_load(GUIDE_SNAPSHOT_QUIESCED))
    assert snapshot.spec.queisce == QuiesceSpec(timeout="10min") and snapshot.spec.quiesce is None
    assert snapshot.spec.quiesced and snapshot.spec.includes_memory
    assert snapshot.spec.quiesce_minutes == 10
    assert snapshot.spec.quiesce_timeout_path == names.SPEC_QUEISCE_TIMEOUT_PATH
    assert snapshot.spec.quiesce_problem() is None


def test_guide_vm_revert_request() -> None:
    raw = _load(GUIDE_VM_REVERT)
    vm = VirtualMachine.model_validate(raw)
    assert vm.kind == names.VM_KIND and vm.name == "my-vm"
    assert vm.spec.current_snapshot_name == "snap-1" and vm.requested_snapshot_name == "snap-1"
    assert _kube(vm) == raw


def test_guide_vm_status_after_revert() -> None:
    status = VirtualMachineStatus.model_validate(_load(GUIDE_VM_STATUS_AFTER_REVERT)["status"])
    assert status.current_snapshot == SnapshotReference.managed("snap-1")


def test_guide_vm_status_tree() -> None:
    raw = _load(GUIDE_VM_STATUS_TREE)["status"]
    status = VirtualMachineStatus.model_validate(raw)
    assert status.current_snapshot == SnapshotReference.managed("snap-2")
    assert status.root_snapshots == [SnapshotReference.managed("snap-1")]
    assert _kube(status) == raw


def test_guide_snapshot_status() -> None:
    raw = _load(GUIDE_SNAPSHOT_STATUS)["status"]
    status = VirtualMachineSnapshotStatus.model_validate(raw)
    assert status.unique_id == "snapshot-226"
    assert status.power_state == names.PowerState.POWERED_ON
    assert status.children == [SnapshotReference.managed("snap-2")]
    assert status.storage.requested == [RequestedStorage(storage_class="wcpglobal-storage-profile", total="25Gi")]
    assert status.storage.used == "12226581330"
    condition_types = names.SnapshotConditionType
    assert [c.type for c in status.conditions] == [condition_types.CSI_SYNCED, condition_types.CREATED,
                                                   condition_types.READY]
    assert _kube(status) == raw
    snapshot = VirtualMachineSnapshot.model_validate({**_load(GUIDE_SNAPSHOT_WITHOUT_MEMORY), "status": raw})
    assert snapshot.is_created and snapshot.is_csi_synced and snapshot.is_ready


def test_guide_quantities_print_as_in_the_guide() -> None:
    assert format_binary_bytes(25 * 2**30) == "25Gi"
    assert format_plain_bytes(12226581330) == "12226581330"


# --- the quiesce alias ------------------------------------------------------------------------------------------

def _spec(**fields: Any) -> VirtualMachineSnapshotSpec:
    return VirtualMachineSnapshotSpec.model_validate({"vmName": "my-vm", **fields})


def test_quiesce_spelled_correctly() -> None:
    spec = _spec(quiesce={"timeout": "PT1H30M"})
    assert spec.quiesce_minutes == 90 and spec.quiesce_timeout_path == names.SPEC_QUIESCE_TIMEOUT_PATH


def test_both_spellings_with_the_same_value_are_fine() -> None:
    spec = _spec(quiesce={"timeout": "10m"}, queisce={"timeout": "10m"})
    assert spec.quiesce_minutes == 10
    assert _spec(quiesce={}, queisce={}).quiesce_minutes == limits.DEFAULT_QUIESCE_TIMEOUT_MINUTES


@pytest.mark.parametrize("quiesce, queisce", [
    ({"timeout": "10m"}, {"timeout": "20m"}),
    ({"timeout": "10m"}, {"timeout": "10min"}),  # equal as written, like the CRD's rule
    ({}, {"timeout": "10m"}),
])
def test_both_spellings_that_differ_are_refused(quiesce: dict, queisce: dict) -> None:
    with pytest.raises(ValidationError) as refused:
        _spec(quiesce=quiesce, queisce=queisce)
    assert messages.QUIESCE_ALIAS_CONFLICT in str(refused.value)


def test_empty_quiesce_takes_the_documented_default() -> None:
    spec = _spec(quiesce={})
    assert spec.quiesced and spec.quiesce_minutes == limits.DEFAULT_QUIESCE_TIMEOUT_MINUTES == 10
    assert spec.quiesce_problem() is None


def test_a_bad_timeout_still_reads_but_cannot_be_used() -> None:
    # An object that bypassed the webhook must not break a reader; the workflow reports the problem instead.
    spec = _spec(queisce={"timeout": "3m"})
    assert spec.quiesce_minutes == 3
    assert spec.quiesce_problem().startswith("spec.queisce.timeout '3m': 3 minutes is below vSphere's minimum")
    malformed = _spec(quiesce={"timeout": "soon"})
    with pytest.raises(ValueError, match=r"^spec\.quiesce\.timeout 'soon' is not a duration"):
        malformed.quiesce_minutes
    assert malformed.quiesce_problem().startswith("spec.quiesce.timeout 'soon' is not a duration")


# --- round trips to Kubernetes JSON ---------------------------------------------------------------------------

FULL_SNAPSHOT: dict[str, Any] = {
    "apiVersion": "vmoperator.vmware.com/v1alpha5",
    "kind": "VirtualMachineSnapshot",
    "metadata": {
        "name": "snap-2", "namespace": "team-a", "uid": "0b7f-42", "resourceVersion": "8812", "generation": 3,
        "creationTimestamp": "2025-10-27T14:50:01Z", "deletionTimestamp": "2025-10-28T09:00:00Z",
        "labels": {names.VM_NAME_LABEL: "my-vm"},
        "annotations": {names.CSI_VOLUME_SYNC_ANNOTATION: "completed"},
        "finalizers": [names.SNAPSHOT_FINALIZER, names.CSI_SYNC_VOLUME_FINALIZER],
        "ownerReferences": [{"apiVersion": names.API_VERSION, "kind": names.VM_KIND, "name": "my-vm",
                             "uid": "77aa"}],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"vmName": "my-vm", "description": "with memory", "memory": True, "quiesce": {"timeout": "PT10M"}},
    "status": {
        **_load(GUIDE_SNAPSHOT_STATUS)["status"],
        "children": [{"type": "Managed", "name": "snap-3"}, {"type": "Unmanaged", "name": ""}],
        "quiesced": True,
        "observedGeneration": 3,
        "someFutureField": {"kept": [1, 2]},
    },
}


def test_snapshot_round_trips_with_fields_we_do_not_model() -> None:
    snapshot = VirtualMachineSnapshot.model_validate(FULL_SNAPSHOT)
    assert _kube(snapshot) == FULL_SNAPSHOT
    assert snapshot.to_kube() == FULL_SNAPSHOT
    assert snapshot.model_dump(mode="json", exclude_none=True) == FULL_SNAPSHOT
    assert VirtualMachineSnapshot.model_validate_json(json.dumps(FULL_SNAPSHOT)) == snapshot
    assert yaml.safe_load(yaml.safe_dump(_kube(snapshot))) == FULL_SNAPSHOT  # plain types only
    assert snapshot.has_finalizer and snapshot.is_being_deleted
    assert snapshot.vm_name_label == "my-vm" and snapshot.csi_volume_sync == names.CSIVolumeSync.COMPLETED
    assert snapshot.metadata.owner_references[0].kind == names.VM_KIND
    assert snapshot.status.children[1] == SnapshotReference.unmanaged()


def test_snapshot_built_in_python_dumps_kubernetes_json() -> None:
    snapshot = VirtualMachineSnapshot(
        metadata=ObjectMeta(name="snap-9", namespace="team-a", labels={names.VM_NAME_LABEL: "my-vm"}),
        spec=VirtualMachineSnapshotSpec(vm_name="my-vm", quiesce=QuiesceSpec(timeout="10m")),
    )
    assert snapshot.to_kube() == {
        "apiVersion": "vmoperator.vmware.com/v1alpha6", "kind": "VirtualMachineSnapshot",
        "metadata": {"name": "snap-9", "namespace": "team-a", "labels": {names.VM_NAME_LABEL: "my-vm"}},
        "spec": {"vmName": "my-vm", "quiesce": {"timeout": "10m"}},
    }
    snapshot.status.unique_id = "snapshot-7"
    snapshot.status.power_state = names.PowerState.POWERED_OFF
    snapshot.status.storage = None
    assert snapshot.to_kube()["status"] == {"uniqueID": "snapshot-7", "powerState": "PoweredOff"}


def test_snapshot_references() -> None:
    assert _kube(SnapshotReference.unmanaged()) == {"type": "Unmanaged", "name": ""}
    assert _kube(SnapshotReference.managed("snap-1")) == {"type": "Managed", "name": "snap-1"}
    assert SnapshotReference.model_validate({"name": "snap-1"}).type == names.SnapshotReferenceType.MANAGED


def test_quantities_written_as_integers_are_read_as_text() -> None:
    status = VirtualMachineSnapshotStatus.model_validate({"storage": {"used": 1024, "requested": [
        {"storageClass": "gold", "total": 2048}]}})
    assert status.storage.used == "1024" and status.storage.requested[0].total == "2048"


FULL_VM: dict[str, Any] = {
    "apiVersion": "vmoperator.vmware.com/v1alpha5",
    "kind": "VirtualMachine",
    "metadata": {"name": "my-vm", "namespace": "team-a", "generation": 7,
                 "labels": {"app": "db"}, "annotations": {"vmoperator.vmware.com/manager-id": "vc-1"}},
    "spec": {
        "className": "best-effort-small", "imageName": "vmi-0123", "powerState": "PoweredOn",
        "storageClass": "wcpglobal-storage-profile",
        "network": {"interfaces": [{"name": "eth0", "network": {"name": "primary"}}]},
        "bootstrap": {"cloudInit": {"rawCloudConfig": {"name": "cfg", "key": "user-data"}}},
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc", "applicationType": "OracleRAC"}},
            {"name": "scratch", "persistentVolumeClaim": {
                "claimName": "scratch-pvc", "instanceVolumeClaim": {"storageClass": "fast", "size": "100Gi"}}},
        ],
        "hardware": {"scsiControllers": [{"busNumber": 0, "sharingMode": "None", "type": "ParaVirtual"},
                                         {"busNumber": 1, "sharingMode": "Physical", "pciSlotNumber": 34}],
                     "cdrom": [{"name": "cd0", "image": {"name": "iso-1"}}]},
    },
    "status": {
        "uniqueID": "vm-42", "instanceUUID": "5029-aa", "biosUUID": "4229-bb", "powerState": "PoweredOn",
        "network": {"primaryIP4": "10.0.0.5"},
        "volumes": [{"name": "my-vm", "type": "Classic", "requested": "20Gi", "diskUUID": "6000-1",
                     "crypto": {"providerID": "p"}},
                    {"name": "data", "type": "Managed", "used": "1Gi", "attached": True}],
        "hardware": {"memory": {"total": "4Gi"}, "cpu": {"total": 2}},
        "currentSnapshot": {"type": "Managed", "name": "snap-2"},
        "rootSnapshots": [{"type": "Managed", "name": "snap-1"}, {"type": "Unmanaged", "name": ""}],
        "conditions": [{"type": "VirtualMachineSnapshotRevertSucceeded", "status": "False",
                        "reason": "VirtualMachineSnapshotRevertTaskFailed", "message": "boom",
                        "lastTransitionTime": "2025-10-27T15:00:00Z"}],
    },
}


def test_vm_round_trips_with_fields_we_do_not_model() -> None:
    vm = VirtualMachine.model_validate(FULL_VM)
    assert _kube(vm) == FULL_VM
    assert vm.model_dump(mode="json", exclude_none=True) == FULL_VM
    assert vm.status.unique_id == "vm-42" and vm.status.instance_uuid == "5029-aa"
    assert vm.status.hardware.memory.total == "4Gi"
    assert vm.volume_spec("scratch").persistent_volume_claim.instance_volume_claim.size == "100Gi"
    assert vm.volume_spec("missing") is None
    assert vm.revert_condition.reason == names.RevertReason.TASK_FAILED


def test_vm_helpers() -> None:
    vm = VirtualMachine.model_validate(FULL_VM)
    assert [bus for bus, _ in vm.snapshot_blocking_scsi_buses] == [1]
    unnumbered = {"spec": {"hardware": {"scsiControllers": [{"busNumber": 0}, {"sharingMode": "Virtual"}]}}}
    assert VirtualMachine.model_validate(unnumbered).snapshot_blocking_scsi_buses == [(1, "Virtual")]
    assert not vm.is_vks_node
    assert vm.requested_snapshot_name is None
    for label in names.CAPI_CLUSTER_ROLE_LABELS:
        node = VirtualMachine.model_validate({"metadata": {"name": "n", "labels": {label: ""}}})
        assert node.is_vks_node
    assert VirtualMachine.model_validate({"spec": {"currentSnapshotName": "  "}}).requested_snapshot_name is None
    assert VirtualMachine.model_validate({"spec": {"hardware": {"scsiControllers": [{"busNumber": 0}]}}}) \
        .snapshot_blocking_scsi_buses == []


def test_objects_without_status_dump_without_status() -> None:
    assert "status" not in VirtualMachine.model_validate(_load(GUIDE_VM_REVERT)).to_kube()
    assert "status" not in VirtualMachineSnapshot.model_validate(_load(GUIDE_SNAPSHOT_QUIESCED)).to_kube()


# --- quantities ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("10Gi", 10 * 2**30), ("500M", 500 * 10**6), ("1e3", 1000), ("1E3", 1000), ("1.5Gi", 3 * 2**29), ("1024", 1024),
    (1024, 1024), ("100m", Fraction(1, 10)), ("2k", 2000), ("1Ki", 1024), ("1Ei", 2**60), (".5", Fraction(1, 2)),
    ("+1Mi", 2**20), ("-1Mi", -(2**20)), ("12226581330", 12226581330), ("1e-3", Fraction(1, 1000)),
])
def test_parse_quantity(text: str | int, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "10GB", "10 Gi", "1.2.3", "10gi", "e3", True, None, 1.5])
def test_malformed_quantities_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)  # type: ignore[arg-type]


def test_quantity_bytes_round_up() -> None:
    assert quantity_bytes("100m") == 1 and quantity_bytes("1.5") == 2 and quantity_bytes("10Gi") == 10 * 2**30


@pytest.mark.parametrize("count, text", [
    (0, "0"), (1024, "1Ki"), (1536, "1536"), (2**20, "1Mi"), (3 * 2**29, "1536Mi"), (25 * 2**30, "25Gi"),
    (2**60, "1Ei"), (12226581330, "12226581330"), (1000, "1000"),
])
def test_format_binary_bytes(count: int, text: str) -> None:
    assert format_binary_bytes(count) == text
    assert quantity_bytes(text) == count


def test_crd_quantity_pattern_agrees_with_the_parser() -> None:
    import re
    for text in ["10Gi", "500M", "1e3", "1.5", ".5", "+1Ki", "-2", "12226581330", "1E-3", "1.", "", "Gi", "10GB",
                 "10 Gi", "1.2.3", "10gi", "e3", "1e1.5"]:
        try:
            parse_quantity(text)
            parses = True
        except ValueError:
            parses = False
        assert (re.fullmatch(QUANTITY_PATTERN, text) is not None) == parses, text


# --- limits ------------------------------------------------------------------------------------------------------

def test_snapshot_count_guard() -> None:
    assert limits.snapshot_count_warning("my-vm", limits.MAX_SNAPSHOTS_PER_VM - 1) is None
    warning = limits.snapshot_count_warning("my-vm", limits.MAX_SNAPSHOTS_PER_VM)
    assert warning.startswith("spec.vmName: VM 'my-vm' will have 32 snapshots; prefer fewer than 32")
    assert limits.snapshot_count_refusal("my-vm", limits.MAX_SNAPSHOTS_PER_VM) is None
    refusal = limits.snapshot_count_refusal("my-vm", limits.MAX_SNAPSHOTS_PER_VM + 1)
    assert refusal.startswith("spec.vmName: VM 'my-vm' already has 32 snapshots, the most allowed per VM")
    assert limits.snapshot_count_warning("my-vm", limits.MAX_SNAPSHOTS_PER_VM + 1) is None  # refused, not warned


def test_snapshot_name_length() -> None:
    assert limits.snapshot_name_length_problem("s" * limits.MAX_SNAPSHOT_NAME_LENGTH) is None
    problem = limits.snapshot_name_length_problem("s" * (limits.MAX_SNAPSHOT_NAME_LENGTH + 1))
    assert problem == f"{limits.SNAPSHOT_NAME_TOO_LONG} (81 given)"
    assert problem.startswith("metadata.name must be at most 80 characters")


@pytest.mark.parametrize(("vm_name", "problems"), [
    ("my-vm", []), ("dc0-h0-vm0", []), ("vm.example.com", []), ("v" * 63, []), ("", []),
    ("bad_vm!", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("vm name with spaces", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("My-VM", [messages.VM_NAME_NOT_A_VM_NAME]), ("-vm", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("vm-", [messages.VM_NAME_NOT_A_VM_NAME]), ("vm..a", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("vm\n", [messages.VM_NAME_NOT_A_VM_NAME]),
    ("v" * 64, [messages.VM_NAME_TOO_LONG_FOR_LABEL]), ("v" * 70, [messages.VM_NAME_TOO_LONG_FOR_LABEL]),
    ("V" * 70, [messages.VM_NAME_NOT_A_VM_NAME, messages.VM_NAME_TOO_LONG_FOR_LABEL]),
])
def test_vm_name_must_be_a_vm_name_that_fits_the_label(vm_name: str, problems: list[str]) -> None:
    assert vm_name_problems(vm_name) == problems


def test_vm_name_messages_name_the_field_and_the_label() -> None:
    assert messages.VM_NAME_NOT_A_VM_NAME.startswith("spec.vmName must be a valid VirtualMachine name")
    assert messages.VM_NAME_TOO_LONG_FOR_LABEL == (
        "spec.vmName must be at most 63 characters: it is copied into the label "
        "snapshot.vmoperator.vmware.com/vm-name, and a label value has at most 63")


# --- the CRD files ---------------------------------------------------------------------------------------------

def _crd(path: Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert len(documents) == 1, f"{path} must hold exactly one document"
    crd = documents[0]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
    return crd


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    """The stored version's entry (the other served ones are the same, see test_crds_serve_both_versions_alike)."""
    (stored,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert stored["name"] == names.VERSION and stored["served"] is True
    assert stored["subresources"] == {"status": {}}
    return stored


@pytest.mark.parametrize("path", [SNAPSHOT_CRD, VM_CRD], ids=["snapshot", "vm"])
def test_crds_serve_both_versions_alike(path: Path) -> None:
    # VM Operator serves v1alpha5 and v1alpha6 and stores v1alpha6; manifests written for either must apply.
    spec = _crd(path)["spec"]
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {"v1alpha5", "v1alpha6"} == set(names.SERVED_VERSIONS)
    assert [name for name, v in versions.items() if v["storage"]] == ["v1alpha6"] == [names.VERSION]
    assert all(v["served"] is True for v in versions.values())
    # the same schema, columns and subresources: nothing to convert
    assert spec["conversion"] == {"strategy": "None"}
    stored = versions["v1alpha6"]
    for other in versions.values():
        assert {k: other[k] for k in ("schema", "additionalPrinterColumns", "subresources")} == \
            {k: stored[k] for k in ("schema", "additionalPrinterColumns", "subresources")}


def test_the_clients_version_is_the_stored_one() -> None:
    assert (names.VERSION, names.API_VERSION) == ("v1alpha6", "vmoperator.vmware.com/v1alpha6")
    assert names.API_VERSIONS == ("vmoperator.vmware.com/v1alpha5", "vmoperator.vmware.com/v1alpha6")


def _schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _schema_nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _schema_nodes(node["items"], f"{path}[]")


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _assert_structurally_sane(schema: dict[str, Any]) -> None:
    for path, node in _schema_nodes(schema):
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert node["pattern"] == QUANTITY_PATTERN, path
        else:
            assert node.get("type") in {"object", "array", "string", "boolean", "integer"}, path
        for required in node.get("required", []):
            assert required in node.get("properties", {}), f"{path} requires undeclared {required}"
        if node.get("type") == "array":
            assert "items" in node, path
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["rule"] and rule["message"], path
        if "enum" in node:
            assert node.get("type") == "string", path


def test_snapshot_crd_names() -> None:
    crd = _crd(SNAPSHOT_CRD)
    assert crd["metadata"]["name"] == names.SNAPSHOT_CRD_NAME
    spec = crd["spec"]
    assert spec["group"] == names.GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": names.SNAPSHOT_KIND, "listKind": names.SNAPSHOT_LIST_KIND,
                             "plural": names.SNAPSHOT_PLURAL, "singular": names.SNAPSHOT_SINGULAR,
                             "shortNames": [names.SNAPSHOT_SHORT_NAME]}


def test_snapshot_crd_printer_columns() -> None:
    columns = {c["name"]: c for c in _version(_crd(SNAPSHOT_CRD))["additionalPrinterColumns"]}
    assert columns["VM"]["jsonPath"] == ".spec.vmName"
    ready = names.SnapshotConditionType.READY
    assert columns["Ready"]["jsonPath"] == f'.status.conditions[?(@.type=="{ready}")].status'
    assert columns["Memory"]["jsonPath"] == ".spec.memory"
    assert columns["Quiesced"]["jsonPath"] == ".status.quiesced"
    assert columns["UniqueID"]["priority"] == 1
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_snapshot_crd_schema_matches_the_models() -> None:
    schema = _version(_crd(SNAPSHOT_CRD))["schema"]["openAPIV3Schema"]
    _assert_structurally_sane(schema)
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    assert set(spec["properties"]) == _aliases(VirtualMachineSnapshotSpec)
    assert "x-kubernetes-preserve-unknown-fields" not in spec  # pruned: misspelt fields are reported
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert set(status["properties"]) == _aliases(VirtualMachineSnapshotStatus)
    assert set(status["properties"]["children"]["items"]["properties"]) == _aliases(SnapshotReference)
    requested = status["properties"]["storage"]["properties"]["requested"]
    assert set(requested["items"]["properties"]) == _aliases(RequestedStorage)
    assert set(status["properties"]["conditions"]["items"]["properties"]) == _aliases(Condition)
    assert status["properties"]["powerState"]["enum"] == [str(s) for s in names.PowerState]
    assert set(status["properties"]["children"]["items"]["properties"]["type"]["enum"]) == \
        set(names.SnapshotReferenceType)
    assert status["properties"]["conditions"]["items"]["properties"]["status"]["enum"] == \
        [str(s) for s in names.ConditionStatus]


def test_snapshot_crd_rules_match_the_api() -> None:
    schema = _version(_crd(SNAPSHOT_CRD))["schema"]["openAPIV3Schema"]
    root_messages = [r["message"] for r in schema["x-kubernetes-validations"]]
    assert root_messages == [messages.VM_NAME_MUST_BE_PROVIDED, limits.SNAPSHOT_NAME_TOO_LONG]
    assert f"size() <= {limits.MAX_SNAPSHOT_NAME_LENGTH}" in schema["x-kubernetes-validations"][1]["rule"]
    spec = schema["properties"]["spec"]
    assert [r["message"] for r in spec["x-kubernetes-validations"]] == [
        messages.QUIESCE_ALIAS_CONFLICT, messages.MEMORY_IMMUTABLE, messages.QUIESCE_IMMUTABLE]
    vm_name_rules = spec["properties"]["vmName"]["x-kubernetes-validations"]
    assert [r["message"] for r in vm_name_rules] == \
        [messages.VM_NAME_IMMUTABLE, messages.VM_NAME_NOT_A_VM_NAME, messages.VM_NAME_TOO_LONG_FOR_LABEL]
    assert vm_name_rules[1]["rule"] == f"self == '' || self.matches('{limits.VM_NAME_PATTERN}')"
    assert vm_name_rules[2]["rule"] == f"self.size() <= {limits.MAX_VM_NAME_LENGTH}"
    for spelling, malformed, negative in [("quiesce", messages.QUIESCE_TIMEOUT_MALFORMED,
                                           messages.QUIESCE_TIMEOUT_NEGATIVE),
                                          ("queisce", messages.QUEISCE_TIMEOUT_MALFORMED,
                                           messages.QUEISCE_TIMEOUT_NEGATIVE)]:
        timeout = spec["properties"][spelling]["properties"]["timeout"]
        rules = timeout["x-kubernetes-validations"]
        assert [r["message"] for r in rules] == [negative, malformed]
        assert rules[1]["rule"] == f"self.matches('{TIMEOUT_PATTERN}')"
        assert timeout["maxLength"] <= 64  # keeps CEL's cost estimate small


def test_vm_crd_names_and_columns() -> None:
    crd = _crd(VM_CRD)
    assert crd["metadata"]["name"] == names.VM_CRD_NAME
    spec = crd["spec"]
    assert spec["group"] == names.GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": names.VM_KIND, "listKind": names.VM_LIST_KIND, "plural": names.VM_PLURAL,
                             "singular": names.VM_SINGULAR, "shortNames": [names.VM_SHORT_NAME]}
    columns = {c["name"]: c for c in _version(crd)["additionalPrinterColumns"]}
    assert columns["PowerState"]["jsonPath"] == ".status.powerState"
    assert columns["CurrentSnapshot"]["jsonPath"] == ".status.currentSnapshot.name"
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"


def test_vm_crd_schema_types_what_we_use_and_keeps_the_rest() -> None:
    schema = _version(_crd(VM_CRD))["schema"]["openAPIV3Schema"]
    _assert_structurally_sane(schema)
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    assert set(spec["properties"]) == _aliases(VirtualMachineSpec)
    assert set(status["properties"]) == _aliases(VirtualMachineStatus)
    typed_exactly = {".status.currentSnapshot", ".status.rootSnapshots[]", ".status.conditions[]"}
    for path, node in _schema_nodes(schema):
        if node.get("type") == "object" and path.startswith((".spec", ".status")) and path not in typed_exactly:
            assert node.get("x-kubernetes-preserve-unknown-fields") is True, f"{path} would prune VM fields"
    assert spec["properties"]["hardware"]["properties"]["scsiControllers"]["items"]["properties"]["sharingMode"][
        "enum"] == [str(m) for m in names.ControllerSharingMode]
    storage = status["properties"]["storage"]
    assert set(storage["properties"]) == _aliases(VMStorageStatus)
    assert set(storage["properties"]["usage"]["properties"]) == _aliases(VMStorageUsage)
    assert set(storage["properties"]["usage"]["properties"]["snapshots"]["properties"]) == \
        _aliases(VMSnapshotUsage) == {"vm", "volume"}


def test_vm_snapshot_usage_is_written_as_plain_bytes_and_keeps_the_rest_of_storage() -> None:
    vm = VirtualMachine.model_validate({"apiVersion": names.API_VERSION, "kind": names.VM_KIND,
                                        "metadata": {"name": "my-vm"},
                                        "status": {"storage": {"total": "20Gi", "usage": {"other": "1Mi"}}}})

    assert vm.status.set_snapshot_usage(12226581330, 0) is True
    assert vm.to_kube()["status"]["storage"] == {
        "total": "20Gi", "usage": {"other": "1Mi", "snapshots": {"vm": "12226581330", "volume": "0"}}}
    assert vm.status.set_snapshot_usage(12226581330, 0) is False  # unchanged: nothing to write
    assert vm.status.set_snapshot_usage(0, 16 * 2**20) is True
    assert vm.status.storage.usage.snapshots.to_kube() == {"vm": "0", "volume": "16777216"}
    fresh = VirtualMachine.model_validate({"apiVersion": names.API_VERSION, "kind": names.VM_KIND})
    assert fresh.status.set_snapshot_usage(1024, 0) is True
    assert fresh.to_kube()["status"] == {"storage": {"usage": {"snapshots": {"vm": "1024", "volume": "0"}}}}


def test_vm_crd_revert_rules_match_the_api() -> None:
    schema = _version(_crd(VM_CRD))["schema"]["openAPIV3Schema"]
    current = schema["properties"]["spec"]["properties"]["currentSnapshotName"]
    assert [r["message"] for r in current["x-kubernetes-validations"]] == [
        messages.CURRENT_SNAPSHOT_NAME_EMPTY, messages.REVERT_ALREADY_IN_PROGRESS]
    assert "oldSelf" in current["x-kubernetes-validations"][1]["rule"]
    (create_rule,) = schema["x-kubernetes-validations"]
    assert create_rule["message"] == messages.CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN
    assert create_rule["optionalOldSelf"] is True
