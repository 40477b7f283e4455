"""Kubernetes Events on the snapshot and the VM for every transition that matters, so `kubectl describe`
tells the story. Rate-limited per object (a token bucket, like client-go's event recorder) so a flapping VM
cannot flood the apiserver; an event that cannot be written never fails the operation."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

from kubernetes import client

log = logging.getLogger("vmsnap.events")

COMPONENT = "vmsnap"
BURST = 10
REFILL_SECONDS = 30.0


class EventRecorder:
    def __init__(self, core: client.CoreV1Api, burst: int = BURST, refill_seconds: float = REFILL_SECONDS):
        self.core = core
        self.burst, self.refill_seconds = burst, refill_seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # object uid → (tokens, last refill)
        self._lock = threading.Lock()
        self.dropped = 0

    def _allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) / self.refill_seconds)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                self.dropped += 1
                return False
            self._buckets[key] = (tokens - 1, now)
            return True

    def record(self, obj, reason: str, message: str, warning: bool = False) -> None:
        """`obj` is an api model (VirtualMachineSnapshot or VirtualMachine) read from the apiserver."""
        meta = obj.metadata
        if not meta.uid or not self._allow(meta.uid):
            return
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{meta.name}.{uuid.uuid4().hex[:12]}", namespace=meta.namespace),
            involved_object=client.V1ObjectReference(api_version=obj.api_version, kind=obj.kind, name=meta.name,
                                                     namespace=meta.namespace, uid=meta.uid,
                                                     resource_version=meta.resource_version),
            reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
            source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
            reporting_instance=COMPONENT, first_timestamp=now, last_timestamp=now, count=1)
        try:
            self.core.create_namespaced_event(meta.namespace, event)
        except Exception as e:  # noqa: BLE001 - events are best effort by design
            log.warning("event %s on %s/%s not recorded: %s", reason, meta.namespace, meta.name, e)
