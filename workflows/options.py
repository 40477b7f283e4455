"""Timeouts and retries of the activities, by the system they talk to. Temporal does the retrying; an
activity only says whether an error is worth retrying (non_retryable ApplicationErrors are not)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio import workflow
from temporalio.common import RetryPolicy

# Short calls run as local activities: inside the workflow task that asks for them, with no task-queue round
# trip and no history events of their own (a marker records the result), so an operation's short steps cost
# milliseconds rather than a server round trip each. Each must be idempotent: a workflow task lost with its
# worker re-runs them. Retries stay Temporal's: in the worker for a minute, then by durable timer.

class StepOptions(TypedDict):
    """Timeouts and retries of a short step (a local activity)."""

    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


class TaskOptions(StepOptions):
    """... and of a vCenter task (a regular activity on the capped task queue)."""

    task_queue: str
    heartbeat_timeout: timedelta


# Kubernetes API calls: retried with backoff for about ten minutes (apiserver restarts, 409 storms)
KUBE = StepOptions(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30)),
)

# Temporal client calls from a workflow's activity (queueing an operation again): retried like Kubernetes calls
TEMPORAL = KUBE

# vCenter reads and quick reconfigures (never a snapshot task: those are regular, capped activities below)
VSPHERE = StepOptions(
    start_to_close_timeout=timedelta(minutes=2),
    schedule_to_close_timeout=timedelta(minutes=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)),
)

# a snapshot task without quiesce; with quiesce the guest may take the whole quiesce timeout first
SNAPSHOT_TASK_BASE = timedelta(minutes=20)


def vcenter_task_queue(task_queue: str) -> str:
    """The task queue of the activities that run vCenter snapshot tasks. Each worker serves it with a fixed
    number of slots (VMSNAP_VCENTER_TASK_SLOTS), so all workers together never run more snapshot tasks at
    once than replicas × slots: vCenter's own limits on concurrent tasks are respected by construction."""
    return f"{task_queue}-vcenter-tasks"


def vsphere_snapshot_task(quiesce_minutes: int | None) -> TaskOptions:
    """Options for a create/revert/remove task: an attempt may last the quiesce timeout plus the task itself;
    a silent worker is detected by the heartbeat within 30 s, and the retry re-attaches to the task."""
    per_attempt = SNAPSHOT_TASK_BASE + timedelta(minutes=quiesce_minutes or 0)
    return TaskOptions(
        task_queue=vcenter_task_queue(workflow.info().task_queue),
        start_to_close_timeout=per_attempt,
        schedule_to_close_timeout=per_attempt * 3,
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1)),
    )
