"""`vmsnap-import-vms`: describe existing vCenter VMs as VirtualMachine objects, for clusters without VM Operator.

    VSPHERE_URL=https://user:pass@vcenter/sdk KUBECONFIG=~/.kube/config \\
        vmsnap-import-vms --namespace my-team --name 'DC0_*' [--path '/DC0/vm/prod/*'] [--storage-class gold]

For each selected VM (templates are skipped) it creates or updates `VirtualMachine <name>` in the namespace:
  name     the vSphere name lowercased and made a DNS-1123 label (`DC0_H0_VM0` → `dc0-h0-vm0`)
  spec     powerState (the VM's current one, so nothing tries to change it) and storageClass (--storage-class;
           on update only when the flag is given, so a re-run keeps a class set since)
  status   uniqueID (the VM's moref, e.g. vm-57), instanceUUID, biosUUID, powerState, hardware.memory.total
           (`32Mi`), and one Classic volume per virtual disk, named and sized as VM Operator does (the base
           disk's file name, requested = capacity) — what the snapshot service needs to take and size snapshots.
Re-running it changes nothing unless vCenter changed. It never takes over an object that describes another
vSphere VM (status.uniqueID differs): such a VM is reported and the command exits with status 1.

vCenter is read through the PropertyCollector with explicit property paths over a ContainerView (one round trip
for the whole inventory), never through pyVmomi's lazy attribute reads. Settings come from the environment like
the worker's (runtime/settings.py): VSPHERE_URL, VSPHERE_INSECURE, VSPHERE_CA_FILE, KUBECONFIG.
"""

from __future__ import annotations

import argparse
import fnmatch
import posixpath
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pyVmomi import vim, vmodl

from activities.vsphere.snapshots import VSPHERE_POWER_STATES
from api.meta import ObjectMeta
from api.names import VM_PLURAL, PowerState, VolumeType
from api.quantity import format_binary_bytes
from api.virtualmachine import (
    HardwareStatus,
    MemoryAllocationStatus,
    VirtualMachine,
    VirtualMachineSpec,
    VirtualMachineStatus,
    VolumeStatus,
)
from runtime.kube import Kube, api_client
from runtime.settings import Settings
from runtime.vsphere import VSphereSession

DEFAULT_STORAGE_CLASS = "vmsnap-default"
DNS_LABEL_MAX_LENGTH = 63

VM_PROPERTIES = ["name", "parent", "parentVApp", "config.template", "config.instanceUuid", "config.uuid",
                 "config.hardware.memoryMB", "config.hardware.device", "runtime.powerState"]
# What an inventory path is made of: /<datacenter>/vm/<folders>/<vm>. A vApp's VMs hang under the vApp, which
# sits in a VM folder (parentFolder).
CONTAINER_PROPERTIES: dict[type, list[str]] = {
    vim.Folder: ["name", "parent"],
    vim.Datacenter: ["name", "parent"],
    vim.VirtualApp: ["name", "parentFolder"],
}

@dataclass(frozen=True)
class Disk:
    name: str
    capacity_bytes: int
    uuid: str | None


@dataclass(frozen=True)
class VSphereVM:
    moref: str
    name: str
    inventory_path: str | None
    instance_uuid: str | None
    bios_uuid: str | None
    power_state: PowerState | None
    memory_mb: int | None
    disks: list[Disk] = field(default_factory=list)


# --- vCenter ------------------------------------------------------------------------------------------------------


