"""The snapshot trees this worker process last wrote to Kubernetes, per vCenter VM (runtime/last_written.py). Every
operation writes the tree it read right after its vCenter task; vCenter then reports that same change to the
change feed, which drops it when the reported tree is the one written here (the operation's own echo), so the tree
watch does not list, read and compare the VM a second time. A tree written by another process (or forgotten, past
the bound) is not known here: the watch resyncs it, as it always did, which is redundant, never wrong."""

from __future__ import annotations

from contract.payloads import SnapshotTree
from runtime.last_written import LastWritten

# VMs whose last tree is kept; beyond, the oldest is forgotten (its next echo costs one resync)
REMEMBERED_TREES = 10_000


def tree_shape(tree: SnapshotTree) -> str:
    """What the tree sync writes from: the nodes, their order and the current snapshot (not the usage, which
    the change feed never carries)."""
    return tree.model_dump_json(exclude={"usage"})


def written_trees() -> LastWritten[str, str]:
    """VM moref → the shape of the tree last written."""
    return LastWritten("snapshot_tree", REMEMBERED_TREES)
