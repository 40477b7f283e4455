"""The messages between a scheduled run (workflows/scheduled_run.py) and its activities. References and counts,
never whole objects: the activities read the live schedule, VMs and snapshots themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ScheduleRef(BaseModel):
    namespace: str
    name: str
    uid: str = ""   # empty: whichever object has the name (the Temporal Schedule's action is fixed at creation)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class RunRequest(BaseModel):
    schedule: ScheduleRef
    scheduled_time: datetime


class VMTarget(BaseModel):
    vm: str
    snapshot: str             # the deterministic name of this run's snapshot of the VM
    skip_reason: str = ""     # non-empty: the VM is skipped this run (e.g. at vSphere's per-VM limit)


class RunPlan(BaseModel):
    """What a run does, read once at its start (recorded in the history, so a replay does the same)."""

    schedule: ScheduleRef     # with the object's UID
    stamp: str                # the run's label value (api.schedule.run_stamp)
    spread_seconds: float = 0.0
    quiesce_minutes: int | None = None
    targets: list[VMTarget] = Field(default_factory=list)


class CreateRequest(BaseModel):
    """One VM's create: small (never the whole plan), as a run asks for hundreds of them in one workflow task."""

    schedule: ScheduleRef
    stamp: str
    scheduled_time: datetime
    target: VMTarget


class CreateOutcome(BaseModel):
    vm: str
    snapshot: str
    error: str = ""           # non-empty: refused (admission, a same-named snapshot that is not ours)


class RunSnapshots(BaseModel):
    schedule: ScheduleRef
    stamp: str


class SnapshotState(BaseModel):
    ready: bool = False
    failed: str = ""          # `<reason>: <message>` of the Created condition when the create failed for good


class PruneRequest(BaseModel):
    schedule: ScheduleRef
    now: datetime


class PruneOutcome(BaseModel):
    pruned: list[str] = Field(default_factory=list)
    kept: int = 0


class RunRecord(BaseModel):
    schedule: ScheduleRef
    workflow_id: str
    scheduled_time: datetime
    finished_time: datetime
    result: str
    created: int = 0
    failed_vms: dict[str, str] = Field(default_factory=dict)    # VM → why
    skipped_vms: dict[str, str] = Field(default_factory=dict)   # VM → why
    pruned: list[str] = Field(default_factory=list)
    kept: int = 0
    next_run_time: datetime | None = None
    # the VMs whose snapshot this run made (Ready): their failing streak ends. A VM in none of the three is no
    # longer the schedule's, which ends its streak too. (A local activity's input: never read back from a history,
    # so no record without it reaches today's code.)
    succeeded_vms: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    """The run's result, as the Temporal UI shows it."""

    result: str
    created: list[str] = Field(default_factory=list)
    failed_vms: dict[str, str] = Field(default_factory=dict)
    skipped_vms: dict[str, str] = Field(default_factory=dict)
    pruned: list[str] = Field(default_factory=list)
    suspended: bool = False


class SchedulePause(BaseModel):
    schedule_id: str
    note: str