def read_inventory(si: vim.ServiceInstance) -> list[VSphereVM]:
    """Every VM that is not a template, with its inventory path, in one PropertyCollector round trip."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine, *CONTAINER_PROPERTIES],
                                                   True)
    try:
        traverse_view = vmodl.query.PropertyCollector.TraversalSpec(name="view", type=vim.view.ContainerView,
                                                                    path="view", skip=False)
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traverse_view])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES)]
            + [vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)
               for kind, paths in CONTAINER_PROPERTIES.items()])
        found = content.propertyCollector.RetrieveContents([spec])
    finally:
        view.Destroy()

    properties = {item.obj._moId: (item.obj, {p.name: p.val for p in item.propSet or []}) for item in found}
    vms = []
    for moref, (obj, props) in properties.items():
        if not isinstance(obj, vim.VirtualMachine) or props.get("config.template"):
            continue
        vms.append(VSphereVM(
            moref=moref, name=props["name"],
            inventory_path=_inventory_path(moref, properties, content.rootFolder._moId),
            instance_uuid=props.get("config.instanceUuid"), bios_uuid=props.get("config.uuid"),
            power_state=VSPHERE_POWER_STATES.get(str(props.get("runtime.powerState"))),
            memory_mb=props.get("config.hardware.memoryMB"),
            disks=_disks(props.get("config.hardware.device") or [])))
    return sorted(vms, key=lambda vm: vm.name)


def _inventory_path(moref: str, properties: dict[str, tuple[Any, dict[str, Any]]], root: str) -> str | None:
    """/DC0/vm/folder/name: the names from the VM up to the root folder (which is not part of inventory paths,
    nor of the view); None if a link of the chain is not in the view."""
    names: list[str] = []
    current = moref
    while current != root:
        if current not in properties:
            return None
        _, props = properties[current]
        parent = props.get("parent") or props.get("parentVApp") or props.get("parentFolder")
        if parent is None:
            return None
        names.append(props["name"])
        current = parent._moId
    return "/" + "/".join(reversed(names))


def _disks(devices: Sequence[vim.vm.device.VirtualDevice]) -> list[Disk]:
    disks = []
    for device in devices:
        if not isinstance(device, vim.vm.device.VirtualDisk):
            continue
        capacity = device.capacityInBytes or (device.capacityInKB or 0) * 1024
        backing = device.backing
        uuid = getattr(backing, "uuid", None)
        disks.append(Disk(name=_disk_name(backing, uuid, device.key), capacity_bytes=capacity, uuid=uuid))
    return disks


def _disk_name(backing: Any, uuid: str | None, key: int) -> str:
    """VM Operator's name for a classic disk: its file's base name without extension, taken from the base disk
    of the chain (a VM with snapshots writes to a delta file such as DC0_H0_VM0-000001.vmdk)."""
    while getattr(backing, "parent", None) is not None:
        backing = backing.parent
    file_name = getattr(backing, "fileName", None)
    if file_name:
        base = posixpath.basename(file_name.split("] ", 1)[-1])
        return posixpath.splitext(base)[0]
    return f"disk-{uuid or key}"


def select(vms: Sequence[VSphereVM], name_globs: Sequence[str], path_globs: Sequence[str]) -> list[VSphereVM]:
    """VMs whose name matches a --name glob or whose inventory path matches a --path glob (case-sensitive,
    as vSphere names are)."""
    return [vm for vm in vms
            if any(fnmatch.fnmatchcase(vm.name, g) for g in name_globs)
            or (vm.inventory_path is not None and any(fnmatch.fnmatchcase(vm.inventory_path, g) for g in path_globs))]


# --- Kubernetes ---------------------------------------------------------------------------------------------------


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


# --- command ------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vmsnap-import-vms",
        description="Create or update a VirtualMachine object for each selected vCenter VM (VSPHERE_URL, "
                    "VSPHERE_INSECURE, VSPHERE_CA_FILE and KUBECONFIG are read from the environment).")
    parser.add_argument("--namespace", "-n", required=True, help="namespace of the VirtualMachine objects")
    parser.add_argument("--name", action="append", default=[], metavar="GLOB",
                        help="select VMs whose vSphere name matches (e.g. 'DC0_*'); repeatable")
    parser.add_argument("--path", action="append", default=[], metavar="GLOB",
                        help="select VMs by inventory path (e.g. /DC0/vm/DC0_H0_VM0 or '/DC0/vm/prod/*'); "
                             "repeatable")
    parser.add_argument("--storage-class", default=None,
                        help=f"spec.storageClass of the objects (default {DEFAULT_STORAGE_CLASS} for new objects; "
                             "existing objects keep theirs unless given)")
    args = parser.parse_args(argv)
    if not args.name and not args.path:
        parser.error("select VMs with --name and/or --path (--name '*' selects every VM)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    try:
        session = VSphereSession(settings)
        try:
            inventory = session.run(read_inventory)
        finally:
            session.close()
    except (ValueError, OSError, vim.fault.InvalidLogin) as error:
        print(f"cannot read the vCenter inventory ({settings.vsphere_host or 'VSPHERE_URL unset'}): "
              f"{getattr(error, 'msg', None) or error}", file=sys.stderr)
        return 2
    selected = select(inventory, args.name, args.path)
    if not selected:
        print("no VM matches the selection", file=sys.stderr)
        return 1

    importer = Importer(Kube(api_client(settings)), args.namespace, args.storage_class)
    claimed: dict[str, VSphereVM] = {}
    failed = False
    for vm in selected:
        name = kubernetes_name(vm.name)
        if name in claimed:
            print(f"conflict {args.namespace}/{name}: both {claimed[name].name} ({claimed[name].moref}) and "
                  f"{vm.name} ({vm.moref}) map to this name; {vm.name} was not imported", file=sys.stderr)
            failed = True
            continue
        claimed[name] = vm
        name, outcome, detail = importer.import_vm(vm)
        if outcome is Outcome.CONFLICT:
            print(f"conflict {detail}; {vm.name} was not imported", file=sys.stderr)
            failed = True
        else:
            print(f"{outcome} {args.namespace}/{name} ({vm.moref} {vm.inventory_path or vm.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
