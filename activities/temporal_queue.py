"""The VM queue's signal-with-start as an activity: a delete that vCenter failed queues its own retry."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from contract.payloads import Operation
from contract.queue import enqueue_operation


class VMQueueActivities:
    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="temporal_enqueue_operation")
    async def enqueue_operation(self, op: Operation) -> None:
        """Signal-with-start of the VM's queue."""
        await enqueue_operation(self.client, self.task_queue, op)
