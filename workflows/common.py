"""Small pieces every snapshot workflow shares."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

RELEASE_SIGNAL = "release"


def failure_message(error: ActivityError) -> str:
    """The message of the error an activity raised (vSphere's fault text, a precondition), for a condition."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def failure_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


async def release_vm_queue() -> None:
    """Tell the VM's queue that this operation is done with vCenter, so the next one may start while this one
    waits for slow non-vCenter steps (the CSI handshake). A no-op when started outside a queue."""
    parent = workflow.info().parent
    if parent is not None:
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(RELEASE_SIGNAL,
                                                                              workflow.info().workflow_id)
