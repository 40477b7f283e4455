"""Kubernetes and vCenter as fake activities, for the workflows' logic on the Temporal dev server.

This is the one module of tests/workflows that imports product code: the tests import the workflows, models,
names and error types they use from here, so a move of those names is one edit in this file.

`FakeWorld` answers every activity the four operation workflows call, under the activity's real name (the
name in `@activity.defn(name=...)`; `test_fakes.py` checks they match), logs each call with its argument, and
answers the happy path unless a test says otherwise (`on`) or holds a step (`hold`). `harness` runs a worker
with the fakes on a task queue of its own, plus the vCenter-task worker on `vcenter_task_queue(task_queue)`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.kube_snapshot import KubeSnapshotActivities
from activities.kube_vm import KubeVMActivities, KubeVMRevertActivities
from activities.temporal_queue import VMQueueActivities
from activities.vsphere_snapshot import VSphereSnapshotActivities
from activities.vsphere_tree_watch import VSphereTreeWatchActivities
from api import messages
from api.errors import ErrorType
from api.names import (
    QUIESCE_FAULT_REASONS,
    SNAPSHOT_CONSISTENCY_CONDITION,
    SNAPSHOT_DELETED_CONDITION,
    ConsistencyReason,
    EventReason,
    PowerState,
    RevertReason,
    SnapshotConditionType,
    SnapshotReason,
)
from contract.payloads import (
    ConditionChange,
    CreatedSnapshot,
    DeletePlan,
    EventNote,
    FinalizerRemoval,
    Operation,
    OperationKind,
    QueueState,
    RequestedStorageEntry,
    RevertConditionChange,
    RevertedSnapshot,
    RevertPlan,
    SnapshotExtraConfig,
    SnapshotLocation,
    SnapshotLookup,
    SnapshotNode,
    SnapshotPlan,
    SnapshotRef,
    SnapshotStatusChange,
    SnapshotTree,
    TreeSync,
    VMRef,
    VMRestore,
    VSphereSnapshotRequest,
    vm_queue_workflow_id,
)
from contract.queue import enqueue_operation
from workflows import create_snapshot, vm_snapshot_queue
from workflows.create_snapshot import CreateSnapshot
from workflows.delete_snapshot import DeleteSnapshot
from workflows.options import vcenter_task_queue
from workflows.revert_snapshot import RevertSnapshot
from workflows.vm_snapshot_queue import VirtualMachineSnapshotQueue

__all__ = [
    # product names the tests use
    "CreateSnapshot", "DeleteSnapshot", "RevertSnapshot", "VirtualMachineSnapshotQueue", "QueueState",
    "create_snapshot", "vm_snapshot_queue", "enqueue_operation", "vm_queue_workflow_id", "messages",
    "SNAPSHOT_DELETED_CONDITION", "SNAPSHOT_CONSISTENCY_CONDITION", "ConsistencyReason", "QUIESCE_FAULT_REASONS",
    "EventReason", "PowerState", "RevertReason", "SnapshotConditionType",
    "SnapshotReason", "ConditionChange", "CreatedSnapshot", "RevertedSnapshot", "DeletePlan", "EventNote",
    "FinalizerRemoval", "Operation",
    "OperationKind", "RequestedStorageEntry", "RevertConditionChange", "RevertPlan", "SnapshotExtraConfig",
    "SnapshotLocation", "SnapshotLookup", "SnapshotNode", "SnapshotPlan", "SnapshotRef", "SnapshotStatusChange",
    "SnapshotTree", "TreeSync", "VMRef", "VMRestore", "VSphereSnapshotRequest", "PRODUCT_ACTIVITY_CLASSES",
    # ours
    "FakeWorld", "Harness", "harness", "WORKFLOWS", "VM_MOREF", "VM_YAML", "USED_BYTES", "REQUESTED",
    "snapshot_moref", "eventually", "in_turn", "running_until_cancelled", "DEADLINE", "DEADLINE_LIMIT",
    "precondition_failed", "vsphere_fault", "revert_refused",
    "invalid_manifest",
    "create_op", "delete_op", "revert_op",
]

WORKFLOWS = [VirtualMachineSnapshotQueue, CreateSnapshot, RevertSnapshot, DeleteSnapshot]
# the classes whose activities the product's worker registers (test_fakes.py compares the names)
PRODUCT_ACTIVITY_CLASSES = [KubeSnapshotActivities, KubeVMActivities, KubeVMRevertActivities,
                            VSphereSnapshotActivities, VSphereTreeWatchActivities, VMQueueActivities]

# the deadline of today's plans: far enough for every test that does not set its own
DEADLINE = timedelta(hours=1)
DEADLINE_LIMIT = "the deployment's failure deadline of 60 minutes"

# what the fake vCenter and cluster hold
VM_MOREF = "vm-17"
VM_YAML = "H4sI-the-vm-yaml"            # what ExtraConfig and the snapshot carry (opaque to the workflows)
USED_BYTES = 3 * 2**30
REQUESTED = [RequestedStorageEntry(storage_class="gold", total_bytes=12 * 2**30)]


def snapshot_moref(name: str) -> str:
    """The vSphere snapshot the fake vCenter makes (and finds) for a snapshot name."""
    return f"snapshot-{name}"


# what never comes fails the test after this long (a cut-off, not a deadline: everything here takes a second or
# two); pytest-timeout's own interruption of the event loop can leave the workers hanging instead
PATIENCE = 20.0


async def eventually(predicate: Callable[[], Any], explain: Callable[[], str] = lambda: "") -> None:
    """Wait until `predicate()` (sync or async) is true; an AssertionError after PATIENCE seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    while True:
        result = predicate()
        if await result if inspect.isawaitable(result) else result:
            return
        if loop.time() > give_up:
            raise AssertionError(f"never happened; {explain()}")
        await asyncio.sleep(0.02)


