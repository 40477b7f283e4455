"""Adding an operation to its VM's queue (signal-with-start): what the bridge does for a watched change and what
the delete's retry activity does. Started by workflow type name, so the caller needs no workflow code."""

from __future__ import annotations

from temporalio.client import Client

from contract.names import VM_QUEUE_ENQUEUE_SIGNAL, VM_QUEUE_WORKFLOW
from contract.payloads import Operation, QueueState, vm_queue_workflow_id
from runtime import search_attributes as sa


async def enqueue_operation(client: Client, task_queue: str, op: Operation) -> None:
    """Add `op` to its VM's queue, starting the queue if it is not running; safe to repeat (the queue and the
    operation's workflow ID recognise it)."""
    await client.start_workflow(
        VM_QUEUE_WORKFLOW, QueueState(vm=op.vm), id=vm_queue_workflow_id(op.vm),
        task_queue=task_queue, start_signal=VM_QUEUE_ENQUEUE_SIGNAL, start_signal_args=[op],
        static_summary=f"snapshot operations of VM {op.vm}",
        static_details=f"runs VirtualMachine `{op.vm}`'s snapshot operations one at a time, in arrival order "
                       "(vSphere allows one snapshot task per VM); each is a child workflow",
        search_attributes=sa.for_vm(op.vm.namespace, op.vm.name))
