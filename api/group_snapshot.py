"""The VirtualMachineGroupSnapshot object (vmsnap.io/v1alpha1): several VMs snapshotted together as one restorable
point, all members or none. Models, the whole spec check (admission's and the saga's), the member snapshots'
names, the skew of their create times. Pure: no I/O, no clock.

The members' template is the schedule's (api.schedule.SnapshotTemplate: VirtualMachineSnapshot's own fields), so
a member passes exactly when a snapshot made from it would; members by vmNames or by vmSelector, as a schedule's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from .conditions import Condition, get_condition
from .duration import parse_duration_seconds, quiesce_minutes_or_default, quiesce_timeout_problem
from .group_snapshot_messages import (
    MEMBERS_EXACTLY_ONE,
    NO_MEMBERS,
    deadline_shorter_than_quiesce,
    duplicate_member,
    member_in_other_namespace,
    too_many_members,
    vm_group_cycle,
    vm_group_empty,
    vm_group_not_found,
)
from .group_snapshot_names import (
    DEFAULT_GROUP_DEADLINE,
    DEFAULT_MAX_SKEW,
    FINAL_FAILURE_REASONS,
    GROUP_SNAPSHOT_API_VERSION,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_UID_ANNOTATION,
    GROUP_SPEC_DEADLINE_PATH,
    GROUP_SPEC_MAX_SKEW_PATH,
    GROUP_SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH,
    GROUP_SPEC_VM_NAMES_PATH,
    GROUP_SPEC_VM_SELECTOR_PATH,
    MAX_GROUP_MEMBERS,
    VM_GROUP_KIND,
    GroupConditionType,
)
from .limits import MAX_SNAPSHOT_NAME_LENGTH
from .meta import ApiModel, KubeObject, KubeTime
from .names import VM_KIND, ConditionStatus
from .schedule import LabelSelector, SnapshotTemplate
from .virtualmachinesnapshot import VirtualMachineSnapshot

_SKEW_NEEDED = "a skew is the longest time allowed between the members' snapshots, such as 30s or 2m"
_DEADLINE_NEEDED = "a deadline is how long the whole group may take, such as 30m or 2h"


class GroupSnapshotSpec(ApiModel):
    vm_names: list[str] | None = Field(default=None, alias="vmNames")
    vm_selector: LabelSelector | None = Field(default=None, alias="vmSelector")
    # a VM Operator VirtualMachineGroup's name: its members (spec.bootOrder, nested groups followed), in boot order
    vm_group_name: str | None = Field(default=None, alias="vmGroupName")
    template: SnapshotTemplate = Field(default_factory=SnapshotTemplate)
    # durations: Go (`30s`), words or ISO-8601, as api.duration reads them
    max_skew: str | None = Field(default=None, alias="maxSkew")
    deadline: str | None = None
    # true: revert every member's VM to its member snapshot, in name order (the one field that may change)
    revert: bool | None = None

    @property
    def max_skew_seconds(self) -> float:
        return float(parse_duration_seconds(self.max_skew or DEFAULT_MAX_SKEW, field=GROUP_SPEC_MAX_SKEW_PATH,
                                            needed=_SKEW_NEEDED))

    @property
    def deadline_text(self) -> str:
        return self.deadline or DEFAULT_GROUP_DEADLINE

    @property
    def deadline_delta(self) -> timedelta:
        return timedelta(seconds=float(parse_duration_seconds(self.deadline_text,
                                                              field=GROUP_SPEC_DEADLINE_PATH,
                                                              needed=_DEADLINE_NEEDED)))

    @property
    def quiesce_minutes(self) -> int | None:
        quiesce = self.template.quiesce
        return None if quiesce is None else quiesce_minutes_or_default(quiesce.timeout)


class GroupMember(ApiModel):
    vm_name: str = Field(alias="vmName")
    snapshot_name: str = Field(alias="snapshotName")
    # the vSphere snapshot's moref, as the member object recorded it
    unique_id: str | None = Field(default=None, alias="uniqueID")
    # vCenter's create time of the member's snapshot: the skew is measured from these
    create_time: KubeTime | None = Field(default=None, alias="createTime")


class GroupSnapshotStatus(ApiModel):
    conditions: list[Condition] | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    phase: str | None = None
    members: list[GroupMember] | None = None
    member_count: int | None = Field(default=None, alias="memberCount")
    ready_members: int | None = Field(default=None, alias="readyMembers")
    # the time between the first and the last member's snapshot, as text (`1.25s`) and in seconds
    skew: str | None = None
    skew_seconds: float | None = Field(default=None, alias="skewSeconds")
    # the saga that wrote it (its Temporal workflow ID)
    workflow_id: str | None = Field(default=None, alias="workflowID")
    # spec.revert: the generation whose revert ended (reverted, or stopped at a failing member), and the VMs
    # reverted by it, in order
    reverted_generation: int | None = Field(default=None, alias="revertedGeneration")
    reverted_members: list[str] | None = Field(default=None, alias="revertedMembers")


class VirtualMachineGroupSnapshot(KubeObject):
    api_version: str = Field(default=GROUP_SNAPSHOT_API_VERSION, alias="apiVersion")
    kind: str = GROUP_SNAPSHOT_KIND
    spec: GroupSnapshotSpec = Field(default_factory=GroupSnapshotSpec)
    status: GroupSnapshotStatus = Field(default_factory=GroupSnapshotStatus)

    def condition(self, condition_type: str) -> Condition | None:
        return get_condition(self.status.conditions, condition_type)

    @property
    def is_ready(self) -> bool:
        ready = self.condition(GroupConditionType.READY)
        return ready is not None and ready.status == ConditionStatus.TRUE

    @property
    def revert_wanted(self) -> bool:
        """spec.revert on a Ready group whose current generation has not been reverted yet."""
        return (bool(self.spec.revert) and self.is_ready
                and self.status.reverted_generation != self.metadata.generation)

    @property
    def finished(self) -> bool:
        """Ready, or failed for good: no saga runs for it again."""
        ready = self.condition(GroupConditionType.READY)
        return ready is not None and (ready.status == ConditionStatus.TRUE or ready.reason in FINAL_FAILURE_REASONS)


# --- the whole check ------------------------------------------------------------------------------------------


def spec_problems(spec: GroupSnapshotSpec) -> list[tuple[str, str]]:
    """Every reason the spec cannot be taken, as (field path, message naming the field); empty when it can. What
    the cluster holds (the VMs themselves) is admission's and the preflight's, not this."""
    problems: list[tuple[str, str]] = []
    if [spec.vm_names is not None, spec.vm_selector is not None, spec.vm_group_name is not None].count(True) != 1:
        problems.append((GROUP_SPEC_VM_SELECTOR_PATH, MEMBERS_EXACTLY_ONE))
    if spec.vm_names is not None:
        problems += [(path, problem) for path, problem in names_problems(spec.vm_names)]
    quiesce = spec.template.quiesce
    if quiesce is not None and (problem := quiesce_timeout_problem(quiesce.timeout,
                                                                   field=GROUP_SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH)):
        problems.append((GROUP_SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH, problem))
    try:
        spec.max_skew_seconds
    except ValueError as error:
        problems.append((GROUP_SPEC_MAX_SKEW_PATH, str(error)))
    quiesce_ok = quiesce is None or not any(path == GROUP_SPEC_TEMPLATE_QUIESCE_TIMEOUT_PATH for path, _ in problems)
    try:
        deadline = spec.deadline_delta
    except ValueError as error:
        problems.append((GROUP_SPEC_DEADLINE_PATH, str(error)))
    else:
        minutes = spec.quiesce_minutes if quiesce_ok else None
        if minutes is not None and deadline < timedelta(minutes=minutes):
            problems.append((GROUP_SPEC_DEADLINE_PATH,
                             deadline_shorter_than_quiesce(spec.deadline or DEFAULT_GROUP_DEADLINE, minutes)))
    return problems


def names_problems(names: Sequence[str]) -> list[tuple[str, str]]:
    """spec.vmNames: at least one, at most MAX_GROUP_MEMBERS, each once, each in the group's namespace."""
    if not names:
        return [(GROUP_SPEC_VM_NAMES_PATH, NO_MEMBERS)]
    problems: list[tuple[str, str]] = []
    if len(names) > MAX_GROUP_MEMBERS:
        problems.append((GROUP_SPEC_VM_NAMES_PATH, too_many_members(GROUP_SPEC_VM_NAMES_PATH, len(names))))
    seen: set[str] = set()
    for i, name in enumerate(names):
        path = f"{GROUP_SPEC_VM_NAMES_PATH}[{i}]"
        if "/" in name:
            problems.append((path, member_in_other_namespace(path, name)))
        elif name in seen:
            problems.append((path, duplicate_member(path, name)))
        seen.add(name)
    return problems