# --- what a step answers -----------------------------------------------------------------------------------------

def in_turn(*answers: Any) -> Callable[[Any], Any]:
    """Each call answers the next of these (an exception is raised); the last one repeats."""
    queue = list(answers)

    def answer(_arg: Any) -> Any:
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, BaseException):
            raise value
        return value
    return answer


HEARTBEAT_THROTTLE = timedelta(milliseconds=300)


async def running_until_cancelled(_arg: Any) -> None:
    """A vCenter task that never ends by itself: it heartbeats, which is how a cancel reaches a task's activity,
    until the workflow cancels it (the activity then ends cancelled)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.05)


def precondition_failed(message: str) -> ApplicationError:
    """What kube_prepare_snapshot raises for an object that cannot be snapshotted (no VM, VKS node...)."""
    return ApplicationError(message, type=ErrorType.PRECONDITION_FAILED, non_retryable=True)


def vsphere_fault(message: str, fault: str = "InvalidArgument") -> ApplicationError:
    """What a vSphere activity raises for a task vCenter failed with a fault that retrying will not fix."""
    return ApplicationError(message, {"fault": fault}, type=ErrorType.VSPHERE_TASK_FAILED, non_retryable=True)


def revert_refused(reason: str, message: str) -> ApplicationError:
    """What kube_prepare_revert raises when the revert cannot go ahead; the reason is the condition's."""
    return ApplicationError(message, reason, type=ErrorType.REVERT_REFUSED, non_retryable=True)


def invalid_manifest(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorType.INVALID_VM_MANIFEST, non_retryable=True)


# --- the fake world ----------------------------------------------------------------------------------------------

