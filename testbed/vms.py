"""VirtualMachine objects for the end-to-end tests, bound to simulator VMs (as VM Operator would have them)."""

from __future__ import annotations

import time
from collections.abc import Callable

from kubernetes import client
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from activities.vsphere.properties import retrieve, virtual_machine
from api import VirtualMachine, VirtualMachineSnapshot
from api.names import API_VERSION, GROUP, SNAPSHOT_KIND, SNAPSHOT_PLURAL, VERSION, VM_KIND, VM_PLURAL

STORAGE_CLASS = "wcpglobal-storage-profile"


def connect(vcsim):
    return SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password,
                        disableSslCertValidation=True)


def create_vm(kube_api, vcsim, namespace: str, name: str, sim_vm: str, **spec) -> VirtualMachine:
    """A VirtualMachine object for `sim_vm`, with the status VM Operator would have written."""
    moref = vcsim.control.vms()[sim_vm]
    si = connect(vcsim)
    try:
        props = retrieve(si, virtual_machine(si, moref), [
            "config.instanceUuid", "config.uuid", "config.hardware.memoryMB", "config.hardware.device",
            "runtime.powerState"])
    finally:
        Disconnect(si)
    disks = [d for d in props["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualDisk)]
    power = {"poweredOn": "PoweredOn", "suspended": "Suspended"}.get(str(props["runtime.powerState"]), "PoweredOff")
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, {
        "apiVersion": API_VERSION, "kind": VM_KIND, "metadata": {"name": name},
        "spec": {"powerState": power, "storageClass": STORAGE_CLASS, "className": "best-effort-small",
                 "imageName": "photon-5", **spec}})
    status = {"uniqueID": moref, "instanceUUID": props["config.instanceUuid"], "biosUUID": props["config.uuid"],
              "powerState": power,
              "hardware": {"memory": {"total": f'{props["config.hardware.memoryMB"]}Mi'}},
              "volumes": [{"name": f"disk-{i}", "type": "Classic",
                           "requested": str(d.capacityInBytes or d.capacityInKB * 1024)}
                          for i, d in enumerate(disks)]}
    obj = custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, VM_PLURAL, name,
                                                       {"status": status})
    return VirtualMachine.model_validate(obj)


def snapshot_manifest(name: str, vm: str, **spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": SNAPSHOT_KIND, "metadata": {"name": name},
            "spec": {"vmName": vm, **spec}}


def get_snapshot(kube_api, namespace: str, name: str) -> VirtualMachineSnapshot:
    return VirtualMachineSnapshot.model_validate(client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, SNAPSHOT_PLURAL, name))


def get_vm(kube_api, namespace: str, name: str) -> VirtualMachine:
    return VirtualMachine.model_validate(client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, VM_PLURAL, name))


def eventually(check: Callable[[], object], timeout: float = 180, what: str = "condition") -> object:
    """Poll until `check` returns something truthy (its value is returned). The bound is a hang guard for a
    broken build, not a performance assertion."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as e:
            last_error = e
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout:.0f}s" + (f": {last_error}" if last_error else ""))


def vsphere_snapshot_names(vcsim, sim_vm: str) -> list[str]:
    """Every snapshot name in the VM's vSphere tree, duplicates included."""
    from activities.vsphere.snapshots import read_tree

    si = connect(vcsim)
    try:
        return [n.name for n in read_tree(si, virtual_machine(si, vcsim.control.vms()[sim_vm])).walk()]
    finally:
        Disconnect(si)
