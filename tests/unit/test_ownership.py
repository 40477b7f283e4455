"""Pure pieces of snapshot ownership and failed deletes: which tree nodes are Managed, operation IDs of
retries, the retry schedule, links to the workflow."""

from __future__ import annotations

from datetime import timedelta

from activities.kube.annotations import annotate
from activities.kube_vm import managed_snapshots, snapshot_children, vm_tree_status
from api import VirtualMachineSnapshot
from api.meta import ObjectMeta
from api.names import SnapshotReferenceType
from contract.payloads import DeletePlan, Operation, OperationKind, SnapshotNode, SnapshotRef, SnapshotTree, VMRef
from runtime.telemetry import WorkflowLinks
from workflows.delete_snapshot import retry_delay


def node(name: str, moref: str, *children: SnapshotNode) -> SnapshotNode:
    return SnapshotNode(name=name, moref=moref, power_state="PoweredOff", children=list(children))


def snapshot(name: str, unique_id: str | None) -> VirtualMachineSnapshot:
    return VirtualMachineSnapshot.model_validate({"metadata": {"name": name}, "spec": {"vmName": "vm"},
                                                  "status": {"uniqueID": unique_id} if unique_id else {}})


def test_a_snapshot_that_only_shares_an_objects_name_is_unmanaged() -> None:
    # by hand "dup" (snapshot-1), then the object's own "dup" (snapshot-2) beside it
    tree = SnapshotTree(roots=[node("dup", "snapshot-1", node("dup", "snapshot-2"))], current="snapshot-2")
    managed = managed_snapshots([snapshot("dup", "snapshot-2")], {})
    current, roots = vm_tree_status(tree, managed)
    assert (current.type, current.name) == (SnapshotReferenceType.MANAGED, "dup")
    assert [(r.type, r.name) for r in roots] == [(SnapshotReferenceType.UNMANAGED, "")]
    assert snapshot_children(tree, managed) == {"dup": []}


def test_a_create_recording_its_snapshot_claims_it_before_its_status_shows_it() -> None:
    tree = SnapshotTree(roots=[node("dup", "snapshot-1"), node("dup", "snapshot-2")], current="snapshot-2")
    assert managed_snapshots([snapshot("dup", None)], {}) == {}
    managed = managed_snapshots([snapshot("dup", None)], {"snapshot-2": "dup"})
    _, roots = vm_tree_status(tree, managed)
    assert [r.type for r in roots] == [SnapshotReferenceType.UNMANAGED, SnapshotReferenceType.MANAGED]


def test_retried_deletes_have_their_own_workflow_ids() -> None:
    op = Operation(kind=OperationKind.DELETE, vm=VMRef(namespace="ns", name="vm"), snapshot_name="s",
                   snapshot_uid="u")
    assert op.workflow_id == "delete-snapshot/ns/s/u"
    assert op.model_copy(update={"retry": 3}).workflow_id == "delete-snapshot/ns/s/u/retry-3"


def test_the_retry_wait_doubles_up_to_its_cap() -> None:
    plan = DeletePlan(snapshot=SnapshotRef(namespace="ns", name="s", uid="u"), retry_seconds=300,
                      retry_max_seconds=3600)
    assert [retry_delay(plan, n) for n in range(6)] == [timedelta(seconds=s)
                                                        for s in (300, 600, 1200, 2400, 3600, 3600)]


def test_workflow_links_escape_the_id() -> None:
    links = WorkflowLinks("http://localhost:8233/", "default")
    assert links.url("create-snapshot/ns/s/u") == \
        "http://localhost:8233/namespaces/default/workflows/create-snapshot%2Fns%2Fs%2Fu"
    assert WorkflowLinks().url("x") is None
    assert WorkflowLinks().current() is None  # outside an activity


def test_annotate_sets_replaces_and_removes() -> None:
    meta = ObjectMeta(annotations={"keep": "1", "old-link": "x"})
    assert annotate(meta, {"new": "2", "old-link": None})
    assert meta.annotations == {"keep": "1", "new": "2"}
    assert not annotate(meta, {"new": "2"})
