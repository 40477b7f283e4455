"""Reading what Temporal recorded, to assert on order and on how many times something ran."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client


async def activity_windows(client: Client, workflow_id: str, activity_type: str) -> list[tuple[int, int]]:
    """(started event id's time, completed time) in ns for each attempt-group of an activity type."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    started: dict[int, int] = {}
    windows = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[e.activity_task_started_event_attributes.scheduled_event_id] = e.event_time.ToNanoseconds()
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            if scheduled.get(sid) == activity_type:
                windows.append((started[sid], e.event_time.ToNanoseconds()))
    return windows


async def activity_attempts(client: Client, workflow_id: str, activity_type: str) -> list[int]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
    return [e.activity_task_started_event_attributes.attempt for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and scheduled[e.activity_task_started_event_attributes.scheduled_event_id] == activity_type]


async def count_runs(client: Client, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")])


async def local_activity_results(client: Client, workflow_id: str, activity_type: str,
                                 since: datetime | None = None) -> list[object]:
    """What each completed run of a local activity returned (JSON), oldest first, from the markers of every run of
    the workflow since `since` (a workflow that continues as new spreads one stretch of time over several runs;
    without `since`, only the latest run). Runs are followed back through each start event's continued-from run,
    which, unlike a visibility query, is never behind."""
    per_run: list[list[object]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        results = []
        for e in history.events:
            if e.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
                continue
            if since is not None and e.event_time.ToDatetime(timezone.utc) < since:
                continue
            details = e.marker_recorded_event_attributes.details
            data = json.loads(details["data"].payloads[0].data)
            if data.get("activity_type") == activity_type and "result" in details:
                results.append(json.loads(details["result"].payloads[0].data))
        per_run.append(results)
        first = history.events[0]
        run_id = first.workflow_execution_started_event_attributes.continued_execution_run_id
        if since is None or not run_id or first.event_time.ToDatetime(timezone.utc) < since:
            break
    return [r for results in reversed(per_run) for r in results]
