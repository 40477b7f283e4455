"""The VirtualMachine objects `vmsnap-import-vms` writes for vCenter VMs: their names, their status, and the
Importer that creates or updates them through Kube.

  name     the vSphere name lowercased and made a DNS-1123 label (`DC0_H0_VM0` → `dc0-h0-vm0`)
  spec     powerState (the VM's current one, so nothing tries to change it) and storageClass (on update only when
           given, so a re-run keeps a class set since)
  status   uniqueID (the VM's moref, e.g. vm-57), instanceUUID, biosUUID, powerState, hardware.memory.total
           (`32Mi`), and one Classic volume per virtual disk, named and sized as VM Operator does (the base
           disk's file name, requested = capacity) — what the snapshot service needs to take and size snapshots.
Writing again changes nothing unless vCenter changed. An object that describes another vSphere VM
(status.uniqueID differs) is never taken over: that is the outcome CONFLICT.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from api.meta import ObjectMeta
from api.names import VM_PLURAL, VolumeType
from api.quantity import format_binary_bytes
from api.virtualmachine import (
    HardwareStatus,
    MemoryAllocationStatus,
    VirtualMachine,
    VirtualMachineSpec,
    VirtualMachineStatus,
    VolumeStatus,
)
from runtime.kube import Kube
from runtime.vsphere_inventory import VSphereVM

DEFAULT_STORAGE_CLASS = "vmsnap-default"
DNS_LABEL_MAX_LENGTH = 63


def kubernetes_name(vsphere_name: str) -> str:
    """A DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit."""
    name = re.sub(r"[^a-z0-9-]+", "-", vsphere_name.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")[:DNS_LABEL_MAX_LENGTH].rstrip("-")
    return name or "vm"


def desired_status(vm: VSphereVM) -> VirtualMachineStatus:
    memory = (HardwareStatus(memory=MemoryAllocationStatus(total=format_binary_bytes(vm.memory_mb * 2**20)))
              if vm.memory_mb else None)
    volumes = [VolumeStatus(name=d.name, type=VolumeType.CLASSIC, requested=format_binary_bytes(d.capacity_bytes),
                            limit=format_binary_bytes(d.capacity_bytes), disk_uuid=d.uuid, attached=True)
               for d in vm.disks]
    return VirtualMachineStatus(unique_id=vm.moref, instance_uuid=vm.instance_uuid, bios_uuid=vm.bios_uuid,
                                power_state=vm.power_state, hardware=memory, volumes=volumes)


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"


class Importer:
    def __init__(self, kube: Kube, namespace: str, storage_class: str | None):
        self.kube = kube
        self.namespace = namespace
        self.storage_class = storage_class

    def import_vm(self, vm: VSphereVM) -> tuple[str, Outcome, str]:
        """(object name, outcome, detail)."""
        name = kubernetes_name(vm.name)
        existing = self.kube.get_object(VM_PLURAL, self.namespace, name)
        if existing is None:
            self._create(name, vm)
            self._patch_status(name, existing_status={}, vm=vm)
            return name, Outcome.CREATED, ""
        current = VirtualMachine.model_validate(existing)
        if current.status.unique_id not in (None, vm.moref):
            return name, Outcome.CONFLICT, (f"{self.namespace}/{name} describes vSphere VM {current.status.unique_id}"
                                            f", not {vm.moref} ({vm.name})")
        changed = self._patch_spec(name, current, vm)
        changed |= self._patch_status(name, existing.get("status") or {}, vm)
        return name, Outcome.UPDATED if changed else Outcome.UNCHANGED, ""

    def _create(self, name: str, vm: VSphereVM) -> None:
        body = VirtualMachine(metadata=ObjectMeta(name=name, namespace=self.namespace),
                              spec=VirtualMachineSpec(power_state=vm.power_state,
                                                      storage_class=self.storage_class or DEFAULT_STORAGE_CLASS))
        self.kube.create_object(VM_PLURAL, self.namespace, body.to_kube())

    def _patch_spec(self, name: str, current: VirtualMachine, vm: VSphereVM) -> bool:
        wanted: dict[str, Any] = {}
        if vm.power_state is not None and current.spec.power_state != vm.power_state:
            wanted["powerState"] = str(vm.power_state)
        storage_class = self.storage_class or (None if current.spec.storage_class else DEFAULT_STORAGE_CLASS)
        if storage_class is not None and current.spec.storage_class != storage_class:
            wanted["storageClass"] = storage_class
        if wanted:
            self.kube.patch_object(VM_PLURAL, self.namespace, name, {"spec": wanted})
        return bool(wanted)

    def _patch_status(self, name: str, existing_status: dict[str, Any], vm: VSphereVM) -> bool:
        """Merge our fields into the status; volumes other than Classic ones (PVCs) are kept as they are."""
        wanted = desired_status(vm).to_kube()
        others = [v for v in existing_status.get("volumes") or [] if v.get("type") != VolumeType.CLASSIC]
        wanted["volumes"] = others + wanted.get("volumes", [])
        if not wanted["volumes"] and not existing_status.get("volumes"):
            del wanted["volumes"]  # a VM without disks: nothing to write, and nothing to compare
        if all(existing_status.get(key) == value for key, value in wanted.items()):
            return False
        self.kube.patch_object(VM_PLURAL, self.namespace, name, {"status": wanted}, status=True)
        return True