@dataclass
class FakeWorld:
    """Every call of a fake activity, in order, as (activity name, argument); what each answers."""

    vm: VMRef
    client: Client | None = None
    task_queue: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    defaults: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    def on(self, name: str, answer: Any) -> None:
        """From now on the step `name` answers this: an exception is raised, a callable is called with the
        step's argument (its result, awaited if need be, is the answer), anything else is returned."""
        self.answers[name] = answer

    def default(self, name: str, arg: Any) -> Any:
        """The happy-path answer of the step `name` to `arg` (for an answer that changes it only sometimes)."""
        return self.defaults[name](arg)

    def hold(self, name: str) -> asyncio.Event:
        """The step `name` waits for the returned event (set it to let it answer) after logging its call."""
        return self.gates.setdefault(name, asyncio.Event())

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    def args(self, name: str) -> list[Any]:
        """The argument of every call of one step, in order."""
        return [arg for step, arg in self.calls if step == name]

    def steps(self) -> list[str]:
        return [step for step, _ in self.calls]

    def index(self, name: str, arg_matches: Callable[[Any], bool] = lambda _: True) -> int:
        """Where the first call of `name` (whose argument matches) is in the log."""
        return next(i for i, (step, arg) in enumerate(self.calls) if step == name and arg_matches(arg))

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until the log says so; fail, showing the log, if it never does (a cut-off, not a deadline)."""
        await eventually(predicate, lambda: f"the steps so far: {self.steps()}")

    async def _step(self, name: str, arg: Any, default: Callable[[Any], Any]) -> Any:
        self.calls.append((name, arg))
        if name in self.gates:
            await self.gates[name].wait()
        answer = self.answers.get(name, default)
        if isinstance(answer, BaseException):
            raise answer
        result = answer(arg) if callable(answer) else answer
        return await result if inspect.isawaitable(result) else result

    def activities(self) -> tuple[list[Callable], list[Callable]]:
        """(the activities of the main task queue, those of the vCenter-task queue)."""
        def fake(name: str) -> Callable[[Callable], Callable]:
            """An activity named `name` whose happy-path answer is the decorated function (its type hints are
            the activity's, for the data converter)."""
            def wrap(default: Callable) -> Callable:
                self.defaults[name] = default

                @functools.wraps(default)
                async def run(arg):
                    return await self._step(name, arg, default)
                return activity.defn(name=name)(run)
            return wrap

        vm = self.vm

        @fake("kube_prepare_snapshot")
        def prepare_snapshot(ref: SnapshotRef) -> SnapshotPlan | None:
            # as today's prepare: Created=False/InProgress written and the requested storage computed in it, and
            # the deadline (the object created just now)
            return SnapshotPlan(snapshot=ref, vm=vm, vm_moref=VM_MOREF, description="before the upgrade",
                                memory=True, vm_yaml=VM_YAML, generation=1, prepared=True, requested=REQUESTED,
                                release_queue_if_csi_slow=True, deadline=datetime.now(UTC) + DEADLINE,
                                deadline_limit=DEADLINE_LIMIT)

        @fake("kube_update_snapshot_status")
        def update_snapshot_status(change: SnapshotStatusChange) -> None:
            return None

        @fake("kube_request_csi_sync")
        def request_csi_sync(ref: SnapshotRef) -> bool:
            return True  # the driver has answered already

        @fake("kube_read_csi_sync_completed")
        def csi_sync_completed(ref: SnapshotRef) -> bool:
            return True

        @fake("kube_compute_requested_storage")
        def compute_requested_storage(plan: SnapshotPlan) -> list[RequestedStorageEntry]:
            return REQUESTED

        @fake("kube_prepare_delete")
        def prepare_delete(ref: SnapshotRef) -> DeletePlan | None:
            return DeletePlan(snapshot=ref, vm=vm, vm_moref=VM_MOREF, snapshot_moref=snapshot_moref(ref.name),
                              retry_seconds=0.2, retry_max_seconds=0.4)

        @fake("kube_remove_snapshot_finalizer")
        def remove_finalizer(removal: FinalizerRemoval) -> None:
            return None

        @fake("kube_sync_snapshot_tree")
        def sync_snapshot_tree(sync: TreeSync) -> None:
            return None

        @fake("kube_prepare_revert")
        def prepare_revert(op: Operation) -> RevertPlan | None:
            return RevertPlan(vm=op.vm, vm_moref=VM_MOREF, snapshot_name=op.snapshot_name,
                              snapshot_moref=snapshot_moref(op.snapshot_name),
                              deadline=datetime.now(UTC) + DEADLINE, deadline_limit=DEADLINE_LIMIT)

        @fake("kube_set_revert_condition")
        def set_revert_condition(change: RevertConditionChange) -> None:
            return None

        @fake("kube_restore_vm_from_snapshot")
        def restore_vm(restore: VMRestore) -> None:
            return None

        @fake("vsphere_store_snapshot_extra_config")
        def store_snapshot_extra_config(config: SnapshotExtraConfig) -> None:
            return None

        @fake("vsphere_find_snapshot")
        def find_snapshot(lookup: SnapshotLookup) -> SnapshotNode:
            return SnapshotNode(name=lookup.name, moref=lookup.snapshot_moref or snapshot_moref(lookup.name),
                                power_state=PowerState.POWERED_ON)

        @fake("vsphere_read_snapshot_vm_yaml")
        def read_snapshot_vm_yaml(location: SnapshotLocation) -> str | None:
            return VM_YAML

        @fake("vsphere_read_snapshot_tree")
        def read_snapshot_tree(vm_moref: str) -> SnapshotTree | None:
            return SnapshotTree()

        @fake("vsphere_read_snapshot_used_bytes")
        def read_snapshot_used_bytes(location: SnapshotLocation) -> int:
            return USED_BYTES

        @fake("temporal_enqueue_operation")
        async def enqueue(op: Operation) -> None:
            assert self.client is not None
            await enqueue_operation(self.client, self.task_queue, op)

        # the vCenter snapshot tasks: regular activities on their own task queue
        @fake("vsphere_create_snapshot")
        def create_snapshot_task(req: VSphereSnapshotRequest) -> CreatedSnapshot:
            # as today's task activity: the tree, the size and the VM's power state read with it, when asked; as
            # vCenter makes it for a running VM: quiesced when asked, memory when asked
            return CreatedSnapshot(node=SnapshotNode(name=req.name, moref=snapshot_moref(req.name),
                                                     power_state=PowerState.POWERED_ON if req.memory
                                                     else PowerState.POWERED_OFF,
                                                     quiesced=req.quiesce_minutes is not None),
                                   **({"tree": SnapshotTree(), "used_bytes": USED_BYTES,
                                       "vm_power_state": PowerState.POWERED_ON} if req.read_after else {}))

        @fake("vsphere_revert_snapshot")
        def revert_snapshot(location: SnapshotLocation) -> RevertedSnapshot | None:
            return RevertedSnapshot(tree=SnapshotTree(), vm_yaml=VM_YAML) if location.read_after else None

        @fake("vsphere_remove_snapshot")
        def remove_snapshot(lookup: SnapshotLookup) -> bool:
            return True

        @fake("vsphere_cancel_task")
        def cancel_task(task: str) -> bool:
            return False  # cancelled before it finished

        return ([prepare_snapshot, update_snapshot_status, request_csi_sync, csi_sync_completed,
                 compute_requested_storage, prepare_delete, remove_finalizer, sync_snapshot_tree, prepare_revert,
                 set_revert_condition, restore_vm, store_snapshot_extra_config, find_snapshot,
                 read_snapshot_vm_yaml, read_snapshot_tree, read_snapshot_used_bytes, enqueue],
                [create_snapshot_task, revert_snapshot, remove_snapshot, cancel_task])


# --- operations --------------------------------------------------------------------------------------------------

def create_op(vm: VMRef, name: str, uid: str | None = None) -> Operation:
    return Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=name, snapshot_uid=uid or f"uid-{name}")


