"""Activities against the Kubernetes API for a VirtualMachine's snapshot status: the tree as vCenter has it
(`status.currentSnapshot`, `status.rootSnapshots`, each snapshot's `status.children`)."""

from __future__ import annotations

from temporalio import activity

from activities.kube.client import Kube
from api import SnapshotReference, VirtualMachine, VirtualMachineSnapshot
from api.operations import SnapshotNode, SnapshotTree, TreeSync


def _reference(node: SnapshotNode, managed: set[str]) -> SnapshotReference:
    return SnapshotReference.managed(node.name) if node.name in managed else SnapshotReference.unmanaged()


def _dump(refs: list[SnapshotReference] | None) -> list[dict] | None:
    return [r.to_kube() for r in refs] if refs else None


def vm_tree_status(tree: SnapshotTree, managed: set[str]) -> tuple[SnapshotReference | None, list[SnapshotReference]]:
    current_node = tree.by_moref(tree.current)
    current = _reference(current_node, managed) if current_node else None
    return current, [_reference(n, managed) for n in tree.roots]


def snapshot_children(tree: SnapshotTree, managed: set[str]) -> dict[str, list[SnapshotReference]]:
    """The direct children of every managed snapshot in the tree."""
    return {n.name: [_reference(c, managed) for c in n.children] for n in tree.walk() if n.name in managed}


class KubeVMActivities:
    def __init__(self, kube: Kube):
        self.kube = kube

    @activity.defn(name="kube_sync_snapshot_tree")
    def sync_snapshot_tree(self, sync: TreeSync) -> None:
        """Write vCenter's tree onto the VM and its snapshots. A snapshot is Managed when an object of that
        name exists in the VM's namespace *for this VM* (VM Operator matches by name only)."""
        ns = sync.vm.namespace
        managed = {s.name for s in self.kube.list_snapshots(ns) if s.vm_name == sync.vm.name and s.name}
        current, roots = vm_tree_status(sync.tree, managed)

        def write_vm(vm: VirtualMachine) -> bool:
            before = (_dump([vm.status.current_snapshot] if vm.status.current_snapshot else None),
                      _dump(vm.status.root_snapshots))
            vm.status.current_snapshot = current
            vm.status.root_snapshots = roots or None
            return before != (_dump([current] if current else None), _dump(roots))

        self.kube.update_vm(ns, sync.vm.name, write_vm, status=True)

        for name, children in snapshot_children(sync.tree, managed).items():
            def write_children(s: VirtualMachineSnapshot, children=children) -> bool:
                if _dump(s.status.children) == _dump(children):
                    return False
                s.status.children = children or None
                return True
            self.kube.update_snapshot(ns, name, write_children, status=True)
