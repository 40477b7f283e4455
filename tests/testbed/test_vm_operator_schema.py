"""What this product writes on a VirtualMachineSnapshot's status, through VM Operator's OWN CRD
(tests/testdata/vm-operator/, verbatim): on a Supervisor, that schema, not ours, decides what the apiserver keeps.
Its status has no x-kubernetes-preserve-unknown-fields, so a field it does not declare is pruned without an error
and a field it requires but we leave out makes the write fail.

The session's apiserver has our own CRD under the same name, so these tests start a control plane of their own
(etcd + kube-apiserver, no controller-manager: about as long as the session's own start), once for the module.
The writes go through the product's own code: KubeSnapshotActivities.update_snapshot_status and
KubeVMActivities.sync_snapshot_tree on a runtime.kube.Kube client; the objects are read back raw.

And, on the session's apiserver (our CRD): `kubectl get vmsnapshot -o wide` shows what each snapshot captured.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from activities.kube.events import EventRecorder
from activities.kube_snapshot import KubeSnapshotActivities
from activities.kube_vm import KubeVMActivities
from api import messages
from api.names import (
    API_VERSION,
    GROUP,
    SNAPSHOT_CONSISTENCY_CONDITION,
    SNAPSHOT_DELETED_CONDITION,
    SNAPSHOT_PLURAL,
    TRUE_REASON,
    VERSION,
    VM_KIND,
    VM_NAME_LABEL,
    VM_PLURAL,
    ConsistencyReason,
    SnapshotConditionType,
    SnapshotReason,
)
from api.virtualmachinesnapshot import VirtualMachineSnapshotStatus
from contract.payloads import (
    ConditionChange,
    RequestedStorageEntry,
    SnapshotNode,
    SnapshotRef,
    SnapshotStatusChange,
    SnapshotTree,
    TreeSync,
    VMRef,
)
from runtime.kube import Kube
from testbed.kube import ControlPlane, install_crds
from testbed.process import repo_root
from tests.admission.kube_objects import kubectl
from tests.fixtures.health import watch
from tests.guide_examples import GUIDE_SNAPSHOT_WITH_MEMORY, GUIDE_SNAPSHOT_WITHOUT_MEMORY

VM_OPERATOR_SNAPSHOT_CRD = (Path(__file__).parents[1] / "testdata" / "vm-operator"
                            / "vmoperator.vmware.com_virtualmachinesnapshots.yaml")
# The VM is only the tree sync's other write (its status.currentSnapshot / rootSnapshots); our standalone CRD
# serves it here, the question being the snapshot's schema.
VM_CRD = repo_root() / "deploy" / "overlays" / "standalone" / "crds" / "vmoperator.vmware.com_virtualmachines.yaml"

GiB = 1024 ** 3
DELETION_MESSAGE = "vCenter refused the removal: the snapshot is locked (retried in 5m)"

@pytest.fixture(scope="module")
def vm_operator_api(testbed_dir: Path, request: pytest.FixtureRequest) -> Iterator[client.ApiClient]:
    plane = ControlPlane(testbed_dir / f"vm-operator-schema-{uuid.uuid4().hex[:6]}", controller_manager=False).start()
    watch(request, plane.watched())
    try:
        api = config.new_client_from_config(str(plane.kubeconfig))
        install_crds(api, [VM_OPERATOR_SNAPSHOT_CRD, VM_CRD])
        yield api
    finally:
        plane.stop()


class Product:
    """The product's Kubernetes side, as the worker builds it, in one namespace of the private apiserver."""

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.namespace = "t-" + uuid.uuid4().hex[:10]
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))
        self.kube = Kube(api)
        self.events = EventRecorder(self.kube)
        self.snapshots = KubeSnapshotActivities(self.kube, self.events)
        self.vms = KubeVMActivities(self.kube)

    def create_vm(self, name: str) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, VM_PLURAL, {
            "apiVersion": API_VERSION, "kind": VM_KIND, "metadata": {"name": name}, "spec": {}})

    def create_guide_snapshot(self, guide_yaml: str) -> SnapshotRef:
        """The guide's object as written (apiVersion v1alpha5), with the vm-name label the mutating webhook adds."""
        body = yaml.safe_load(guide_yaml)
        body["metadata"]["labels"] = {VM_NAME_LABEL: body["spec"]["vmName"]}
        version = body["apiVersion"].split("/")[1]
        created = self.custom.create_namespaced_custom_object(GROUP, version, self.namespace, SNAPSHOT_PLURAL, body)
        return SnapshotRef(namespace=self.namespace, name=created["metadata"]["name"], uid=created["metadata"]["uid"])

    def read_raw(self, name: str, version: str = VERSION) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, version, self.namespace, SNAPSHOT_PLURAL, name)

    def close(self) -> None:
        self.events.close()