def delete_op(vm: VMRef, name: str, uid: str | None = None, retry: int = 0) -> Operation:
    return Operation(kind=OperationKind.DELETE, vm=vm, snapshot_name=name, snapshot_uid=uid or f"uid-{name}",
                     retry=retry)


def revert_op(vm: VMRef, name: str, generation: int = 2) -> Operation:
    return Operation(kind=OperationKind.REVERT, vm=vm, snapshot_name=name, vm_generation=generation)


# --- running the workflows ---------------------------------------------------------------------------------------

@dataclass
class Harness:
    client: Client
    task_queue: str
    world: FakeWorld

    @property
    def vm(self) -> VMRef:
        return self.world.vm

    async def start(self, op: Operation) -> WorkflowHandle:
        """Start the operation's workflow directly (outside a VM queue)."""
        return await self.client.start_workflow(op.kind.value, op, id=op.workflow_id, task_queue=self.task_queue,
                                                result_type=str)

    async def run(self, op: Operation) -> str:
        return await self.outcome(await self.start(op))

    @staticmethod
    async def outcome(handle: WorkflowHandle) -> Any:
        """The workflow's result (an AssertionError if it does not end within PATIENCE)."""
        try:
            return await asyncio.wait_for(handle.result(), PATIENCE)
        except TimeoutError:
            raise AssertionError(f"{handle.id} did not end") from None

    async def enqueue(self, op: Operation) -> None:
        """Hand the operation to its VM's queue, as the bridge does (signal-with-start)."""
        await enqueue_operation(self.client, self.task_queue, op)

    def queue(self) -> WorkflowHandle:
        return self.client.get_workflow_handle(vm_queue_workflow_id(self.vm))

    async def result(self, workflow_id: str) -> str:
        """The result of a workflow that the VM's queue starts when it gets to it."""
        handle = self.client.get_workflow_handle(workflow_id, result_type=str)
        started: list[bool] = []

        async def exists() -> bool:
            try:
                await handle.describe()
                started.append(True)
            except RPCError as e:
                if e.status != RPCStatusCode.NOT_FOUND:
                    raise
            return bool(started)
        await eventually(exists, lambda: f"{workflow_id} never started")
        return await self.outcome(handle)


@asynccontextmanager
async def harness(client: Client, passthrough: Iterable[str] = ()) -> AsyncIterator[Harness]:
    """Workers with the fakes on a task queue of their own, for a VM of its own. `passthrough` names workflow
    modules the sandbox takes from the test process instead of re-importing them, so that a test's change to
    one of their module constants (a timer's length) is what the workflow sees."""
    task_queue = f"wf-{uuid.uuid4().hex[:8]}"
    world = FakeWorld(vm=VMRef(namespace=f"ns-{uuid.uuid4().hex[:6]}", name="vm"), client=client,
                      task_queue=task_queue)
    main, vcenter = world.activities()
    runner = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*passthrough))
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=main, workflow_runner=runner), \
            Worker(client, task_queue=vcenter_task_queue(task_queue), activities=vcenter,
                   # a workflow's cancel reaches a heartbeating task within this (the product's worker: seconds)
                   max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                   default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE):
        try:
            yield Harness(client, task_queue, world)
        finally:
            world.release_all()  # a held step would keep the workers from shutting down
