"""GroupSnapshot's saga with fake activities on the dev server, every branch: all members Ready within the skew
(and the barrier: no member goes before every member said it is ready), a preflight refusal (nothing is taken), a
member failing at each position (before the barrier, after it), a member refused at creation, the skew exceeded,
the deadline, the undo failing once and retried, and a worker replaced mid-saga (the new worker replays the
history and the saga completes, or undoes).

The members are small fake workflows (FakeMember, on a task queue of their own) standing in for CreateSnapshot's
part in the barrier: they signal `member_ready` to the saga, wait for `group_go`, then report the go (the fake
vCenter task); the fake Kubernetes reads answer from what they did."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from activities.kube_group_snapshot import KubeGroupSnapshotActivities
from activities.vsphere_group import VSphereGroupActivities
from api.group_snapshot import member_snapshot_name
from api.group_snapshot_names import GroupEventReason, GroupPhase, GroupReason
from contract.group_payloads import (
    GroupOutcome,
    GroupPlan,
    GroupRecord,
    GroupRef,
    GroupRevertPlan,
    GroupRevertRecord,
    GroupRevertRef,
    MemberCheck,
    MemberCreate,
    MemberCreated,
    MemberPlan,
    MemberReady,
    MemberRecord,
    MemberRevert,
    MemberReverted,
    MembersRead,
    MemberState,
    MembersUndo,
    SnapshotTime,
)
from contract.names import (
    CREATE_CURRENT_STEP_QUERY,
    CREATE_GROUP_GO_SIGNAL,
    GROUP_MEMBER_READY_SIGNAL,
    GROUP_REVERT_WORKFLOW,
    GROUP_SNAPSHOT_WORKFLOW,
)
from tests.workflows.fakes import Harness, create_op
from workflows.group_revert import GroupRevert
from workflows.group_snapshot import GroupSnapshot

pytestmark = pytest.mark.timeout(120)
PATIENCE = 60
T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)


class MemberArgs(BaseModel):
    group_workflow_id: str
    uid: str
    vm: str
    ready_after: float = 0.0   # seconds before it says it is ready
    silent: bool = False       # never says it is ready (a create stuck in its VM's queue)
    hold: bool = False         # says it only once the test signals `release`


@workflow.defn(name="FakeGroupMember")
class FakeMember:
    """CreateSnapshot's part in the barrier: ready → wait for the go → the (fake) vCenter task."""

    def __init__(self) -> None:
        self.go = False
        self.released = False

    @workflow.signal(name=CREATE_GROUP_GO_SIGNAL)
    def group_go(self) -> None:
        self.go = True

    @workflow.signal(name="release")
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self, member: MemberArgs) -> None:
        if member.silent:
            await workflow.wait_condition(lambda: False)
        if member.hold:
            await workflow.wait_condition(lambda: self.released)
        if member.ready_after:
            await workflow.sleep(member.ready_after)
        await workflow.execute_activity("fake_member_ready", member.vm, start_to_close_timeout=timedelta(seconds=10))
        await workflow.get_external_workflow_handle(member.group_workflow_id).signal(
            GROUP_MEMBER_READY_SIGNAL, MemberReady(snapshot_uid=member.uid, workflow_id=workflow.info().workflow_id))
        await workflow.wait_condition(lambda: self.go)
        await workflow.execute_activity("fake_member_go", member.vm, start_to_close_timeout=timedelta(seconds=10))


