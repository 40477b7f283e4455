"""vCenter's change notifications for every VM's `snapshot` property (PropertyCollector WaitForUpdatesEx on
a ContainerView), collected by one thread per worker process. The first update names every VM, so a worker
that starts (or reconnects) also resyncs everything it may have missed."""

from __future__ import annotations

import logging
import threading

from pyVmomi import vim, vmodl

from activities.vsphere.properties import service_content
from runtime.vsphere import VSphereSession

log = logging.getLogger("vmsnap.vsphere.feed")

WAIT_SECONDS = 10


class SnapshotChangeFeed:
    def __init__(self, session: VSphereSession):
        self.session = session
        self._changed: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _ensure_started(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vsphere-snapshot-feed", daemon=True)
                self._thread.start()

    def take(self, timeout: float) -> set[str]:
        """VM morefs whose snapshot tree changed since the last call (waits up to `timeout` for one)."""
        self._ensure_started()
        with self._cond:
            self._cond.wait_for(lambda: bool(self._changed), timeout=timeout)
            changed, self._changed = self._changed, set()
            return changed

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
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
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
                version = update.version
                changed = {o.obj._moId for fs in update.filterSet or [] for o in fs.objectSet or []}
                if changed:
                    with self._cond:
                        self._changed |= changed
                        self._cond.notify_all()
        finally:
            try:
                collector.DestroyPropertyCollector()
                view.DestroyView()
            except Exception:  # noqa: BLE001 - the session may be gone already
                pass

    def stop(self) -> None:
        self._stop.set()
