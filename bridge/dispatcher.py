"""Turns watched changes into Temporal calls: signal-with-start of the VM's queue for each operation (so a
re-list, a resync or a second bridge only re-sends what the queue and the workflow IDs already de-duplicate),
and signals to running workflows. Events are handled one at a time, so a VM's operations keep their order."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.names import SNAPSHOT_PLURAL
from api.operations import Operation, vm_queue_workflow_id
from bridge import metrics
from bridge.decisions import SignalCSISynced, snapshot_actions, vm_actions
from bridge.informer import Event
from worker.telemetry import current_trace_context, tracer
from workflows import search_attributes as sa
from workflows.vm_snapshot_queue import QueueState, VirtualMachineSnapshotQueue

log = logging.getLogger("vmsnap.bridge")


class Dispatcher:
    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    def deliver_threadsafe(self, loop: asyncio.AbstractEventLoop):
        return lambda event: loop.call_soon_threadsafe(self.events.put_nowait, event)

    async def run(self) -> None:
        while True:
            event = await self.events.get()
            metrics.BACKLOG.set(self.events.qsize())
            try:
                await self.handle(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the bridge; resync retries it
                metrics.FAILURES.inc()
                log.exception("handling %s %s failed", event.kind, event.obj.get("metadata", {}).get("name"))
            metrics.EVENTS.labels(event.plural, event.kind).inc()
            self.events.task_done()

    async def handle(self, event: Event) -> None:
        if event.kind == "DELETED":
            return
        actions = snapshot_actions(event.obj) if event.plural == SNAPSHOT_PLURAL else vm_actions(event.obj)
        meta = event.obj.get("metadata", {})
        for action in actions:
            # the root of the operation's trace: the watched change that asked for it
            with tracer().start_as_current_span(f"bridge {event.kind} {event.plural}", attributes={
                    "k8s.namespace": meta.get("namespace", ""), "k8s.name": meta.get("name", ""),
                    "k8s.resource_version": meta.get("resourceVersion", ""),
                    "vmsnap.action": type(action).__name__ if isinstance(action, SignalCSISynced)
                    else action.kind.value}):
                if isinstance(action, SignalCSISynced):
                    await self._signal(action.workflow_id, "csi_sync_completed")
                    metrics.SIGNALS_SENT.labels("csi_sync_completed").inc()
                else:
                    action.trace_context = current_trace_context()
                    await self.enqueue(action)
                    metrics.OPERATIONS_SENT.labels(action.kind.value).inc()

    async def enqueue(self, op: Operation) -> None:
        await self.client.start_workflow(
            VirtualMachineSnapshotQueue.run, QueueState(vm=op.vm), id=vm_queue_workflow_id(op.vm),
            task_queue=self.task_queue, start_signal="enqueue", start_signal_args=[op],
            static_summary=f"snapshot operations of VM {op.vm}",
            search_attributes=sa.for_vm(op.vm.namespace, op.vm.name))

    async def _signal(self, workflow_id: str, signal: str) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(signal)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            log.debug("%s is not running; nothing to signal", workflow_id)