@pytest.fixture(scope="module")
def product(vm_operator_api: client.ApiClient) -> Iterator[Product]:
    made = Product(vm_operator_api)
    yield made
    made.close()


def _every_field_change(ref: SnapshotRef) -> SnapshotStatusChange:
    """Every status field the create and delete workflows write, and every condition type the product writes
    (Ready is derived from Created and CSISynced)."""
    return SnapshotStatusChange(
        snapshot=ref, unique_id="snapshot-101", power_state="PoweredOn", quiesced=True,
        requested=[RequestedStorageEntry(storage_class="wcpglobal-storage-profile", total_bytes=25 * GiB),
                   RequestedStorageEntry(storage_class="gold", total_bytes=10 * GiB)],
        used_bytes=12226581330,
        conditions=[
            ConditionChange(type=SnapshotConditionType.CREATED, status=True),
            ConditionChange(type=SnapshotConditionType.CSI_SYNCED, status=True),
            ConditionChange(type=SNAPSHOT_CONSISTENCY_CONDITION, status=True,
                            reason=ConsistencyReason.APPLICATION_CONSISTENT_WITH_MEMORY,
                            message=messages.CONSISTENCY_QUIESCED + messages.CONSISTENCY_WITH_MEMORY),
            ConditionChange(type=SNAPSHOT_DELETED_CONDITION, status=False, reason=SnapshotReason.DELETION_FAILED,
                            message=DELETION_MESSAGE),
        ])


# (status, reason, message) of each condition the change above leaves on the object
EXPECTED_CONDITIONS = {
    SnapshotConditionType.CREATED: ("True", TRUE_REASON, ""),
    SnapshotConditionType.CSI_SYNCED: ("True", TRUE_REASON, ""),
    SnapshotConditionType.READY: ("True", TRUE_REASON, ""),
    SNAPSHOT_CONSISTENCY_CONDITION: ("True", ConsistencyReason.APPLICATION_CONSISTENT_WITH_MEMORY,
                                     messages.CONSISTENCY_QUIESCED + messages.CONSISTENCY_WITH_MEMORY),
    SNAPSHOT_DELETED_CONDITION: ("False", SnapshotReason.DELETION_FAILED, DELETION_MESSAGE),
}


@pytest.fixture(scope="module")
def written(product: Product) -> dict[str, dict[str, Any]]:
    """snap-1 (the guide's) with every status field written by the product, snap-2 its child in vCenter's tree;
    snap-1 read back raw in both served versions."""
    product.create_vm("my-vm")
    parent = product.create_guide_snapshot(GUIDE_SNAPSHOT_WITHOUT_MEMORY)
    child = product.create_guide_snapshot(GUIDE_SNAPSHOT_WITH_MEMORY)

    product.snapshots.update_snapshot_status(_every_field_change(parent))
    product.snapshots.update_snapshot_status(SnapshotStatusChange(snapshot=child, unique_id="snapshot-102"))
    tree = SnapshotTree(roots=[SnapshotNode(name="snap-1", moref="snapshot-101", power_state="PoweredOn",
                                            quiesced=True, children=[
                                                SnapshotNode(name="snap-2", moref="snapshot-102",
                                                             power_state="PoweredOn")])],
                        current="snapshot-102")
    product.vms.sync_snapshot_tree(TreeSync(vm=VMRef(namespace=product.namespace, name="my-vm"), tree=tree,
                                            vm_moref="vm-42"))
    return {version: product.read_raw("snap-1", version) for version in ("v1alpha6", "v1alpha5")}


