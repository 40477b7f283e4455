"""Small pieces every snapshot workflow shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from opentelemetry import trace

    from activities.kube_vm import KubeVMActivities
    from activities.vsphere_snapshot import VSphereSnapshotActivities
    from contract.payloads import SnapshotTree, TreeSync, VMRef, vm_queue_workflow_id
    from workflows import options
    from workflows.vm_snapshot_queue import VirtualMachineSnapshotQueue


Arg = TypeVar("Arg")
Result = TypeVar("Result")
# an activity method of one of the activity classes (sync, run in the worker's thread pool), taking one payload
ActivityMethod = Callable[[Any, Arg], Result]


def deadline_summary(operation: str, deadline: datetime, limit: str) -> str:
    """The Temporal UI's name for the timer of an operation's deadline."""
    return f"deadline of this {operation}: {deadline:%Y-%m-%dT%H:%M:%SZ}" + (f" ({limit})" if limit else "")


async def kube(activity: ActivityMethod[Arg, Result], arg: Arg, summary: str) -> Result:
    """One short Kubernetes call, as a local activity (options.KUBE)."""
    return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options.KUBE)


async def vcenter(activity: ActivityMethod[Arg, Result], arg: Arg, summary: str) -> Result:
    """One short vCenter read or reconfigure, as a local activity (options.VSPHERE)."""
    return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options.VSPHERE)


# What a failed step raises: a regular activity's failure is an ActivityError around the activity's error;
# a local activity's is the activity's own ApplicationError.
StepFailed = (ActivityError, ApplicationError)


def _cause(error: BaseException) -> BaseException | None:
    return error.cause if isinstance(error, ActivityError) else error


def failure_message(error: BaseException) -> str:
    """The message of the error an activity raised (vSphere's fault text, a precondition), for a condition."""
    cause = _cause(error)
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def cancelled(error: BaseException) -> bool:
    """The step failed because this workflow cancelled it (a deadline, a delete), not on its own."""
    return isinstance(_cause(error), CancelledError)


def lost_task(error: BaseException | None) -> str | None:
    """The vCenter task of an attempt that was lost (its worker died, so its heartbeat timed out) while the
    workflow was cancelling it: nobody is left to cancel that task but the workflow. Its reference is the
    attempt's last heartbeat (see VSphereSnapshotActivities)."""
    cause = error.cause if isinstance(error, ActivityError) else None
    details = cause.last_heartbeat_details if isinstance(cause, TimeoutError) else ()
    task = details[0].get("task") if details and isinstance(details[0], dict) else None
    return task if isinstance(task, str) else None


async def stop(work: asyncio.Future[Any], *expected: type[BaseException]) -> str | None:
    """Cancel an operation's vCenter part and wait until it has stopped: its task activity cancels the vCenter
    task and waits for its end. Returns the task of an attempt lost meanwhile, for the caller to cancel."""
    stopped: tuple[type[BaseException], ...] = (asyncio.CancelledError, *StepFailed, *expected)
    work.cancel()
    try:
        await work
    except stopped as error:
        return lost_task(error)
    return None


async def cancel_lost_task(task: str | None) -> bool:
    """Cancel the task of a lost attempt (see lost_task) and wait for its end; True if vCenter finished it
    first (what it did stands)."""
    if task is None:
        return False
    return await workflow.execute_activity_method(
        VSphereSnapshotActivities.cancel_task, task, summary=f"CancelTask {task} (its worker was lost)",
        **options.vsphere_snapshot_task(None))


def failure_type(error: BaseException) -> str | None:
    cause = _cause(error)
    return cause.type if isinstance(cause, ApplicationError) else None


def failure_detail(error: BaseException) -> object | None:
    """The first detail the activity's error carried (e.g. the reason of a refused revert)."""
    cause = _cause(error)
    return cause.details[0] if isinstance(cause, ApplicationError) and cause.details else None


# the reason `vmsnap_operations` gives an operation cancelled by a delete of its object or of its VM
CANCELLED_BY_DELETE = "Deleted"


def count_operation(kind: str, result: str, reason: str = "") -> None:
    """`vmsnap_operations` on the worker's metrics endpoint, by kind, result and (for a failure, a fallback, a
    cancel) the reason."""
    workflow.metric_meter().create_counter("vmsnap_operations", "snapshot operations finished").add(
        1, {"kind": kind, "result": result, "reason": reason})


def outcome_span(name: str, **attributes: str) -> AbstractContextManager[Any]:
    """A span in the operation's trace around the steps of an outcome the trace must show by name (a deadline
    passed, the crash-consistent fallback, a cancel), with its attributes as `vmsnap.*`: the workflow's spans are
    replay-safe with Temporal's OpenTelemetry plugin, and nothing without it."""
    return trace.get_tracer("vmsnap").start_as_current_span(
        name, attributes={f"vmsnap.{key}": value for key, value in attributes.items()})


async def release_vm_queue() -> None:
    """Tell the VM's queue that this operation is done with vCenter, so the next one may start while this one
    waits for slow non-vCenter steps (the CSI handshake). A no-op when started outside a queue."""
    parent = workflow.info().parent
    if parent is not None:
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            VirtualMachineSnapshotQueue.release, workflow.info().workflow_id)


async def sync_snapshot_tree(vm: VMRef, vm_moref: str, claimed: dict[str, str] | None = None) -> None:
    """vCenter's snapshot tree onto the VM's status and each snapshot's children; `claimed` names the objects
    of snapshots whose uniqueID is being recorded at the same time."""
    tree = await vcenter(VSphereSnapshotActivities.read_snapshot_tree, vm_moref, "read snapshot tree")
    if tree is not None:
        await write_snapshot_tree(vm, vm_moref, tree, claimed)


async def write_snapshot_tree(vm: VMRef, vm_moref: str, tree: SnapshotTree,
                              claimed: dict[str, str] | None = None) -> None:
    """A tree already read (by the vCenter task's activity, right after the task) onto the VM and its snapshots."""
    # an operation run by this VM's queue holds it while it syncs (the tree watch, and an operation started
    # directly, do not)
    parent = workflow.info().parent
    queue_held = parent is not None and parent.workflow_id == vm_queue_workflow_id(vm)
    await kube(KubeVMActivities.sync_snapshot_tree,
               TreeSync(vm=vm, vm_moref=vm_moref, tree=tree, claimed=claimed or {}, queue_held=queue_held),
               "tree onto VM and snapshots")


async def together(*steps: Awaitable[Any]) -> list[Any]:
    """Run independent steps at once (their local activities share one workflow task); the first error is
    raised once every step has ended, so none is left running behind a failure."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
