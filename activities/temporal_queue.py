"""Adding an operation to its VM's queue (signal-with-start): what the bridge does for a watched change, and an
activity for a failed delete's own retry. Started by workflow type name, so this needs no workflow code."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from activities.payloads import VM_QUEUE_WORKFLOW, Operation, QueueState, vm_queue_workflow_id
from runtime import search_attributes as sa


async def enqueue_operation(client: Client, task_queue: str, op: Operation) -> None:
    """Add `op` to its VM's queue, starting the queue if it is not running; safe to repeat (the queue and the
    operation's workflow ID recognise it)."""
    await client.start_workflow(
        VM_QUEUE_WORKFLOW, QueueState(vm=op.vm), id=vm_queue_workflow_id(op.vm),
        task_queue=task_queue, start_signal="enqueue", start_signal_args=[op],
        static_summary=f"snapshot operations of VM {op.vm}",
        search_attributes=sa.for_vm(op.vm.namespace, op.vm.name))


class VMQueueActivities:
    def __init__(self, client: Client, task_queue: str):
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="temporal_enqueue_operation")
    async def enqueue_operation(self, op: Operation) -> None:
        """Signal-with-start of the VM's queue."""
        await enqueue_operation(self.client, self.task_queue, op)
