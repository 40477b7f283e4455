"""The vCenter inventory as `vmsnap-import-vms` reads it: every VM that is not a template, with its inventory path,
identity, power state, memory and disks.

vCenter is read through the PropertyCollector with explicit property paths over a ContainerView (one round trip
for the whole inventory), never through pyVmomi's lazy attribute reads.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim, vmodl

from api.names import PowerState
from runtime.settings import Settings
from runtime.vsphere import VSphereSession, inventory_view

# vSphere's power states (the values of vim.VirtualMachine.PowerState) → the API's
VSPHERE_POWER_STATES = {
    "poweredOn": PowerState.POWERED_ON,
    "poweredOff": PowerState.POWERED_OFF,
    "suspended": PowerState.SUSPENDED,
}

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


class InventoryUnreadable(Exception):
    """vCenter could not be reached, or refused the login; the message is the reason, in vSphere's words."""


def read_vcenter_inventory(settings: Settings) -> list[VSphereVM]:
    """One session, one read of the inventory (`read_inventory`), closed again. InventoryUnreadable if vCenter
    cannot be reached or refuses the login."""
    try:
        session = VSphereSession(settings)
        try:
            return session.run(read_inventory)
        finally:
            session.close()
    except (ValueError, OSError, vim.fault.InvalidLogin) as error:
        raise InventoryUnreadable(getattr(error, "msg", None) or str(error)) from error


def read_inventory(si: vim.ServiceInstance) -> list[VSphereVM]:
    """Every VM that is not a template, with its inventory path, in one PropertyCollector round trip."""
    content = si.RetrieveContent()
    view = inventory_view(content, [vim.VirtualMachine, *CONTAINER_PROPERTIES])
    specs = vmodl.query.PropertyCollector
    try:
        traverse_view = specs.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
        spec = specs.FilterSpec(
            objectSet=[specs.ObjectSpec(obj=view, skip=True, selectSet=[traverse_view])],
            propSet=[specs.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES)]
            + [specs.PropertySpec(type=kind, pathSet=paths) for kind, paths in CONTAINER_PROPERTIES.items()])
        found = content.propertyCollector.RetrieveContents([spec])
    finally:
        view.Destroy()

    properties: dict[str, tuple[Any, dict[str, Any]]] = {
        item.obj._moId: (item.obj, {p.name: p.val for p in item.propSet or []}) for item in found}
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
    file_name: str | None = getattr(backing, "fileName", None)
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
