"""`vmsnap-import-vms` (worker/import_vms.py) run as a command against the vCenter simulator and the real
apiserver: VirtualMachine objects describe the vCenter VMs, a re-run changes nothing, and an object that
describes another vSphere VM is never taken over. Expected values are read from vCenter here independently
(SearchIndex and the VM's own properties), not through the importer's code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubernetes import client
from pyVmomi import vim

from api.names import GROUP, VERSION, VM_PLURAL
from api.quantity import format_binary_bytes
from tests.admission.kube_objects import vm_manifest
from worker.vm_importer import kubernetes_name

REPO = Path(__file__).resolve().parents[2]
POWER_STATES = {"poweredOn": "PoweredOn", "poweredOff": "PoweredOff", "suspended": "Suspended"}


def run_import(vcsim, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VSPHERE_URL": vcsim.url, "VSPHERE_INSECURE": "true", "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run([sys.executable, "-m", "worker.import_vms", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    print(done.stdout, done.stderr)
    return done


def expected_from_vcenter(si: vim.ServiceInstance, inventory_path: str) -> tuple[str, dict]:
    vm = si.content.searchIndex.FindByInventoryPath(inventory_path)
    assert vm is not None, inventory_path
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    return vm._moId, {
        "uniqueID": vm._moId,
        "instanceUUID": vm.config.instanceUuid,
        "biosUUID": vm.config.uuid,
        "powerState": POWER_STATES[vm.runtime.powerState],
        "hardware": {"memory": {"total": format_binary_bytes(vm.config.hardware.memoryMB * 2**20)}},
        "volumes": [{"name": Path(d.backing.fileName.split("] ")[-1]).stem, "type": "Classic",
                     "requested": format_binary_bytes(d.capacityInBytes),
                     "limit": format_binary_bytes(d.capacityInBytes),
                     "diskUUID": d.backing.uuid, "attached": True} for d in disks],
    }


def get_vm(kube_api: client.ApiClient, namespace: str, name: str) -> dict:
    return client.CustomObjectsApi(kube_api).get_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, name)


def test_import_by_name_glob_creates_one_object_per_vm_and_a_rerun_changes_nothing(
        vcsim, vsphere, kube_api: client.ApiClient, kubeconfig: Path, namespace: str):
    first = run_import(vcsim, kubeconfig, "--namespace", namespace, "--name", "DC0_H0_VM[01]")

    assert first.returncode == 0, first.stderr
    assert [line.split()[:2] for line in first.stdout.splitlines()] == [
        ["created", f"{namespace}/dc0-h0-vm0"], ["created", f"{namespace}/dc0-h0-vm1"]]
    versions = {}
    for vsphere_name, name in (("DC0_H0_VM0", "dc0-h0-vm0"), ("DC0_H0_VM1", "dc0-h0-vm1")):
        moref, status = expected_from_vcenter(vsphere, f"/DC0/vm/{vsphere_name}")
        assert status["volumes"] and status["hardware"]["memory"]["total"] == "32Mi"
        obj = get_vm(kube_api, namespace, name)
        assert obj["spec"] == {"powerState": status["powerState"], "storageClass": "vmsnap-default"}
        assert obj["status"] == status
        assert obj["status"]["uniqueID"] == vcsim.control.vms()[vsphere_name] == moref
        versions[name] = obj["metadata"]["resourceVersion"]

    again = run_import(vcsim, kubeconfig, "--namespace", namespace, "--name", "DC0_H0_VM[01]")

    assert again.returncode == 0, again.stderr
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["unchanged", "unchanged"]
    assert {n: get_vm(kube_api, namespace, n)["metadata"]["resourceVersion"] for n in versions} == versions


def test_import_by_inventory_path_with_a_storage_class(vcsim, vsphere, kube_api: client.ApiClient,
                                                       kubeconfig: Path, namespace: str):
    done = run_import(vcsim, kubeconfig, "--namespace", namespace, "--path", "/DC0/vm/DC0_C0_RP0_VM1",
                      "--storage-class", "gold")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["created", f"{namespace}/dc0-c0-rp0-vm1"]
    assert len(done.stdout.splitlines()) == 1
    _, status = expected_from_vcenter(vsphere, "/DC0/vm/DC0_C0_RP0_VM1")
    obj = get_vm(kube_api, namespace, "dc0-c0-rp0-vm1")
    assert obj["spec"]["storageClass"] == "gold"
    assert obj["status"] == status


def test_an_object_describing_another_vsphere_vm_is_not_taken_over(vcsim, kube_api: client.ApiClient,
                                                                     kubeconfig: Path, namespace: str):
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, vm_manifest("dc0-h0-vm1"))
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, VM_PLURAL, "dc0-h0-vm1",
                                                 {"status": {"uniqueID": "vm-elsewhere"}})

    done = run_import(vcsim, kubeconfig, "--namespace", namespace, "--name", "DC0_H0_VM*")

    assert done.returncode == 1
    assert f"conflict {namespace}/dc0-h0-vm1 describes vSphere VM vm-elsewhere" in done.stderr
    assert done.stdout.split()[:2] == ["created", f"{namespace}/dc0-h0-vm0"]
    assert get_vm(kube_api, namespace, "dc0-h0-vm1")["status"] == {"uniqueID": "vm-elsewhere"}


def test_nothing_selected_is_an_error(vcsim, kubeconfig: Path, namespace: str):
    done = run_import(vcsim, kubeconfig, "--namespace", namespace, "--name", "no-such-vm-*")

    assert done.returncode == 1
    assert "no VM matches the selection" in done.stderr


def test_vsphere_names_become_dns_1123_labels():
    assert kubernetes_name("DC0_H0_VM0") == "dc0-h0-vm0"
    assert kubernetes_name("  Web Server (prod) #2 ") == "web-server-prod-2"
    assert kubernetes_name("db.example.com") == "db-example-com"
    assert kubernetes_name("___") == "vm"
    long_name = kubernetes_name("A" * 62 + "_B")
    assert len(long_name) <= 63 and not long_name.endswith("-")
