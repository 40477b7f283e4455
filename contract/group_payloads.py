"""The messages between a group snapshot's saga (workflows/group_snapshot.py), its activities and its members'
creates. References, names and states, never whole objects: the activities read the live group, VMs and members
themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class GroupRef(BaseModel):
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class MemberPlan(BaseModel):
    vm: str
    snapshot: str             # the member's deterministic name (api.group_snapshot.member_snapshot_name)
    vm_moref: str = ""        # VirtualMachine.status.uniqueID ("" when not bound)
    problem: str = ""         # non-empty: the preflight refuses this member (Kubernetes' side)


class GroupPlan(BaseModel):
    """What the saga does, read once at its start (recorded in the history, so a replay does the same)."""

    group: GroupRef
    members: list[MemberPlan] = Field(default_factory=list)
    max_skew_seconds: float = 30.0
    max_skew: str = "30s"
    deadline: datetime
    deadline_limit: str = "30m"
    quiesce: bool = False
    finished: bool = False    # the object is Ready or failed for good already: nothing to do
    spec_problem: str = ""    # non-empty: the spec cannot be taken (an object admitted without the webhook)


class MemberCheck(BaseModel):
    """The vCenter side of a member's preflight."""

    vm: str
    vm_moref: str
    quiesce: bool = False


class MemberCreate(BaseModel):
    group: GroupRef
    vm: str
    snapshot: str


class MemberCreated(BaseModel):
    vm: str
    snapshot: str
    uid: str = ""             # the member object's UID (what the saga deletes it by)
    error: str = ""           # non-empty: refused (admission, a same-named snapshot that is not the group's)


class MemberState(BaseModel):
    uid: str
    ready: bool = False
    failed: str = ""          # `<reason>: <message>` of the Created (or Ready) condition when it failed for good
    unique_id: str = ""       # the vSphere snapshot's moref, once recorded
    deleting: bool = False


class MembersRead(BaseModel):
    """The group's members as the cluster holds them (by the group's label and uid annotation)."""

    group_gone: bool = False
    members: dict[str, MemberState] = Field(default_factory=dict)   # snapshot name → state


class SnapshotTime(BaseModel):
    vm_moref: str
    snapshot_moref: str


class MemberRecord(BaseModel):
    vm: str
    snapshot: str
    unique_id: str = ""
    create_time: datetime | None = None


class GroupRecord(BaseModel):
    """One write of the group's status (and its Event): the phase, Ready, the members, the skew."""

    group: GroupRef
    workflow_id: str
    phase: str
    ready: bool = False
    reason: str = ""
    message: str = ""
    members: list[MemberRecord] = Field(default_factory=list)
    ready_members: int = 0
    skew_seconds: float | None = None
    event_reason: str = ""
    event_warning: bool = False


class MembersUndo(BaseModel):
    """Delete the group's members: the objects carrying the group's uid, each by its own uid."""

    group: GroupRef
    uids: list[str] = Field(default_factory=list)   # the members this saga made (also any other carrying the uid)


class MemberReady(BaseModel):
    """A member's create, ready at the barrier (signal to the group)."""

    snapshot_uid: str
    workflow_id: str


class GroupOutcome(BaseModel):
    """The saga's result, as the Temporal UI shows it."""

    result: str
    reason: str = ""
    message: str = ""
    skew_seconds: float | None = None


# --- spec.revert ------------------------------------------------------------------------------------------------

class GroupRevertRef(BaseModel):
    group: GroupRef
    generation: int


class GroupRevertPlan(BaseModel):
    """The members to revert, in order (VM name), read once at the revert's start."""

    members: list[MemberRecord] = Field(default_factory=list)


class MemberRevert(BaseModel):
    namespace: str
    vm: str
    snapshot: str


class MemberReverted(BaseModel):
    done: bool = False
    failed: str = ""          # `<reason>: <message>` of the VM's revert condition when the revert failed


class GroupRevertRecord(BaseModel):
    revert: GroupRevertRef
    reverted: list[str] = Field(default_factory=list)
    ended: bool = False       # the revert is over (status.revertedGeneration is written)
    ok: bool = False
    reason: str = ""
    message: str = ""
    event_reason: str = ""
