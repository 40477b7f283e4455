"""A VM's snapshot tree as its status shows it (activities/kube_vm.py, pure): `status.currentSnapshot`,
`status.rootSnapshots` and each managed snapshot's `status.children`, as references by the owning object's name
(Managed) or nameless (Unmanaged). What test_ownership.py covers (a same-name snapshot someone else made, a
create's claim) is not repeated here."""

from __future__ import annotations

from activities.kube_vm import managed_snapshots, snapshot_children, vm_tree_status
from api import VirtualMachineSnapshot
from api.names import SnapshotReferenceType
from contract.payloads import SnapshotNode, SnapshotTree

MANAGED, UNMANAGED = SnapshotReferenceType.MANAGED, SnapshotReferenceType.UNMANAGED


def node(moref: str, *children: SnapshotNode) -> SnapshotNode:
    return SnapshotNode(name=f"name-of-{moref}", moref=moref, power_state="PoweredOn", children=list(children))


def refs(references) -> list[tuple[str, str | None]]:
    return [(r.type, r.name) for r in references]


# base ─┬─ nightly ── (by hand) ── before-upgrade  (current)
#       └─ (by hand)
# other-root
TREE = SnapshotTree(
    roots=[node("snapshot-1", node("snapshot-2", node("snapshot-3", node("snapshot-4"))), node("snapshot-5")),
           node("snapshot-6")],
    current="snapshot-4")
MANAGED_BY = {"snapshot-1": "base", "snapshot-2": "nightly", "snapshot-4": "before-upgrade", "snapshot-6": "other"}


def test_current_and_roots_name_the_owning_objects():
    current, roots = vm_tree_status(TREE, MANAGED_BY)

    assert (current.type, current.name) == (MANAGED, "before-upgrade"), "the current snapshot may be deep"
    assert refs(roots) == [(MANAGED, "base"), (MANAGED, "other")], "roots only, in vCenter's order"


def test_a_snapshot_made_in_vcenter_is_unmanaged_and_nameless_wherever_it_is():
    current, roots = vm_tree_status(TREE, {"snapshot-1": "base"})

    assert (current.type, current.name) == (UNMANAGED, "")
    assert refs(roots) == [(MANAGED, "base"), (UNMANAGED, "")]


def test_no_current_snapshot_or_a_stale_one_is_none():
    assert vm_tree_status(TREE.model_copy(update={"current": None}), MANAGED_BY)[0] is None
    assert vm_tree_status(TREE.model_copy(update={"current": "snapshot-99"}), MANAGED_BY)[0] is None


def test_a_vm_without_snapshots_has_no_current_and_no_roots():
    assert vm_tree_status(SnapshotTree(), MANAGED_BY) == (None, [])


def test_each_managed_snapshot_lists_its_direct_children_only():
    children = snapshot_children(TREE, MANAGED_BY)

    assert {name: refs(c) for name, c in children.items()} == {
        "base": [(MANAGED, "nightly"), (UNMANAGED, "")],
        "nightly": [(UNMANAGED, "")],         # its grandchild before-upgrade is under the unmanaged one
        "before-upgrade": [],                    # a leaf: children cleared
        "other": [],
    }, "an unmanaged snapshot has no object to write its children on"


def test_managed_snapshots_come_from_recorded_unique_ids_and_claims():
    def snapshot(name: str, unique_id: str | None) -> VirtualMachineSnapshot:
        return VirtualMachineSnapshot.model_validate({"metadata": {"name": name}, "spec": {"vmName": "vm"},
                                                      "status": {"uniqueID": unique_id} if unique_id else {}})

    objects = [snapshot("base", "snapshot-1"), snapshot("creating", None), snapshot("stale", "snapshot-2")]

    assert managed_snapshots(objects, {}) == {"snapshot-1": "base", "snapshot-2": "stale"}
    # the create recording snapshot-2 right now wins over an object that still records it
    assert managed_snapshots(objects, {"snapshot-2": "creating"}) == {"snapshot-1": "base",
                                                                      "snapshot-2": "creating"}