@pytest.mark.parametrize("version", ["v1alpha6", "v1alpha5"])
def test_every_status_field_the_product_writes_survives_vm_operators_schema(written: dict, version: str):
    snapshot = written[version]
    status, generation = snapshot["status"], snapshot["metadata"]["generation"]

    # every field of the product's status model was written, and is still there
    product_fields = {f.alias or name for name, f in VirtualMachineSnapshotStatus.model_fields.items()}
    assert set(status) == product_fields
    assert status["uniqueID"] == "snapshot-101"
    assert status["powerState"] == "PoweredOn"
    assert status["quiesced"] is True
    assert status["storage"] == {"requested": [{"storageClass": "gold", "total": "10Gi"},
                                               {"storageClass": "wcpglobal-storage-profile", "total": "25Gi"}],
                                 "used": "12226581330"}
    assert status["children"] == [{"type": "Managed", "name": "snap-2"}]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: (c["status"], c["reason"], c["message"]) for t, c in conditions.items()} == EXPECTED_CONDITIONS
    for condition in conditions.values():
        assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
        assert condition["observedGeneration"] == generation
        assert condition["lastTransitionTime"].endswith("Z")


def test_an_unmanaged_child_survives_vm_operators_schema(product: Product):
    """VM Operator's schema requires status.children[].name (its Go type has no omitempty): an Unmanaged child
    (a snapshot made in vCenter) is written with an empty name, or the whole status write is refused."""
    parent = product.create_guide_snapshot(GUIDE_SNAPSHOT_WITHOUT_MEMORY.replace("snap-1", "snap-u")
                                           .replace("my-vm", "vm-u"))
    product.create_vm("vm-u")
    product.snapshots.update_snapshot_status(SnapshotStatusChange(snapshot=parent, unique_id="snapshot-201"))
    tree = SnapshotTree(roots=[SnapshotNode(name="snap-u", moref="snapshot-201", power_state="PoweredOff",
                                            children=[SnapshotNode(name="made-in-vcenter", moref="snapshot-202",
                                                                   power_state="PoweredOff")])],
                        current="snapshot-202")

    product.vms.sync_snapshot_tree(TreeSync(vm=VMRef(namespace=product.namespace, name="vm-u"), tree=tree))

    assert product.read_raw("snap-u")["status"]["children"] == [{"type": "Unmanaged", "name": ""}]


# --- kubectl get vmsnapshot -o wide, on our own CRD (the session's apiserver) --------------------------------------


def test_kubectl_wide_shows_what_each_snapshot_captured(kube_api: client.ApiClient, kubeconfig: Path,
                                                        namespace: str):
    kube = Kube(kube_api)
    events = EventRecorder(kube)
    try:
        body = yaml.safe_load(GUIDE_SNAPSHOT_WITH_MEMORY)
        created = client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            GROUP, "v1alpha5", namespace, SNAPSHOT_PLURAL, body)
        ref = SnapshotRef(namespace=namespace, name="snap-2", uid=created["metadata"]["uid"])
        KubeSnapshotActivities(kube, events).update_snapshot_status(SnapshotStatusChange(
            snapshot=ref, unique_id="snapshot-7", power_state="PoweredOn", quiesced=False,
            conditions=[ConditionChange(type=SnapshotConditionType.CREATED, status=True),
                        ConditionChange(type=SNAPSHOT_CONSISTENCY_CONDITION, status=True,
                                        reason=ConsistencyReason.CRASH_CONSISTENT_WITH_MEMORY,
                                        message=messages.CONSISTENCY_NOT_QUIESCED)]))
    finally:
        events.close()

    narrow = kubectl(kubeconfig, namespace, "get", "vmsnapshot")
    wide = kubectl(kubeconfig, namespace, "get", "vmsnapshot", "-o", "wide")

    assert narrow.returncode == 0 and wide.returncode == 0, narrow.stderr + wide.stderr
    assert narrow.stdout.split("\n")[0].split() == ["NAME", "VM", "READY", "MEMORY", "QUIESCED", "AGE"]
    header, row = wide.stdout.split("\n")[:2]
    assert header.split() == ["NAME", "VM", "READY", "MEMORY", "QUIESCED", "CONSISTENCY", "REASON", "POWERSTATE",
                              "UNIQUEID", "AGE"]
    # Ready waits for the CSI sync: its reason says so
    assert row.split()[:-1] == ["snap-2", "my-vm", "False", "true", "false", "CrashConsistentWithMemory",
                                SnapshotReason.WAITING_FOR_CSI_SYNC, "PoweredOn", "snapshot-7"]
