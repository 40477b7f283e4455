"""`status.storage.requested` of a snapshot (activities/kube/storage.py, pure but for the PVC read it is given):
the most the snapshot can take per storage class — the VM's memory when the snapshot includes it, and each
disk's full size on the class it lives on — or a ValueError naming what is missing."""

from __future__ import annotations

from typing import Any

import pytest

from activities.kube.storage import requested_storage
from api import VirtualMachine

GiB = 2**30


def vm(volumes: list[dict], specs: list[dict] | None = None, memory: str | None = "4Gi",
       storage_class: str | None = "gold") -> VirtualMachine:
    return VirtualMachine.model_validate({
        "metadata": {"name": "vm", "namespace": "ns"},
        "spec": {k: v for k, v in (("storageClass", storage_class), ("volumes", specs)) if v is not None},
        "status": {"volumes": volumes, **({"hardware": {"memory": {"total": memory}}} if memory else {})},
    })


def pvc(name: str, storage_class: str | None, request: str | None) -> dict[str, Any]:
    """A PVC as the apiserver returns it (JSON)."""
    spec: dict[str, Any] = {"resources": {"requests": {"storage": request}} if request else {}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


class Claims:
    """The PVCs of the namespace, and which were read."""

    def __init__(self, *claims: dict[str, Any]):
        self.claims = {c["metadata"]["name"]: c for c in claims}
        self.read: list[str] = []

    def __call__(self, name: str) -> Any:
        self.read.append(name)
        return self.claims[name]


BOOT = {"name": "boot", "type": "Classic", "requested": "20Gi"}
DATA = {"name": "data", "type": "Managed"}
DATA_SPEC = {"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc"}}


def test_memory_and_classic_disks_on_the_vms_class_and_pvcs_on_theirs():
    claims = Claims(pvc("data-pvc", "silver", "50Gi"))
    scratch = {"name": "scratch", "type": "Classic", "requested": "1Gi"}

    totals = requested_storage(vm([BOOT, scratch, DATA], [DATA_SPEC]), True, claims)

    assert totals == {"gold": 4 * GiB + 20 * GiB + 1 * GiB, "silver": 50 * GiB}
    assert claims.read == ["data-pvc"]


def test_without_memory_the_memory_is_not_counted():
    assert requested_storage(vm([BOOT]), False, Claims()) == {"gold": 20 * GiB}
    # nor need it be known
    assert requested_storage(vm([BOOT], memory=None), False, Claims()) == {"gold": 20 * GiB}


def test_an_instance_volume_claim_counts_its_own_size_and_class_without_reading_a_pvc():
    specs = [{"name": "fast", "persistentVolumeClaim": {"claimName": "fast-pvc", "instanceVolumeClaim": {
                 "storageClass": "nvme", "size": "100Gi"}}},
             {"name": "fast2", "persistentVolumeClaim": {"claimName": "fast2-pvc", "instanceVolumeClaim": {
                 "size": "10Gi"}}}]  # no class of its own: the VM's
    volumes = [{"name": "fast", "type": "Managed"}, {"name": "fast2", "type": "Managed"}]
    claims = Claims()

    assert requested_storage(vm(volumes, specs), False, claims) == {"nvme": 100 * GiB, "gold": 10 * GiB}
    assert claims.read == []


def test_a_managed_volume_without_a_claim_in_the_spec_is_not_counted():
    assert requested_storage(vm([BOOT, DATA], []), False, Claims()) == {"gold": 20 * GiB}


def test_a_vm_without_disks_or_memory_requests_nothing():
    assert requested_storage(vm([]), False, Claims()) == {}


@pytest.mark.parametrize("machine, memory, claims, missing", [
    (vm([BOOT], memory=None), True, Claims(), "status.hardware.memory.total"),
    (vm([BOOT], storage_class=None), True, Claims(), "spec.storageClass"),
    (vm([{"name": "boot", "type": "Classic"}]), False, Claims(), 'classic disk "boot" has no size'),
    (vm([BOOT], storage_class=None), False, Claims(), 'classic disk "boot"'),
    (vm([DATA], [DATA_SPEC]), False, Claims(pvc("data-pvc", None, "5Gi")),
     'PersistentVolumeClaim "data-pvc" has no storage class or request'),
    (vm([DATA], [DATA_SPEC]), False, Claims(pvc("data-pvc", "silver", None)),
     'PersistentVolumeClaim "data-pvc" has no storage class or request'),
    (vm([{"name": "odd", "type": "Remote"}]), False, Claims(), 'volume "odd" has unsupported volume type "Remote"'),
], ids=["memory-size", "memory-class", "disk-size", "disk-class", "pvc-class", "pvc-request", "volume-type"])
def test_what_cannot_be_known_is_refused_by_name(machine, memory, claims, missing):
    with pytest.raises(ValueError, match=missing.replace(".", r"\.")):
        requested_storage(machine, memory, claims)
