"""The VirtualMachine objects bound to vCenter VMs (status.uniqueID), kept by a list + watch in the worker, so the
tree watch neither lists every VM on each round nor wakes up for vCenter VMs no object here is bound to (other
clusters', other tenants': most of a shared vCenter's snapshot changes)."""

from __future__ import annotations

import threading
from typing import Any

from api.names import VM_PLURAL
from contract.payloads import VMRef, VMTarget
from runtime.informer import Event, Informer
from runtime.kube import Kube

# a full re-delivery now and then, as the bridge's informers (the watch's own resync is the safety net anyway)
RESYNC_SECONDS = 600.0


def binding_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """All of a VirtualMachine this cache reads: its name, namespace, uid and uniqueID."""
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "status": {"uniqueID": (obj.get("status") or {}).get("uniqueID")}}


class BoundVMs:
    def __init__(self, kube: Kube, namespace: str = ""):
        self._by_uid: dict[str, VMTarget] = {}
        self._lock = threading.Lock()
        self.informer = Informer(kube, VM_PLURAL, self._deliver, resync_seconds=RESYNC_SECONDS,
                                 namespace=namespace, transform=binding_fields)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.informer.run, name="informer-bound-vms", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.informer.stop()

    @property
    def synced(self) -> bool:
        """True once the first list is in: until then, nothing is answered from the cache."""
        return self.informer.synced.is_set()

    def _deliver(self, event: Event) -> None:
        obj = event.obj
        meta, moref = obj["metadata"], obj["status"]["uniqueID"]
        with self._lock:
            if event.kind == "DELETED" or not moref:
                self._by_uid.pop(meta["uid"], None)
            else:
                self._by_uid[meta["uid"]] = VMTarget(vm=VMRef(namespace=meta["namespace"], name=meta["name"]),
                                                     vm_moref=moref)

    def targets(self, morefs: list[str] | None) -> list[VMTarget]:
        """The objects bound to these vCenter VMs (every bound one when `morefs` is None)."""
        wanted = set(morefs) if morefs is not None else None
        with self._lock:
            return sorted((t for t in self._by_uid.values() if wanted is None or t.vm_moref in wanted),
                          key=lambda t: (t.vm.namespace, t.vm.name))

    def bound(self, morefs: set[str]) -> set[str]:
        """Those of these vCenter VMs some object here is bound to."""
        with self._lock:
            known = {t.vm_moref for t in self._by_uid.values()}
        return morefs & known
