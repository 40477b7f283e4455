"""VirtualMachineSnapshotQueue: one per VM. It runs the VM's snapshot operations one at a time, in arrival
order, so vSphere never sees two snapshot tasks on one VM. The order lives in Temporal (this workflow's
state), not in a lock or queue of our own; the bridge adds operations with signal-with-start."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    from contract.names import (
        VM_QUEUE_ENQUEUE_SIGNAL,
        VM_QUEUE_PENDING_QUERY,
        VM_QUEUE_RELEASE_SIGNAL,
        VM_QUEUE_VM_DELETED_SIGNAL,
        VM_QUEUE_WORKFLOW,
    )
    from contract.payloads import (
        Operation,
        OperationKind,
        QueueState,
    )
    from runtime import search_attributes as sa

# a queue with nothing to do ends; the next operation starts a new run (signal-with-start)
IDLE = timedelta(minutes=10)
# workflow IDs remembered across continue-as-new, so a re-sent operation is recognised as done
REMEMBERED = 500


def _log_failure(op: Operation, child: "asyncio.Future[Any]") -> None:
    if not child.cancelled() and child.exception() is not None:
        workflow.logger.error("%s failed: %s", op.workflow_id, child.exception())


@workflow.defn(name=VM_QUEUE_WORKFLOW)
class VirtualMachineSnapshotQueue:
    @workflow.init
    def __init__(self, state: QueueState) -> None:
        self.vm = state.vm
        self.pending: list[Operation] = list(state.pending)
        self.seen: list[str] = list(state.seen)
        self.released: set[str] = set()
        self.running_op: Operation | None = None
        # the running operation is to be cancelled: a delete of the snapshot it creates, or the VM's deletion
        self.cancel_running = False

    @workflow.signal(name=VM_QUEUE_ENQUEUE_SIGNAL)
    def enqueue(self, op: Operation) -> None:
        """Add an operation unless it is queued, running or done already (re-lists and second bridges re-send)."""
        if op.workflow_id in self.seen:
            return
        self.seen.append(op.workflow_id)
        if op.kind is OperationKind.DELETE:
            # a create that never started has nothing in vCenter: drop it; the delete still runs (finalizer)
            self.pending = [p for p in self.pending
                            if not (p.kind is OperationKind.CREATE and p.snapshot_uid == op.snapshot_uid)]
            running = self.running_op
            # deletes of histories v1–v3 carry no cancel_create: their create is waited for
            if op.cancel_create and running is not None and running.kind is OperationKind.CREATE and \
                    running.snapshot_uid == op.snapshot_uid:
                # its create is running: cancelled (its vCenter task too, and what it made removed), not waited for
                self.cancel_running = True
        self.pending.append(op)

    @workflow.signal(name=VM_QUEUE_VM_DELETED_SIGNAL)
    def vm_deleted(self) -> None:
        """The VirtualMachine object is being deleted: the running operation is cancelled, and creates and
        reverts not yet started are dropped (deletes stay: they remove the snapshots and their finalizers)."""
        self.pending = [p for p in self.pending if p.kind is OperationKind.DELETE]
        if self.running_op is not None and self.running_op.kind is not OperationKind.DELETE:
            self.cancel_running = True

    @workflow.signal(name=VM_QUEUE_RELEASE_SIGNAL)
    def release(self, workflow_id: str) -> None:
        """The running operation is done with vCenter (its remaining steps do not touch the VM)."""
        self.released.add(workflow_id)

    @workflow.query(name=VM_QUEUE_PENDING_QUERY)
    def queue(self) -> list[str]:
        return ([self.running_op.workflow_id] if self.running_op else []) + [p.workflow_id for p in self.pending]

    @workflow.run
    async def run(self, state: QueueState) -> None:
        while True:
            try:
                await workflow.wait_condition(lambda: bool(self.pending), timeout=IDLE,
                                              timeout_summary="the next operation; the queue ends when none comes")
            except asyncio.TimeoutError:
                if not self.pending:
                    break
            op = self.pending.pop(0)
            workflow.set_current_details(f"running {op.workflow_id}; {len(self.pending)} waiting")
            self._report_depth()
            await self._run(op)
            self._report_depth()
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(QueueState(vm=self.vm, pending=self.pending, seen=self.seen[-REMEMBERED:]))
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _report_depth(self) -> None:
        """`vmsnap_vm_queue_depth{vm}`: operations waiting behind the running one."""
        workflow.metric_meter().create_gauge("vmsnap_vm_queue_depth", "operations waiting per VM").set(
            len(self.pending), {"vm": str(self.vm)})

    async def _run(self, op: Operation) -> None:
        self.running_op, self.cancel_running = op, False
        try:
            child = await self._start(op)
        except WorkflowAlreadyStartedError:
            self.running_op = None
            return
        # a released child ends later (a create's CSI handshake, a delete's retry wait): its outcome is logged then
        child.add_done_callback(lambda done: _log_failure(op, done))
        await workflow.wait_condition(lambda: child.done() or op.workflow_id in self.released or self.cancel_running)
        if self.cancel_running and not (child.done() or op.workflow_id in self.released):
            workflow.logger.info("cancelling %s", op.workflow_id)
            child.cancel()  # the child undoes its vCenter work and ends; the queue moves on after that
            await workflow.wait_condition(lambda: child.done() or op.workflow_id in self.released)
        self.released.discard(op.workflow_id)
        self.running_op, self.cancel_running = None, False

    async def _start(self, op: Operation) -> workflow.ChildWorkflowHandle[Any, Any]:
        # the child joins the trace of the watched change that asked for it, not this queue's own trace
        with trace.get_tracer("vmsnap").start_as_current_span(f"queue {op.kind.value}",
                                                              context=extract(op.trace_context)):
            return await workflow.start_child_workflow(
                op.kind.value, op, id=op.workflow_id,
                # a finished operation is never re-run; one that failed (a bug, a timeout) may be re-driven
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=op.summary or f"{op.kind.value} {op.snapshot_name} of {op.vm.name}",
                static_details=op.details(),
                search_attributes=sa.for_vm(op.vm.namespace, op.vm.name, snapshot=op.snapshot_name,
                                             operation=op.kind.value))

