"""Kubernetes Events on the snapshot and the VM for every transition that matters, so `kubectl describe`
tells the story. Rate-limited per object (a token bucket, like client-go's event recorder) so a flapping VM
cannot flood the apiserver; an event that cannot be written never fails the operation. Events are written by a
background thread (as client-go's broadcaster does), so an operation's steps never wait on them."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from api import VirtualMachine, VirtualMachineSnapshot
from api.group_snapshot import VirtualMachineGroupSnapshot
from api.schedule import VirtualMachineSnapshotSchedule
from runtime.kube import Kube
from runtime.telemetry import WorkflowLinks

log = logging.getLogger("vmsnap.events")

COMPONENT = "vmsnap"
BURST = 10
REFILL_SECONDS = 30.0
# events waiting to be written; beyond this they are dropped (and counted), never blocking an operation
MAX_PENDING = 1000
# the apiserver's limit on an Event's message
MAX_MESSAGE = 1024


class EventRecorder:
    def __init__(self, kube: Kube, burst: int = BURST, refill_seconds: float = REFILL_SECONDS,
                 links: WorkflowLinks = WorkflowLinks()):
        self.kube = kube
        self.links = links
        self.burst, self.refill_seconds = burst, refill_seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # object uid → (tokens, last refill)
        self._lock = threading.Lock()
        self.dropped = 0
        self._pending: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(MAX_PENDING)
        self._writer = threading.Thread(target=self._write_pending, name="event-writer", daemon=True)
        self._writer.start()

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

    def record(self, obj: VirtualMachineSnapshot | VirtualMachine | VirtualMachineSnapshotSchedule
               | VirtualMachineGroupSnapshot, reason: str, message: str, warning: bool = False) -> None:
        """`obj` as read from the apiserver."""
        meta = obj.metadata
        if not meta.uid or not self._allow(meta.uid):
            return
        workflow = self.links.current()
        # `kubectl describe` leads to the operation in Temporal (the link survives a long message's cut)
        suffix = f" [workflow {workflow[1] or workflow[0]}]" if workflow is not None else ""
        message = message[:MAX_MESSAGE - len(suffix)] + suffix
        now = datetime.now(UTC)
        involved = {"apiVersion": obj.api_version, "kind": obj.kind, "name": meta.name, "namespace": meta.namespace,
                    "uid": meta.uid, "resourceVersion": meta.resource_version}
        event = {
            "metadata": {"name": f"{meta.name}.{uuid.uuid4().hex[:12]}", "namespace": meta.namespace},
            "involvedObject": {k: v for k, v in involved.items() if v is not None},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": COMPONENT,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1}
        try:
            self._pending.put_nowait((meta.namespace or "", event))
        except queue.Full:
            self.dropped += 1
            log.warning("event %s on %s/%s dropped: %d events waiting", reason, meta.namespace, meta.name,
                        MAX_PENDING)

    def _write_pending(self) -> None:
        while (item := self._pending.get()) is not None:
            namespace, event = item
            try:
                self.kube.create_event(namespace, event)
            except Exception as e:  # noqa: BLE001 - events are best effort by design
                log.warning("event %s on %s/%s not recorded: %s", event["reason"], namespace,
                            event["involvedObject"].get("name"), e)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is waiting (for up to `timeout` seconds), then stop the writer."""
        try:
            self._pending.put(None, timeout=timeout)
        except queue.Full:
            return
        self._writer.join(timeout)
