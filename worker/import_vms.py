"""`vmsnap-import-vms`: describe existing vCenter VMs as VirtualMachine objects, for clusters without VM Operator.

    VSPHERE_URL=https://user:pass@vcenter/sdk KUBECONFIG=~/.kube/config \\
        vmsnap-import-vms --namespace my-team --name 'DC0_*' [--path '/DC0/vm/prod/*'] [--storage-class gold]

For each selected VM (templates are skipped) it creates or updates `VirtualMachine <name>` in the namespace, as
worker/vm_importer.py describes (name, spec, status); vCenter is read in one round trip by
runtime/vsphere_inventory.py. Re-running it changes nothing unless vCenter changed. It never takes over an object
that describes another vSphere VM (status.uniqueID differs): such a VM is reported and the command exits with
status 1. Settings come from the environment like the worker's (runtime/settings.py): VSPHERE_URL,
VSPHERE_INSECURE, VSPHERE_CA_FILE, KUBECONFIG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.kube import Kube, api_client
from runtime.settings import Settings
from runtime.vsphere_inventory import InventoryUnreadable, VSphereVM, read_vcenter_inventory, select
from worker.vm_importer import DEFAULT_STORAGE_CLASS, Importer, Outcome, kubernetes_name


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
        inventory = read_vcenter_inventory(settings)
    except InventoryUnreadable as error:
        print(f"cannot read the vCenter inventory ({settings.vsphere_host or 'VSPHERE_URL unset'}): {error}",
              file=sys.stderr)
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
