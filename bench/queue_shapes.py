"""What the VM queue's shape costs in CPU per operation (issue #15's last open question): today's queue starts each
operation as a child workflow and waits for the child's completion; the alternative starts it from a local
activity with a client call and waits for the operation's "done" signal, sent by a local activity at its end.
Both on one dev server (on disk, as `bench.overhead`) and one worker, in rounds of the two shapes in ABBA order;
each operation only runs one local activity of 0.3 s (so a child's start and end reach its queue as two events,
as the product's do), so what differs is only the queue's shape. The alternative here lacks what a product
queue would need besides (a watchdog for an operation ended by hand, which sends no signal).

    .venv/bin/python -m bench.queue_shapes            # --n 60 operations per round over --vms 10, --rounds 4

Prints CPU ms per operation (the dev server; this process, which is the worker and the driver), workflow tasks
and history events per operation from the histories, and the dev server's frontend RPCs per operation."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.harness import prometheus_counter, read_proc, table
    from testbed.temporal import TemporalDevServer

TASK_QUEUE = "queue-shapes"


# the operations that have run their step, so the driver waits for them without polling the server
stepped: dict[str, asyncio.Event] = {}


@activity.defn
async def step(name: str) -> str:
    # an operation takes a while (vCenter's task): the child's start and end reach the queue as separate events
    await asyncio.sleep(0.3)
    stepped.setdefault(activity.info().workflow_id, asyncio.Event()).set()
    return name


@activity.defn
async def start_operation(workflow_id: str) -> None:
    """The alternative's start: a client call from the queue's local activity."""
    await activity.client().start_workflow(Operation.run, activity.info().workflow_id, id=workflow_id,
                                           task_queue=TASK_QUEUE,
                                           id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)


@activity.defn
async def signal_done(ids: list[str]) -> None:
    """The alternative's end: the operation tells its queue (ids = [queue, operation])."""
    await activity.client().get_workflow_handle(ids[0]).signal(SignalledQueue.done, ids[1])


LA = {"start_to_close_timeout": timedelta(seconds=10)}


@workflow.defn
class Operation:
    @workflow.run
    async def run(self, queue_id: str) -> None:
        await workflow.execute_local_activity(step, "work", **LA)
        if queue_id:
            await workflow.execute_local_activity(signal_done, [queue_id, workflow.info().workflow_id], **LA)


class QueueLoop:
    """What both shapes share: operations in arrival order, one at a time; ends after 10 idle minutes."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    @workflow.signal
    def enqueue(self, workflow_id: str) -> None:
        self.pending.append(workflow_id)

    async def serve(self, run_one: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                await workflow.wait_condition(lambda: bool(self.pending), timeout=timedelta(minutes=10))
            except asyncio.TimeoutError:
                return
            await run_one(self.pending.pop(0))


@workflow.defn
class ChildQueue(QueueLoop):
    """Today's shape: a child workflow per operation."""

    @workflow.run
    async def run(self) -> None:
        await self.serve(self.run_child)

    async def run_child(self, op: str) -> None:
        await workflow.execute_child_workflow(
            Operation.run, "", id=op, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)


@workflow.defn
class SignalledQueue(QueueLoop):
    """The alternative: a local activity starts the operation, which signals "done"."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: set[str] = set()

    @workflow.signal
    def done(self, workflow_id: str) -> None:
        self.finished.add(workflow_id)

    @workflow.run
    async def run(self) -> None:
        await self.serve(self.start_and_wait)

    async def start_and_wait(self, op: str) -> None:
        await workflow.execute_local_activity(start_operation, op, **LA)
        # a real queue would also need a watchdog here, for an operation ended by hand without its signal
        await workflow.wait_condition(lambda: op in self.finished)


async def one_round(client: Client, server: TemporalDevServer, shape: type, n: int, vms: int) -> dict[str, float]:
    """n operations one at a time over `vms` queues in turn (as `bench.overhead` spreads them over its VMs, so an
    operation's end and the next enqueue never share a workflow task of one queue)."""
    round_id = f"{shape.__name__}-{uuid.uuid4().hex[:8]}"
    queues = [f"{round_id}-vm-{v}" for v in range(min(vms, n))]
    ops = [(queues[i % len(queues)], f"{round_id}-op-{i}") for i in range(n)]
    pids = {"temporal": server.process.pid if server.process else 0, "worker": os.getpid()}
    before = {name: (read_proc(pid) or (0.0,))[0] for name, pid in pids.items()}
    rpcs_before = temporal_rpcs(server)
    for queue_id, op in ops:
        await client.start_workflow(shape.run, id=queue_id, task_queue=TASK_QUEUE, start_signal="enqueue",
                                    start_signal_args=[op])
        await finished(client, op)
    after = {name: (read_proc(pid) or (0.0,))[0] for name, pid in pids.items()}
    rpcs = temporal_rpcs(server) - rpcs_before
    tasks = events = 0
    for workflow_id in [*queues, *(op for _, op in ops)]:
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            events += 1
            tasks += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    for queue_id in queues:
        await client.get_workflow_handle(queue_id).terminate("round over")
    return {**{name: (after[name] - before[name]) * 1000 / n for name in pids},
            "tasks": tasks / n, "events": events / n, "rpcs": rpcs / n}


async def finished(client: Client, workflow_id: str) -> None:
    """The operation's result, once it has run its step (then one long poll, in either shape)."""
    await stepped.setdefault(workflow_id, asyncio.Event()).wait()
    await client.get_workflow_handle(workflow_id).result()


def temporal_rpcs(server: TemporalDevServer) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(v for labels, v in prometheus_counter(text, "service_requests")
               if labels.get("service_name") == "frontend")


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vmsnap-bench-queue-shapes-"))
    print(f"# logs and state: {workdir}")
    server = TemporalDevServer(workdir, db_file=workdir / "temporal.db").start()
    try:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue=TASK_QUEUE, workflows=[Operation, ChildQueue, SignalledQueue],
                          activities=[step, start_operation, signal_done]):
            await one_round(client, server, ChildQueue, 10, args.vms)  # warm-up
            await one_round(client, server, SignalledQueue, 10, args.vms)
            results: dict[str, list[dict[str, float]]] = {"ChildQueue": [], "SignalledQueue": []}
            for r in range(args.rounds):  # ABBA: a cost that grows with the server's history favours neither
                for shape in (ChildQueue, SignalledQueue) if r % 2 == 0 else (SignalledQueue, ChildQueue):
                    results[shape.__name__].append(await one_round(client, server, shape, args.n, args.vms))
        rows = []
        for name, rounds in results.items():
            mean = {key: sum(r[key] for r in rounds) / len(rounds) for key in rounds[0]}
            rows.append([name, f"{mean['temporal']:.1f}", f"{mean['worker']:.1f}",
                         f"{mean['temporal'] + mean['worker']:.1f}", f"{mean['tasks']:.1f}", f"{mean['events']:.1f}",
                         f"{mean['rpcs']:.1f}", " / ".join(f"{r['temporal'] + r['worker']:.0f}" for r in rounds)])
        print(table(["queue shape", "temporal CPU ms/op", "worker+driver CPU ms/op", "sum", "workflow tasks/op",
                     "history events/op", "frontend RPCs/op", "sum per round"], rows,
                    f"## {args.n} operations per round over {args.vms} queues, {args.rounds} rounds, "
                    "the order alternating (ABBA)"))
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--vms", type=int, default=10, help="queues the operations go to in turn")
    asyncio.run(main(parser.parse_args()))