@dataclass
class World:
    """The fakes' state: what the saga is told, and what it did."""

    client: Client
    member_queue: str
    namespace: str = field(default_factory=lambda: f"ns-{uuid.uuid4().hex[:6]}")
    vms: list[str] = field(default_factory=lambda: ["vm-a", "vm-b", "vm-c"])
    kube_problems: dict[str, str] = field(default_factory=dict)
    vcenter_problems: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)           # VM → the create's refusal
    fail_before_ready: dict[str, str] = field(default_factory=dict)  # VM → its create's failure, before the barrier
    fail_after_go: dict[str, str] = field(default_factory=dict)      # VM → its vCenter task's failure
    ready_after: dict[str, float] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    hold: set[str] = field(default_factory=set)
    taken_at: dict[str, float] = field(default_factory=dict)        # VM → its snapshot's create time (s after T0)
    deadline_seconds: float = 60.0
    undo_failures: int = 0                                          # undo calls that fail before one works
    undo_fatal: bool = False                                        # ... each for good (not retried by Temporal)
    undo_rounds: int = 1                                            # undo calls that still see members
    # what happened
    plans: int = 0
    checks: list[str] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)           # VM → member uid
    ready: dict[str, datetime] = field(default_factory=dict)        # VM → when it said it is ready
    gone: dict[str, datetime] = field(default_factory=dict)         # VM → when it got the go
    undos: list[MembersUndo] = field(default_factory=list)
    records: list[GroupRecord] = field(default_factory=list)

    def ref(self) -> GroupRef:
        return GroupRef(namespace=self.namespace, name="app", uid="group-uid")

    @property
    def saga_id(self) -> str:
        return f"group-{self.namespace}"

    def member_id(self, vm: str) -> str:
        return f"member-{self.namespace}-{vm}"

    def activities(self) -> list[Callable]:
        @activity.defn(name="kube_plan_group_snapshot")
        async def plan(ref: GroupRef) -> GroupPlan | None:
            self.plans += 1
            return GroupPlan(group=ref, max_skew_seconds=30, max_skew="30s", deadline_limit="1m",
                             deadline=datetime.now(UTC) + timedelta(seconds=self.deadline_seconds) if self.plans == 1
                             else self.deadline,
                             members=[MemberPlan(vm=vm, snapshot=member_snapshot_name("app", vm),
                                                 vm_moref=f"moref-{vm}", problem=self.kube_problems.get(vm, ""))
                                      for vm in self.vms])

        @activity.defn(name="vsphere_preflight_group_member")
        async def preflight(check: MemberCheck) -> str:
            self.checks.append(check.vm)
            return self.vcenter_problems.get(check.vm, "")

        @activity.defn(name="kube_create_group_member")
        async def create(request: MemberCreate) -> MemberCreated:
            made = MemberCreated(vm=request.vm, snapshot=request.snapshot)
            if request.vm in self.refuse:
                return made.model_copy(update={"error": self.refuse[request.vm]})
            uid = self.created.setdefault(request.vm, f"uid-{request.vm}")
            if request.vm not in self.fail_before_ready:
                await self.client.start_workflow(
                    "FakeGroupMember", MemberArgs(group_workflow_id=self.saga_id, uid=uid, vm=request.vm,
                                                  ready_after=self.ready_after.get(request.vm, 0.0),
                                                  silent=request.vm in self.silent, hold=request.vm in self.hold),
                    id=self.member_id(request.vm), task_queue=self.member_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            return made.model_copy(update={"uid": uid})

        @activity.defn(name="fake_member_ready")
        async def member_ready(vm: str) -> None:
            self.ready.setdefault(vm, datetime.now(UTC))

        @activity.defn(name="fake_member_go")
        async def member_go(vm: str) -> None:
            self.gone.setdefault(vm, datetime.now(UTC))

        @activity.defn(name="kube_read_group_members")
        async def read(ref: GroupRef) -> MembersRead:
            members = {}
            for vm, uid in self.created.items():
                state = MemberState(uid=uid, deleting=bool(self.undos))
                if vm in self.fail_before_ready:
                    state.failed = self.fail_before_ready[vm]
                elif vm in self.gone:
                    state.failed = self.fail_after_go.get(vm, "")
                    state.ready = not state.failed
                    state.unique_id = "" if state.failed else f"snapshot-{vm}"
                members[member_snapshot_name("app", vm)] = state
            return MembersRead(members=members)

        @activity.defn(name="vsphere_read_snapshot_create_times")
        async def create_times(snapshots: list[SnapshotTime]) -> list[datetime | None]:
            return [T0 + timedelta(seconds=self.taken_at.get(s.vm_moref.removeprefix("moref-"), 0.0))
                    for s in snapshots]

        @activity.defn(name="kube_undo_group_members")
        async def undo(request: MembersUndo) -> int:
            if self.undo_failures:
                self.undo_failures -= 1
                raise ApplicationError("apiserver unavailable", non_retryable=self.undo_fatal)
            self.undos.append(request)
            return len(request.uids) if len(self.undos) <= self.undo_rounds else 0

        @activity.defn(name="kube_record_group_snapshot")
        async def record(change: GroupRecord) -> None:
            self.records.append(change)

        return [plan, preflight, create, member_ready, member_go, read, create_times, undo, record]

    deadline: datetime = T0

    @property
    def final(self) -> GroupRecord:
        return self.records[-1]


@dataclass
class Saga:
    client: Client
    task_queue: str
    world: World

    async def start(self) -> WorkflowHandle:
        return await self.client.start_workflow(GROUP_SNAPSHOT_WORKFLOW, self.world.ref(), id=self.world.saga_id,
                                                task_queue=self.task_queue, result_type=GroupOutcome)

    async def __call__(self) -> GroupOutcome:
        return await asyncio.wait_for((await self.start()).result(), PATIENCE)


@asynccontextmanager
async def saga_worker(client: Client, world: World, task_queue: str) -> AsyncIterator[Saga]:
    async with Worker(client, task_queue=task_queue, workflows=[GroupSnapshot], activities=world.activities()):
        yield Saga(client, task_queue, world)


@asynccontextmanager
async def running(client: Client, world: World) -> AsyncIterator[Saga]:
    async with Worker(client, task_queue=world.member_queue, workflows=[FakeMember],
                      activities=world.activities(), workflow_runner=UnsandboxedWorkflowRunner()), \
            saga_worker(client, world, f"group-{uuid.uuid4().hex[:8]}") as saga:
        yield saga


@pytest.fixture
def world(temporal_client: Client) -> World:
    return World(client=temporal_client, member_queue=f"members-{uuid.uuid4().hex[:8]}")


def phases(world: World) -> list[str]:
    return [r.phase for r in world.records]


async def test_every_member_ready_within_the_skew_and_none_goes_before_all_are_ready(temporal_client: Client,
                                                                                    world: World):
    world.ready_after = {"vm-c": 2.0}           # the last member's queue frees up two seconds later
    world.taken_at = {"vm-a": 0.0, "vm-b": 0.4, "vm-c": 1.25}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert outcome.result == "Ready" and outcome.skew_seconds == 1.25
    assert set(world.gone) == {"vm-a", "vm-b", "vm-c"}
    assert min(world.gone.values()) >= max(world.ready.values()), "a member went before the last was ready"
    assert world.checks == ["vm-a", "vm-b", "vm-c"] and not world.undos
    final = world.final
    assert (final.phase, final.ready, final.ready_members, final.skew_seconds) == (GroupPhase.READY, True, 3, 1.25)
    assert [(m.vm, m.unique_id, m.create_time) for m in final.members] == [
        ("vm-a", "snapshot-vm-a", T0), ("vm-b", "snapshot-vm-b", T0 + timedelta(seconds=0.4)),
        ("vm-c", "snapshot-vm-c", T0 + timedelta(seconds=1.25))]
    assert phases(world) == [GroupPhase.PREFLIGHT, GroupPhase.TAKING, GroupPhase.READY]


async def test_a_preflight_refusal_takes_nothing_and_names_every_member_refused(temporal_client: Client,
                                                                               world: World):
    world.kube_problems = {"vm-b": "VirtualMachine 'vm-b' does not exist"}
    world.vcenter_problems = {"vm-c": "VirtualMachine 'vm-c' cannot be quiesced: VMware Tools is not running"}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert (outcome.result, outcome.reason) == ("Failed", GroupReason.PREFLIGHT_FAILED)
    assert "vm-b" in outcome.message and "vm-c" in outcome.message and "nothing was taken" in outcome.message
    assert world.checks == ["vm-a", "vm-c"], "vCenter's side is asked only of members Kubernetes' side passed"
    assert not world.created and not world.undos
    assert (world.final.phase, world.final.reason) == (GroupPhase.FAILED, GroupReason.PREFLIGHT_FAILED)


@pytest.mark.parametrize("position", [0, 1, 2])
async def test_a_member_failing_after_the_go_undoes_every_member(temporal_client: Client, world: World,
                                                                 position: int):
    failing = world.vms[position]
    world.fail_after_go = {failing: "VirtualMachineSnapshotCreationFailed: GenericVmConfigFault: disk full"}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert (outcome.result, outcome.reason) == ("Failed", GroupReason.MEMBER_FAILED)
    assert f"'{failing}'" in outcome.message and "disk full" in outcome.message
    assert sorted(world.undos[0].uids) == ["uid-vm-a", "uid-vm-b", "uid-vm-c"], "every member taken is undone"
    assert phases(world)[-2:] == [GroupPhase.COMPENSATING, GroupPhase.FAILED]
    assert world.final.reason == GroupReason.MEMBER_FAILED and world.final.message == outcome.message


@pytest.mark.parametrize("position", [0, 2])
async def test_a_member_failing_before_the_barrier_undoes_the_others_before_any_goes(temporal_client: Client,
                                                                                     world: World, position: int):
    failing = world.vms[position]
    world.fail_before_ready = {failing: "VirtualMachineSnapshotCreationFailed: VM not in vSphere"}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert outcome.reason == GroupReason.MEMBER_FAILED and f"'{failing}'" in outcome.message
    assert not world.gone, "no member's vCenter task started"
    assert len(world.undos[0].uids) == 3


async def test_a_member_refused_at_creation_undoes_those_made(temporal_client: Client, world: World):
    world.refuse = {"vm-b": "a VirtualMachineSnapshot 'x' exists that this group did not make: left alone"}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert outcome.reason == GroupReason.MEMBER_FAILED and "'vm-b'" in outcome.message
    assert sorted(world.undos[0].uids) == ["uid-vm-a", "uid-vm-c"] and not world.gone


async def test_the_skew_exceeded_undoes_every_member_naming_the_first_and_the_last(temporal_client: Client,
                                                                                  world: World):
    world.taken_at = {"vm-a": 0.0, "vm-b": 45.0, "vm-c": 3.0}
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert (outcome.result, outcome.reason, outcome.skew_seconds) == ("Failed", GroupReason.SKEW_EXCEEDED, 45.0)
    assert member_snapshot_name("app", "vm-a") in outcome.message
    assert member_snapshot_name("app", "vm-b") in outcome.message and "45s" in outcome.message
    assert len(world.undos[0].uids) == 3 and world.final.skew_seconds == 45.0


async def test_the_deadline_undoes_every_member(temporal_client: Client, world: World):
    world.silent = {"vm-b"}
    world.deadline_seconds = 3.0
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert outcome.reason == GroupReason.DEADLINE_EXCEEDED and "spec.deadline 1m" in outcome.message
    assert not world.gone and len(world.undos[0].uids) == 3


@pytest.mark.parametrize("fatal", [False, True], ids=["retried-by-temporal", "failed-step-retried-by-the-saga"])
async def test_an_undo_failing_once_is_retried_and_waited_for(temporal_client: Client, world: World, fatal: bool):
    world.fail_after_go = {"vm-a": "VirtualMachineSnapshotCreationFailed: boom"}
    world.undo_failures, world.undo_rounds, world.undo_fatal = 1, 2, fatal  # then two rounds still see members
    async with running(temporal_client, world) as saga:
        outcome = await saga()
    assert outcome.reason == GroupReason.MEMBER_FAILED
    assert len(world.undos) == 3, "the saga waits until no member is left"
    assert world.final.phase == GroupPhase.FAILED


async def replayed(client: Client, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    result = await Replayer(workflows=[GroupSnapshot], data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("then", ["completes", "undoes"])
async def test_a_worker_replaced_mid_saga_resumes_it(temporal_client: Client, world: World, then: str):
    """The saga's worker stops while one member is held before the barrier; a new worker (its cache empty: it
    replays the history) takes over; the member is released and the saga completes — or, if a member fails
    then, undoes every member. Its whole history replays."""
    world.hold = {"vm-c"}
    if then == "undoes":
        world.fail_after_go = {"vm-b": "VirtualMachineSnapshotCreationFailed: host lost"}
    task_queue = f"group-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=world.member_queue, workflows=[FakeMember],
                      activities=world.activities(), workflow_runner=UnsandboxedWorkflowRunner()):
        async with saga_worker(temporal_client, world, task_queue) as saga:
            handle = await saga.start()
            for _ in range(100):
                if {"vm-a", "vm-b"} <= set(world.ready) and len(world.created) == 3:
                    break
                await asyncio.sleep(0.1)
            assert {"vm-a", "vm-b"} <= set(world.ready) and not world.gone
        # the first worker is gone; a new one replays the saga's history, then the held member goes on
        async with saga_worker(temporal_client, world, task_queue):
            await temporal_client.get_workflow_handle(world.member_id("vm-c")).signal("release")
            outcome = await asyncio.wait_for(handle.result(), PATIENCE)
    if then == "completes":
        assert outcome.result == "Ready" and set(world.gone) == {"vm-a", "vm-b", "vm-c"} and not world.undos
    else:
        assert outcome.reason == GroupReason.MEMBER_FAILED and len(world.undos[0].uids) == 3
    assert min(world.gone.values()) >= max(world.ready.values())
    assert world.plans == 1, "the plan was read once: the new worker took it from the history"
    await replayed(temporal_client, world.saga_id)


# --- the member's side: CreateSnapshot at the barrier ----------------------------------------------------------------

@workflow.defn(name="FakeGroupSaga")
class FakeGroupSaga:
    """The saga's side of the barrier: the first member_ready it is told."""

    def __init__(self) -> None:
        self.told: MemberReady | None = None

    @workflow.signal(name=GROUP_MEMBER_READY_SIGNAL)
    def member_ready(self, ready: MemberReady) -> None:
        self.told = ready

    @workflow.run
    async def run(self) -> MemberReady:
        await workflow.wait_condition(lambda: self.told is not None)
        assert self.told is not None
        return self.told


async def test_a_member_create_stores_its_extra_config_says_it_is_ready_and_waits_for_the_go(
        temporal_client: Client, wf: Harness):
    """A plan that names its group's saga: ExtraConfig, then `member_ready` to the saga with the object's UID and
    the create's workflow ID, then no vCenter task until `group_go`; after it, the create goes on as any other."""
    saga_queue, saga_id = f"saga-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    wf.world.on("kube_prepare_snapshot",
                lambda ref: wf.world.default("kube_prepare_snapshot", ref).model_copy(
                    update={"group_workflow_id": saga_id}))
    async with Worker(temporal_client, task_queue=saga_queue, workflows=[FakeGroupSaga],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        saga = await temporal_client.start_workflow("FakeGroupSaga", id=saga_id, task_queue=saga_queue,
                                                    result_type=MemberReady)
        op = create_op(wf.vm, "member-1")
        create = await wf.start(op)
        told = await asyncio.wait_for(saga.result(), PATIENCE)
        assert (told.snapshot_uid, told.workflow_id) == (op.snapshot_uid, op.workflow_id)
        assert await create.query(CREATE_CURRENT_STEP_QUERY) == "wait for the group's other members"
        steps = wf.world.steps()
        assert "vsphere_store_snapshot_extra_config" in steps and "vsphere_create_snapshot" not in steps
        await create.signal(CREATE_GROUP_GO_SIGNAL)
        assert await wf.outcome(create) == "Ready"
    assert wf.world.steps().index("vsphere_create_snapshot") > wf.world.steps().index(
        "vsphere_store_snapshot_extra_config")


async def test_a_create_without_a_group_never_waits(wf: Harness):
    assert await wf.run(create_op(wf.vm, "alone")) == "Ready"


def test_the_fakes_have_the_names_and_types_of_the_group_activities(world: World):
    def definitions(functions) -> dict[str, activity._Definition]:
        found = (activity._Definition.from_callable(f) for f in functions)
        return {d.name: d for d in found if d is not None}
    product = definitions(f for cls in (KubeGroupSnapshotActivities, VSphereGroupActivities)
                          for f in vars(cls).values())
    fakes = {name: d for name, d in definitions(world.activities()).items() if not name.startswith("fake_")}
    fakes |= {name: d for name, d in definitions(RevertWorld().activities()).items()}
    assert set(fakes) == set(product) and len(product) == 11
    for name, fake in fakes.items():
        assert (fake.arg_types, fake.ret_type) == (product[name].arg_types, product[name].ret_type), name


# --- spec.revert: GroupRevert ------------------------------------------------------------------------------------

@dataclass
class RevertWorld:
    members: list[str] = field(default_factory=lambda: ["db", "app-2", "app-1"])
    fail: dict[str, str] = field(default_factory=dict)     # VM → its revert condition's `<reason>: <message>`
    nothing: bool = False
    asked: list[str] = field(default_factory=list)
    running: str = ""                                       # the VM whose revert is under way
    overlapped: bool = False
    records: list[GroupRevertRecord] = field(default_factory=list)

    def activities(self) -> list[Callable]:
        @activity.defn(name="kube_plan_group_revert")
        async def plan(ref: GroupRevertRef) -> GroupRevertPlan | None:
            if self.nothing:
                return None
            return GroupRevertPlan(members=[MemberRecord(vm=vm, snapshot=f"app-{vm}") for vm in sorted(self.members)])

        @activity.defn(name="kube_request_member_revert")
        async def request(member: MemberRevert) -> str:
            self.overlapped |= bool(self.running)
            self.asked.append(member.vm)
            self.running = member.vm
            return ""

        @activity.defn(name="kube_read_member_revert")
        async def read(member: MemberRevert) -> MemberReverted:
            self.running = ""
            return MemberReverted(done=member.vm not in self.fail, failed=self.fail.get(member.vm, ""))

        @activity.defn(name="kube_record_group_revert")
        async def record(change: GroupRevertRecord) -> None:
            self.records.append(change)

        return [plan, request, read, record]


async def revert(client: Client, world: RevertWorld) -> str:
    task_queue = f"revert-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[GroupRevert], activities=world.activities()):
        ref = GroupRevertRef(group=GroupRef(namespace="ns", name="app", uid="u"), generation=2)
        return await asyncio.wait_for(client.execute_workflow(
            GROUP_REVERT_WORKFLOW, ref, id=f"revert-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
            result_type=str), PATIENCE)


async def test_the_members_are_reverted_one_after_the_other_in_name_order(temporal_client: Client):
    world = RevertWorld()
    result = await revert(temporal_client, world)
    assert world.asked == ["app-1", "app-2", "db"] and not world.overlapped
    final = world.records[-1]
    assert (final.ok, final.ended, final.reverted) == (True, True, ["app-1", "app-2", "db"])
    assert final.event_reason == GroupEventReason.REVERTED and result == final.message
    assert world.records[0].reason == GroupReason.REVERT_IN_PROGRESS and not world.records[0].ended


async def test_a_member_failing_to_revert_stops_the_rest_and_is_named(temporal_client: Client):
    world = RevertWorld(fail={"app-2": "VirtualMachineSnapshotRevertTaskFailed: the host said no"})
    await revert(temporal_client, world)
    assert world.asked == ["app-1", "app-2"], "db was not reverted"
    final = world.records[-1]
    assert (final.ok, final.ended, final.reason, final.reverted) == (False, True, GroupReason.REVERT_FAILED,
                                                                      ["app-1"])
    assert "member VirtualMachine 'app-2'" in final.message and "the host said no" in final.message
    assert "not reverted: db" in final.message and final.event_reason == GroupEventReason.REVERT_FAILED


async def test_nothing_to_revert_writes_nothing(temporal_client: Client):
    world = RevertWorld(nothing=True)
    assert await revert(temporal_client, world) == "nothing to revert"
    assert not world.asked and not world.records
