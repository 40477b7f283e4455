"""What a workflow learns from a vCenter task's attempt that was lost while it was cancelling it: the task to
cancel itself, from the attempt's last heartbeat (VSphereSnapshotActivities heartbeats {"task": moref, ...})."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError, TimeoutType

from workflows.common import lost_task


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError("activity failed", scheduled_event_id=5, started_event_id=6, identity="w",
                          activity_type="vsphere_create_snapshot", activity_id="3", retry_state=None)
    error.__cause__ = cause
    return error


def test_a_heartbeat_timeout_names_the_task_of_the_lost_attempt():
    lost = TimeoutError("heartbeat", type=TimeoutType.HEARTBEAT,
                        last_heartbeat_details=[{"task": "task-71", "step": "create snapshot", "progress": 40}])
    assert lost_task(activity_error(lost)) == "task-71"


def test_anything_else_names_no_task():
    assert lost_task(activity_error(CancelledError())) is None  # the attempt cancelled its task itself
    assert lost_task(activity_error(ApplicationError("refused"))) is None
    assert lost_task(activity_error(TimeoutError("start", type=TimeoutType.START_TO_CLOSE,
                                                 last_heartbeat_details=[]))) is None
    assert lost_task(activity_error(TimeoutError("odd", type=TimeoutType.HEARTBEAT,
                                                 last_heartbeat_details=["not a dict"]))) is None
    assert lost_task(None) is None
