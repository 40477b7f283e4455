"""vCenter's change notifications for every VM's `snapshot` property (PropertyCollector WaitForUpdatesEx on
a ContainerView), collected by one thread per worker process. The first update names every VM, so a worker
that starts (or reconnects) also resyncs everything it may have missed.

A change is handed over once it has settled for SETTLE_SECONDS, and not at all when the tree it reports is the
one this process has just written to Kubernetes itself (an operation's own change: activities/written_trees.py). The few
seconds cost nothing a user waits for (operations write their own tree) and save the tree watch a resync of
every VM after every operation."""

from __future__ import annotations

import logging
import threading
import time

from pyVmomi import vim, vmodl

from activities.vsphere.properties import service_content
from activities.vsphere.snapshots import tree_from_info
from activities.written_trees import tree_shape, written_trees
from runtime.last_written import LastWritten
from runtime.vsphere import VSphereSession, inventory_view

log = logging.getLogger("vmsnap.vsphere.feed")

WAIT_SECONDS = 10
# how long a change waits for the operation that made it to record its own write of the same tree
SETTLE_SECONDS = 2.0


class SnapshotChangeFeed:
    def __init__(self, session: VSphereSession, written: LastWritten[str, str] | None = None,
                 settle_seconds: float = SETTLE_SECONDS):
        self.session = session
        self.written = written or written_trees()
        self.settle_seconds = settle_seconds
        # VM moref → (the shape of the tree vCenter last reported, or None: resync whatever it is; when first seen)
        self._pending: dict[str, tuple[str | None, float]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _ensure_started(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vsphere-snapshot-feed", daemon=True)
                self._thread.start()

    def take(self, timeout: float) -> set[str]:
        """VM morefs whose snapshot tree changed since the last call and still needs writing to Kubernetes
        (waits up to `timeout` for one)."""
        self._ensure_started()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                due = self._settled(now)
                if due or now >= deadline:
                    return due
                next_due = min((seen + self.settle_seconds for _, seen in self._pending.values()), default=deadline)
                self._cond.wait(max(0.0, min(deadline, next_due) - now))

    def observe(self, vm_moref: str, shape: str | None) -> None:
        """vCenter reported the VM's tree (its shape; None for a VM that left or a tree to resync anyway)."""
        with self._cond:
            # the newest tree counts; the first report's time, so a VM that keeps changing is still handed over
            _, seen = self._pending.get(vm_moref, (None, time.monotonic()))
            self._pending[vm_moref] = (shape, seen)
            self._cond.notify_all()

    def _settled(self, now: float) -> set[str]:
        """Pop the changes that have settled; those whose tree this process has written already are dropped."""
        due: set[str] = set()
        for moref, (shape, seen) in list(self._pending.items()):
            if now - seen < self.settle_seconds:
                continue
            del self._pending[moref]
            if shape is None or not self.written.echo(moref, shape):
                due.add(moref)
        return due

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.session.run(self._watch)
            except Exception as e:  # noqa: BLE001 - vCenter restarts, session expiry: watch again
                log.warning("snapshot change feed interrupted (%s); watching again", e)
                self._stop.wait(2)

    def _watch(self, si: vim.ServiceInstance) -> None:
        content = service_content(si)
        collector = content.propertyCollector.CreatePropertyCollector()
        view = inventory_view(content, [vim.VirtualMachine])
        try:
            collector.CreateFilter(vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[
                    vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False,
                                                                type=vim.view.ContainerView)])],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine,
                                                                    pathSet=["snapshot"])]), True)
            version = ""
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=WAIT_SECONDS)
            while not self._stop.is_set():
                update = collector.WaitForUpdatesEx(version, options)
                if update is None:
                    continue
                first, version = not version, update.version
                for fs in update.filterSet or []:
                    for o in fs.objectSet or []:
                        # the first update (a start or a reconnect) resyncs every VM, whatever was written before
                        self.observe(o.obj._moId, None if first else _reported_shape(o))
        finally:
            try:
                collector.DestroyPropertyCollector()
                view.DestroyView()
            except Exception:  # noqa: BLE001 - the session may be gone already
                pass

    def stop(self) -> None:
        self._stop.set()


def _reported_shape(update: vmodl.query.PropertyCollector.ObjectUpdate) -> str | None:
    """The shape of the tree an update carries; None for a VM that left the inventory."""
    if update.kind == "leave":
        return None
    info = next((c.val for c in update.changeSet or [] if c.name == "snapshot" and c.op != "remove"), None)
    return tree_shape(tree_from_info(info))