def owning_group(snapshot: VirtualMachineSnapshot) -> tuple[str, str] | None:
    """(name, uid) of the group whose member `snapshot` is: its label, its UID annotation and its controlling
    ownerReference all agree. None for every other snapshot (a label or annotation put on by hand is not enough)."""
    name = snapshot.metadata.label(GROUP_SNAPSHOT_LABEL)
    uid = snapshot.metadata.annotation(GROUP_SNAPSHOT_UID_ANNOTATION)
    if not name or not uid:
        return None
    owned = any(o.kind == GROUP_SNAPSHOT_KIND and o.uid == uid and o.name == name
                for o in snapshot.metadata.owner_references or [])
    return (name, uid) if owned else None


def vm_group_members(name: str, read: Callable[[str], dict[str, Any] | None]) -> tuple[list[str], str]:
    """The VirtualMachines of VM Operator's VirtualMachineGroup `name` in boot order (spec.bootOrder[].members,
    a nested VirtualMachineGroup's in its place, each VM once), read with `read(group name) -> object or None`;
    and why there are none ("" when there are)."""
    found: list[str] = []

    def follow(group: str, path: tuple[str, ...]) -> str:
        if group in path:
            return vm_group_cycle(group)
        obj = read(group)
        if obj is None:
            return vm_group_not_found(group)
        for step in (obj.get("spec") or {}).get("bootOrder") or []:
            for member in step.get("members") or []:
                kind, member_name = member.get("kind") or VM_KIND, member.get("name") or ""
                if kind == VM_GROUP_KIND:
                    if problem := follow(member_name, (*path, group)):
                        return problem
                elif kind == VM_KIND and member_name and member_name not in found:
                    found.append(member_name)
        return ""
    problem = follow(name, ())
    if not problem and not found:
        problem = vm_group_empty(name)
    return ([] if problem else found), problem


# --- names and skew -------------------------------------------------------------------------------------------


def member_snapshot_name(group: str, vm: str) -> str:
    """Deterministic per (group, VM), so a retried or replayed saga finds the member it made instead of making a
    second; a DNS subdomain of at most 80 characters (the vSphere name limit): readable prefix, cut to fit, and a
    hash of the pair so two cut prefixes never collide."""
    digest = hashlib.sha256(f"{group}\0{vm}".encode()).hexdigest()[:6]
    room = MAX_SNAPSHOT_NAME_LENGTH - len(digest) - 1
    prefix = re.sub("[^a-z0-9-]", "-", f"{group}-{vm}".lower())[:room].strip("-") or "g"
    return f"{prefix}-{digest}"


def skew_seconds(times: Sequence[datetime]) -> float:
    """The time between the first and the last of the members' create times (0 for one member)."""
    return (max(times) - min(times)).total_seconds() if times else 0.0


def format_skew(seconds: float) -> str:
    """As the Skew column shows it: `0s`, `1.25s`, `2m3.5s`."""
    minutes, rest = divmod(round(seconds, 3), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
