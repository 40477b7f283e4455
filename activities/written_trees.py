"""The snapshot tree this worker process last wrote to Kubernetes, per vCenter VM. Every operation writes the
tree it read right after its vCenter task; vCenter then reports that same change to the change feed. The feed
asks here whether a reported tree is one this process has written already (the operation's own echo) and
drops it, so the tree watch does not list, read and compare the VM a second time. A tree written by another
process is not known here: the watch resyncs it, as it always did, which is redundant, never wrong."""

from __future__ import annotations

import threading

from contract.payloads import SnapshotTree


def tree_shape(tree: SnapshotTree) -> str:
    """What the tree sync writes from: the nodes, their order and the current snapshot (not the usage, which
    the change feed never carries)."""
    return tree.model_dump_json(exclude={"usage"})


class WrittenTrees:
    def __init__(self) -> None:
        self._shapes: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, vm_moref: str, tree: SnapshotTree) -> None:
        with self._lock:
            self._shapes[vm_moref] = tree_shape(tree)

    def written(self, vm_moref: str, shape: str) -> bool:
        with self._lock:
            return self._shapes.get(vm_moref) == shape
