"""The bridge's dispatcher with a fake Temporal client: each VM's changes reach its queue in arrival order, different
VMs are handled in parallel up to the concurrency, a failure does not stop a lane, the backlog and the counters
say what happened, and `handled()` says when everything received so far is done."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.names import CREATE_FAILED_REASONS, CSI_VOLUME_SYNC_ANNOTATION, SNAPSHOT_PLURAL, VM_PLURAL
from bridge import metrics
from bridge.decisions import snapshot_actions
from bridge.dispatcher import Dispatcher
from contract.names import CREATE_CSI_SYNC_COMPLETED_SIGNAL, VM_QUEUE_VM_DELETED_SIGNAL
from contract.payloads import Operation, OperationKind, VMRef, vm_queue_workflow_id
from runtime import last_written
from runtime.informer import Event

NS = "ns-1"
NOW = "2025-01-01T00:00:00Z"


def snapshot(name: str, vm: str, **extra: Any) -> dict:
    obj = {"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachineSnapshot",
           "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "1"},
           "spec": {"vmName": vm}}
    for key, value in extra.items():
        obj[key] = {**obj.get(key, {}), **value}
    return obj


def created_condition(type_: str) -> dict:
    return {"type": type_, "status": "True", "reason": "True", "message": "", "lastTransitionTime": NOW}


def vm(name: str, target: str, generation: int) -> dict:
    return {"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation},
            "spec": {"currentSnapshotName": target}}


class FakeHandle:
    def __init__(self, client: FakeClient, workflow_id: str):
        self.client, self.workflow_id = client, workflow_id

    async def signal(self, name: str) -> None:
        if self.workflow_id in self.client.not_running:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        self.client.signals.append((self.workflow_id, name))


class FakeClient:
    """Records each signal-with-start per queue workflow; each call takes a random short time."""

    def __init__(self, delay: tuple[float, float] = (0.0, 0.01), fail: set[str] = frozenset()):
        self.delay, self.fail = delay, fail
        self.enqueued: dict[str, list[Operation]] = {}
        self.signals: list[tuple[str, str]] = []
        self.not_running: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self.in_flight_vms: set[str] = set()

    async def start_workflow(self, run, state, *, id: str, start_signal_args: list, **kwargs: Any) -> None:
        op: Operation = start_signal_args[0]
        assert start_signal_args and kwargs["start_signal"] == "enqueue"
        assert id not in self.in_flight_vms, f"two calls for {id} at once"
        self.in_flight_vms.add(id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(random.uniform(*self.delay))
            if op.snapshot_name in self.fail:
                raise RuntimeError(f"refused {op.snapshot_name}")
            self.enqueued.setdefault(id, []).append(op)
        finally:
            self.in_flight -= 1
            self.in_flight_vms.discard(id)

    def get_workflow_handle(self, workflow_id: str) -> FakeHandle:
        return FakeHandle(self, workflow_id)


def queue_id(vm_name: str) -> str:
    return vm_queue_workflow_id(VMRef(namespace=NS, name=vm_name))


def counter(metric, *labels: str) -> float:
    return (metric.labels(*labels) if labels else metric)._value.get()


async def dispatch(dispatcher: Dispatcher, events: list[Event]) -> None:
    running = asyncio.create_task(dispatcher.run())
    try:
        for event in events:
            dispatcher.submit(event)
        await asyncio.wait_for(dispatcher.handled(), 30)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_each_vms_changes_keep_their_order_while_vms_run_in_parallel():
    random.seed(8)
    client = FakeClient(delay=(0.0, 0.01))
    vms = [f"vm-{i}" for i in range(40)]
    events, expected = [], {}
    for i in range(400):  # interleaved, as a list or a watch hands them over
        name, vm_name = f"snap-{i:03d}", random.choice(vms)
        events.append(Event("SYNC", SNAPSHOT_PLURAL, snapshot(name, vm_name)))
        expected.setdefault(queue_id(vm_name), []).append(name)
    # a revert of vm-0 after its snapshots: the VM object's lane is the same as its snapshots'
    events.append(Event("MODIFIED", VM_PLURAL, vm("vm-0", "snap-x", 2)))
    expected.setdefault(queue_id("vm-0"), []).append("snap-x")
    handled_before = counter(metrics.EVENTS, SNAPSHOT_PLURAL, "SYNC")

    dispatcher = Dispatcher(client, "q", concurrency=8)
    await dispatch(dispatcher, events)

    assert {wid: [op.snapshot_name for op in ops] for wid, ops in client.enqueued.items()} == expected
    assert client.enqueued[queue_id("vm-0")][-1].kind == OperationKind.REVERT
    assert client.max_in_flight == 8  # parallel, and bounded
    assert counter(metrics.EVENTS, SNAPSHOT_PLURAL, "SYNC") - handled_before == 400
    assert dispatcher.backlog == 0 and counter(metrics.BACKLOG) == 0
    assert dispatcher._lanes == {}


async def test_different_vms_are_handled_at_once():
    client = FakeClient(delay=(0.2, 0.2))
    dispatcher = Dispatcher(client, "q", concurrency=16)
    events = [Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"s-{i}", f"vm-{i}")) for i in range(16)]
    started = asyncio.get_running_loop().time()
    await dispatch(dispatcher, events)
    assert asyncio.get_running_loop().time() - started < 1.0  # one at a time would be 3.2 s
    assert client.max_in_flight == 16


async def test_one_vms_changes_are_handled_one_at_a_time():
    client = FakeClient(delay=(0.0, 0.005))
    dispatcher = Dispatcher(client, "q", concurrency=16)
    events = [Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"s-{i:02d}", "vm-a")) for i in range(30)]
    await dispatch(dispatcher, events)
    assert client.max_in_flight == 1
    assert [op.snapshot_name for op in client.enqueued[queue_id("vm-a")]] == [f"s-{i:02d}" for i in range(30)]


async def test_a_failure_is_counted_and_the_lane_goes_on():
    client = FakeClient(fail={"s-1"})
    failures = counter(metrics.FAILURES)
    dispatcher = Dispatcher(client, "q", concurrency=4)
    events = [Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"s-{i}", "vm-a")) for i in range(4)]
    await dispatch(dispatcher, events)
    assert [op.snapshot_name for op in client.enqueued[queue_id("vm-a")]] == ["s-0", "s-2", "s-3"]
    assert counter(metrics.FAILURES) - failures == 1
    assert dispatcher.backlog == 0


async def test_csi_sync_signal_and_a_finished_create():
    synced = snapshot("s-1", "vm-a", metadata={"annotations": {CSI_VOLUME_SYNC_ANNOTATION: "completed"}},
                      status={"conditions": [created_condition("VirtualMachineSnapshotCreated")]})
    gone = snapshot("s-2", "vm-a", metadata={"annotations": {CSI_VOLUME_SYNC_ANNOTATION: "completed"}},
                    status={"conditions": [created_condition("VirtualMachineSnapshotCreated")]})
    create = Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=NS, name="vm-a"), snapshot_name="s-1",
                       snapshot_uid="uid-s-1").workflow_id
    client = FakeClient()
    client.not_running.add(Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=NS, name="vm-a"),
                                     snapshot_name="s-2", snapshot_uid="uid-s-2").workflow_id)
    failures = counter(metrics.FAILURES)
    await dispatch(Dispatcher(client, "q"), [Event("MODIFIED", SNAPSHOT_PLURAL, synced),
                                             Event("MODIFIED", SNAPSHOT_PLURAL, gone),
                                             Event("DELETED", SNAPSHOT_PLURAL, synced)])
    assert client.signals == [(create, CREATE_CSI_SYNC_COMPLETED_SIGNAL)]
    assert client.enqueued == {}
    assert counter(metrics.FAILURES) == failures  # a finished create (not running) is not a failure


async def test_handled_waits_for_what_was_received_before_it_only():
    client = FakeClient(delay=(0.05, 0.05))
    dispatcher = Dispatcher(client, "q", concurrency=2)
    running = asyncio.create_task(dispatcher.run())
    try:
        assert dispatcher.handled().done()  # nothing received: done at once
        for i in range(4):
            dispatcher.submit(Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"a-{i}", f"vm-{i}")))
        first = dispatcher.handled()
        assert counter(metrics.BACKLOG) == 4
        for i in range(20):  # later changes on a slow lane do not hold the first barrier
            dispatcher.submit(Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"b-{i}", "vm-slow")))
        await asyncio.wait_for(first, 5)
        done = sum(len(ops) for ops in client.enqueued.values())
        assert all(f"a-{i}" in [op.snapshot_name for ops in client.enqueued.values() for op in ops]
                   for i in range(4))
        assert done < 24
        await asyncio.wait_for(dispatcher.handled(), 10)
        assert dispatcher.backlog == 0
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_a_watch_event_asking_again_for_what_was_just_delivered_is_not_sent_again():
    """A create's own writes (metadata, InProgress) each bring a watch event asking for the same create: one
    signal-with-start, not three (each would cost the VM's queue a workflow task). A re-list or resync (SYNC)
    re-sends, and a delivery that failed is tried again by the next event."""
    client = FakeClient(fail={"s-bad"})
    skipped = counter(last_written.HITS, "bridge_action")
    pending = snapshot("s-1", "vm-a")
    bad = snapshot("s-bad", "vm-a")
    await dispatch(Dispatcher(client, "q"), [Event("ADDED", SNAPSHOT_PLURAL, pending),
                                             Event("MODIFIED", SNAPSHOT_PLURAL, pending),
                                             Event("MODIFIED", SNAPSHOT_PLURAL, pending),
                                             Event("SYNC", SNAPSHOT_PLURAL, pending),
                                             Event("ADDED", SNAPSHOT_PLURAL, bad),
                                             Event("MODIFIED", SNAPSHOT_PLURAL, bad)])
    assert [op.snapshot_name for op in client.enqueued[queue_id("vm-a")]] == ["s-1", "s-1"]  # ADDED, SYNC
    assert counter(last_written.HITS, "bridge_action") - skipped == 2


class UnreachableFor(FakeClient):
    """Temporal answers UNAVAILABLE to the first `calls` signal-with-starts, then everything goes through."""

    def __init__(self, calls: int):
        super().__init__()
        self.unreachable_calls = calls

    async def start_workflow(self, run, state, **kwargs: Any) -> None:
        if self.unreachable_calls > 0:
            self.unreachable_calls -= 1
            raise RPCError("Not enough hosts to serve the request", RPCStatusCode.UNAVAILABLE, b"")
        await super().start_workflow(run, state, **kwargs)


async def test_changes_are_held_while_temporal_is_unreachable_and_delivered_after(monkeypatch, caplog):
    monkeypatch.setattr("bridge.dispatcher.OUTAGE_RETRY_SECONDS", 0.01)
    client = UnreachableFor(calls=12)
    failures = counter(metrics.FAILURES)
    dispatcher = Dispatcher(client, "q", concurrency=2)
    events = [Event("SYNC", SNAPSHOT_PLURAL, snapshot(f"s-{i}", f"vm-{i % 2}")) for i in range(6)]
    with caplog.at_level("INFO", logger="vmsnap.bridge"):
        await dispatch(dispatcher, events)
    # nothing dropped, nothing out of order, nothing counted as a failure: the resync is not needed
    assert {wid: [op.snapshot_name for op in ops] for wid, ops in client.enqueued.items()} == {
        queue_id("vm-0"): ["s-0", "s-2", "s-4"], queue_id("vm-1"): ["s-1", "s-3", "s-5"]}
    assert counter(metrics.FAILURES) == failures
    # one line when it went, one when it came back; no stack trace
    said = [r.getMessage() for r in caplog.records if r.name == "vmsnap.bridge"]
    assert [m.split(" (")[0].split(" after")[0] for m in said] == ["Temporal unreachable", "Temporal reachable again"]
    assert "UNAVAILABLE: Not enough hosts" in said[0]
    assert not any(r.exc_info for r in caplog.records)


async def test_a_vms_deletion_stops_its_queue_and_a_snapshots_delete_cancels_its_running_create():
    """A VM deleted (gone, or being deleted behind a finalizer): its queue is told once per change, a queue that
    is not running is nothing to stop; a snapshot deleted before it was Ready: its create is to be cancelled."""
    deleting = vm("vm-b", "", 3)
    deleting["metadata"]["deletionTimestamp"] = NOW
    deleting["metadata"]["finalizers"] = ["vmoperator.vmware.com/virtualmachine"]
    doomed = snapshot("s-3", "vm-c", metadata={"deletionTimestamp": NOW,
                                               "finalizers": ["vmoperator.vmware.com/virtualmachinesnapshot"]})
    client = FakeClient()
    client.not_running.add(queue_id("vm-b"))
    await dispatch(Dispatcher(client, "q"), [Event("DELETED", VM_PLURAL, vm("vm-a", "", 2)),
                                             Event("MODIFIED", VM_PLURAL, deleting),
                                             Event("MODIFIED", SNAPSHOT_PLURAL, doomed)])

    assert client.signals == [(queue_id("vm-a"), VM_QUEUE_VM_DELETED_SIGNAL)]
    [delete] = client.enqueued[queue_id("vm-c")]
    assert (delete.kind, delete.stop_create, delete.cancel_create) == (OperationKind.DELETE, True, True)


def test_a_create_that_ended_in_any_failure_reason_is_not_started_again():
    for reason in CREATE_FAILED_REASONS:
        failed = snapshot("s-f", "vm-a", status={"conditions": [{
            "type": "VirtualMachineSnapshotCreated", "status": "False", "reason": reason, "message": "why",
            "lastTransitionTime": NOW}]})
        assert snapshot_actions(failed) == [], reason
