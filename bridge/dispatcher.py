"""Turns watched changes into Temporal calls: signal-with-start of the VM's queue for each operation (so a
re-list, a resync or a second bridge only re-sends what the queue and the workflow IDs already de-duplicate),
and signals to running workflows.

Changes are handled in lanes, one per VM (`decisions.vm_key`: a snapshot's spec.vmName, a VM's own name), like
client-go's keyed work queue: a VM's changes are handled one at a time in arrival order, so its operations reach
its queue in order; different VMs are handled in parallel by `concurrency` workers. While Temporal cannot be
reached a change is kept at the head of its lane and tried again (backing off), so nothing waits for the next
resync; the outage and the recovery are logged once each. Any other failure is counted and logged and the lane
goes on (the next resync hands the object over again)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.group_snapshot_names import GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION
from api.names import SNAPSHOT_PLURAL
from bridge import metrics
from bridge.decisions import SignalCSISynced, StopVMOperations, snapshot_actions, vm_actions, vm_key
from contract.names import CREATE_CSI_SYNC_COMPLETED_SIGNAL, VM_QUEUE_VM_DELETED_SIGNAL
from contract.payloads import Operation
from contract.queue import enqueue_operation
from runtime.informer import Event
from runtime.last_written import LastWritten
from runtime.telemetry import current_trace_context, parent_context, tracer
from runtime.temporal import is_outage, outage_text

log = logging.getLogger("vmsnap.bridge")

DEFAULT_CONCURRENCY = 16
# An operation (or CSI signal) delivered this recently is not sent again: an object's own writes (the create's
# metadata and InProgress status, the CSI annotation) each bring a watch event that asks for the same thing, and
# every repeated signal costs a workflow task of the VM's queue. Re-lists and resyncs (SYNC) and a restarted
# bridge still re-send whatever is not done; the queue and the workflow IDs de-duplicate those.
RESEND_AFTER_SECONDS = 60.0
# actions remembered within that window; beyond, the oldest is forgotten (its next echo is sent, and de-duplicated)
REMEMBERED_ACTIONS = 100_000
# a change that found Temporal unreachable is tried again after this long, doubling up to the maximum
OUTAGE_RETRY_SECONDS = 0.5
OUTAGE_RETRY_MAX_SECONDS = 10.0

Key = tuple[str, str, str]


@dataclass
class _Barrier:
    """Done once every change received before it has been handled."""
    before: int                   # sequence number of the first change received after it
    remaining: int                # changes received before it and not handled yet
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Dispatcher:
    def __init__(self, client: Client, task_queue: str, concurrency: int = DEFAULT_CONCURRENCY,
                 acting: Callable[[], bool] = lambda: True):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.task_queue = task_queue
        self.concurrency = concurrency
        # False while the bridge stands aside for VM Operator's own snapshot controller (runtime/coexistence.py):
        # a change still queued or held then goes nowhere (the resync hands it over again once it acts)
        self.acting = acting
        self._lanes: dict[Key, deque[tuple[int, Event]]] = {}  # a VM's changes not handled yet (head: in hand)
        self._ready: asyncio.Queue[Key] = asyncio.Queue()       # lanes with changes and no worker on them
        self._received = 0   # sequence number of the next change
        self._unhandled = 0  # received, not yet handled (waiting or in hand): the backlog
        self._barriers: list[_Barrier] = []
        # what was delivered within the last RESEND_AFTER_SECONDS
        self._sent: LastWritten[str, bool] = LastWritten("bridge_action", REMEMBERED_ACTIONS,
                                                          max_age=RESEND_AFTER_SECONDS)
        self._outage_since: float | None = None  # time.monotonic() when Temporal was first found unreachable

    def deliver_threadsafe(self, loop: asyncio.AbstractEventLoop) -> Callable[[Event], None]:
        """The informers' callback (they run in threads)."""
        def deliver(event: Event) -> None:
            loop.call_soon_threadsafe(self.submit, event)
        return deliver

    def submit(self, event: Event) -> None:
        """Queue a change in its VM's lane (on the event loop)."""
        key = vm_key(event.plural, event.obj)
        item = (self._received, event)
        self._received += 1
        self._unhandled += 1
        metrics.BACKLOG.set(self._unhandled)
        lane = self._lanes.get(key)
        if lane is None:
            self._lanes[key] = deque((item,))
            self._ready.put_nowait(key)
        else:  # a worker has this lane (or it is already ready): it takes the change in its turn
            lane.append(item)

    def handled(self) -> asyncio.Future[None]:
        """A future done once every change received so far has been handled (whatever the lane)."""
        barrier = _Barrier(before=self._received, remaining=self._unhandled)
        if barrier.remaining == 0:
            barrier.done.set_result(None)
        else:
            self._barriers.append(barrier)
        return barrier.done

    @property
    def backlog(self) -> int:
        return self._unhandled

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work(), name=f"dispatch-{i}") for i in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            lane = self._lanes[key]
            seq, event = lane[0]
            try:
                await self._deliver(event)
            except Exception:  # noqa: BLE001 - one bad change must not stop its lane; resync retries it
                metrics.FAILURES.inc()
                log.exception("handling %s %s failed", event.kind, event.obj.get("metadata", {}).get("name"))
            lane.popleft()
            if lane:
                self._ready.put_nowait(key)  # behind the other ready VMs: no VM starves the rest
            else:
                del self._lanes[key]
            self._done(seq, event)

    async def _deliver(self, event: Event) -> None:
        """Handle a change, trying again while Temporal is unreachable (every action is safe to repeat)."""
        delay = OUTAGE_RETRY_SECONDS
        while True:
            if not self.acting():
                return
            try:
                await self.handle(event)
            except Exception as e:
                if not is_outage(e):
                    raise
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning("Temporal unreachable (%s): holding %d changes and retrying until it answers",
                                outage_text(e), self._unhandled)
                await asyncio.sleep(delay)
                delay = min(2 * delay, OUTAGE_RETRY_MAX_SECONDS)
                continue
            if self._outage_since is not None:
                log.warning("Temporal reachable again after %.0fs: delivering the %d held changes",
                            time.monotonic() - self._outage_since, self._unhandled)
                self._outage_since = None
            return

    def _done(self, seq: int, event: Event) -> None:
        metrics.EVENTS.labels(event.plural, event.kind).inc()
        self._unhandled -= 1
        metrics.BACKLOG.set(self._unhandled)
        if self._barriers:
            for barrier in [b for b in self._barriers if seq < b.before]:
                barrier.remaining -= 1
                if barrier.remaining == 0:
                    self._barriers.remove(barrier)
                    if not barrier.done.done():
                        barrier.done.set_result(None)

    async def handle(self, event: Event) -> None:
        obj = event.obj
        actions: list[Operation | SignalCSISynced | StopVMOperations]
        if event.plural == SNAPSHOT_PLURAL:
            actions = [] if event.kind == "DELETED" else list(snapshot_actions(obj))
        else:
            actions = list(vm_actions(obj, deleted=event.kind == "DELETED"))
        meta = obj.get("metadata", {})
        # a group's member: its operations belong to the group's trace, under the saga's span that made it
        parent = parent_context((meta.get("annotations") or {}).get(GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION))
        for action in actions:
            sent_key = f"{action.workflow_id}#{_sent_kind(action)}"
            if event.kind != "SYNC" and self._sent.echo(sent_key, True):
                continue
            # the root of the operation's trace: the watched change that asked for it
            with tracer().start_as_current_span(f"bridge {event.kind} {event.plural}", context=parent, attributes={
                    "k8s.namespace": meta.get("namespace", ""), "k8s.name": meta.get("name", ""),
                    "k8s.resource_version": meta.get("resourceVersion", ""),
                    "vmsnap.action": action.kind.value if isinstance(action, Operation)
                    else type(action).__name__}):
                if isinstance(action, SignalCSISynced):
                    await self._signal(action.workflow_id, CREATE_CSI_SYNC_COMPLETED_SIGNAL)
                    metrics.SIGNALS_SENT.labels(CREATE_CSI_SYNC_COMPLETED_SIGNAL).inc()
                elif isinstance(action, StopVMOperations):
                    await self._signal(action.workflow_id, VM_QUEUE_VM_DELETED_SIGNAL)
                    metrics.SIGNALS_SENT.labels(VM_QUEUE_VM_DELETED_SIGNAL).inc()
                else:
                    action.trace_context = current_trace_context()
                    await self.enqueue(action)
                    metrics.OPERATIONS_SENT.labels(action.kind.value).inc()
            self._sent.remember(sent_key, True)

    async def enqueue(self, op: Operation) -> None:
        await enqueue_operation(self.client, self.task_queue, op)

    async def _signal(self, workflow_id: str, signal: str) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(signal)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            log.debug("%s is not running; nothing to signal", workflow_id)


def _sent_kind(action: Operation | SignalCSISynced | StopVMOperations) -> str:
    return "op" if isinstance(action, Operation) else "csi" if isinstance(action, SignalCSISynced) else "stop"


async def log_when_caught_up(dispatcher: Dispatcher, started: float) -> None:
    """Once the informers' first lists are handed over: wait until every change in them is handled, then say so
    (log line and gauge): the bridge has caught up with what was there when it started."""
    await dispatcher.handled()
    took = time.monotonic() - started
    metrics.CAUGHT_UP.set(took)
    log.info("bridge caught up: the first lists are handled, %.1fs after start", took)
