"""Activity against Temporal itself: queue an operation on its VM's queue (a delete's own retry)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from api.operations import Operation
from workflows.vm_snapshot_queue import enqueue_operation


class VMQueueActivities:
    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="temporal_enqueue_operation")
    async def enqueue_operation(self, op: Operation) -> None:
        """Signal-with-start of the VM's queue; safe to repeat (the queue and the workflow ID recognise it)."""
        await enqueue_operation(self.client, self.task_queue, op)
