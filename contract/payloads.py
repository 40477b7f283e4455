"""The messages that pass between the bridge, the workflows and the activities (Temporal payloads).

They are pydantic models so the pydantic data converter carries them, and they carry references
(namespace/name/uid), never whole Kubernetes objects: activities read the live object themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contract import names
from contract.names import (
    CREATE_SNAPSHOT_WORKFLOW,
    DELETE_SNAPSHOT_WORKFLOW,
    REVERT_SNAPSHOT_WORKFLOW,
    create_or_delete_workflow_id,
    revert_workflow_id,
)


class SnapshotRef(BaseModel):
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class VMRef(BaseModel):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class OperationKind(StrEnum):
    """An operation is a run of the workflow of that type."""
    CREATE = CREATE_SNAPSHOT_WORKFLOW
    REVERT = REVERT_SNAPSHOT_WORKFLOW
    DELETE = DELETE_SNAPSHOT_WORKFLOW


class Operation(BaseModel):
    """One snapshot operation on one VM, queued in that VM's serialiser workflow."""

    kind: OperationKind
    vm: VMRef
    snapshot_name: str
    snapshot_uid: str = ""      # empty for a revert (it names a snapshot, it does not own one)
    vm_generation: int = 0      # a revert is one run per VM generation
    retry: int = 0              # a delete that vCenter failed is queued again, once per retry
    summary: str = ""           # what the Temporal UI shows for this operation
    # a delete: a create of this snapshot may still be running (the bridge saw the object not Ready); False
    # spares the delete a cancel request to a create that has ended (an event and a workflow task). The bridge
    # always sets it; the default is for deletes of histories v1–v2, which carry none (contract/compat.py)
    stop_create: bool = True
    # a delete: when this snapshot's create is the VM's running operation, the queue cancels it (its vCenter task
    # too) instead of waiting for it. The bridge always sets it; deletes of histories v1–v3 carry none: False
    cancel_create: bool = False
    trace_context: dict[str, str] = Field(default_factory=dict)

    @property
    def workflow_id(self) -> str:
        """Deterministic, so a re-listing watcher or a second bridge cannot double-run an operation."""
        if self.kind is OperationKind.REVERT:
            return revert_workflow_id(self.vm.namespace, self.vm.name, self.snapshot_name, self.vm_generation)
        return create_or_delete_workflow_id(self.kind, self.vm.namespace, self.snapshot_name, self.snapshot_uid,
                                            self.retry)

    @property
    def snapshot(self) -> SnapshotRef:
        return SnapshotRef(namespace=self.vm.namespace, name=self.snapshot_name, uid=self.snapshot_uid)

    def details(self) -> str:
        """The Temporal UI's Details of the operation's workflow (Markdown): which objects it is about, how to see
        them with kubectl, and the VM's queue it waits in."""
        ns, vm = self.vm.namespace, self.vm.name
        if self.kind is OperationKind.REVERT:
            about = (f"revert VirtualMachine `{ns}/{vm}` to VirtualMachineSnapshot `{self.snapshot_name}` "
                     f"(VM generation {self.vm_generation})")
            see = f"`kubectl -n {ns} get vm {vm}`"
        else:
            about = (f"VirtualMachineSnapshot `{ns}/{self.snapshot_name}` (uid `{self.snapshot_uid}`) of "
                     f"VirtualMachine `{vm}`" + (f", retry {self.retry}" if self.retry else ""))
            see = f"`kubectl -n {ns} describe vmsnapshot {self.snapshot_name}`"
        return f"{about}\n\nsee {see}; queued in `{vm_queue_workflow_id(self.vm)}`"


# the state the per-VM queue carries across continue-as-new


class QueueState(BaseModel):
    vm: VMRef
    pending: list[Operation] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)


def vm_queue_workflow_id(vm: VMRef) -> str:
    return names.vm_queue_workflow_id(vm.namespace, vm.name)


class SnapshotNode(BaseModel):
    """One node of a VM's vSphere snapshot tree."""

    name: str
    moref: str
    power_state: str            # api PowerState value, converted from the tree node's `state`
    quiesced: bool = False
    children: list["SnapshotNode"] = Field(default_factory=list)


class SnapshotUsage(BaseModel):
    """Bytes all of a VM's snapshots hold (VM Operator's GetAllSnapshotSize): `vm_bytes` their memory, .vmsn and
    the delta disks of the VM's own disks; `volume_bytes` the delta disks of its FCD-backed volumes (PVCs)."""

    vm_bytes: int = 0
    volume_bytes: int = 0


class SnapshotTree(BaseModel):
    roots: list[SnapshotNode] = Field(default_factory=list)
    current: str | None = None  # moref value of the current snapshot
    # Read with the tree when asked for (the tree sync); None: not read, leave the VM's usage as it is.
    usage: SnapshotUsage | None = None

    def walk(self) -> Iterator[SnapshotNode]:
        stack = list(reversed(self.roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def find(self, name: str) -> list[SnapshotNode]:
        """Every node with this name (vSphere allows duplicates; callers refuse more than one)."""
        return [n for n in self.walk() if n.name == name]

    def by_moref(self, moref: str | None) -> SnapshotNode | None:
        return next((n for n in self.walk() if n.moref == moref), None) if moref else None


# --- activity inputs and results ---------------------------------------------------------------------------------

class RequestedStorageEntry(BaseModel):
    storage_class: str
    total_bytes: int


class SnapshotPlan(BaseModel):
    """What a create needs, read from the live objects by the first activity."""

    snapshot: SnapshotRef
    vm: VMRef
    vm_moref: str                   # VirtualMachine.status.uniqueID
    description: str = ""
    memory: bool = False
    quiesce_minutes: int | None = None
    vm_yaml: str                    # the VM object, gzip+base64, for ExtraConfig
    generation: int = 0
    # set by a prepare that also marked the creation in progress and computed the requested storage (in the
    # same activity, from the VM it had read): the workflow skips those two steps. Every prepare sets it; plans of
    # histories v1 lack it (contract.compat.unprepared)
    prepared: bool = False
    requested: list[RequestedStorageEntry] | None = None  # None: unknown (the worker logged why)
    # set by every prepare: the VM's queue is released early only when the CSI driver is slow to answer; a
    # create whose handshake is answered at once just ends (plans of histories v1–v2 lack it: released before
    # every handshake, contract.compat.releases_queue_at_handshake)
    release_queue_if_csi_slow: bool = False
    # set by every prepare: when the create must have ended (the object's creation + its failure deadline), the
    # limit as the user set it, and whether a guest that will not freeze gets a crash-consistent snapshot instead
    # of a failure (plans of histories v1–v3 have none, and run no deadline timer: contract.compat.without_deadline)
    deadline: datetime | None = None
    deadline_limit: str = ""
    quiesce_fallback: bool = False
    # a member of a VirtualMachineGroupSnapshot: its saga's workflow ID. The create signals it when ready for its
    # vCenter task and waits for the group's go (the barrier); "" for every other snapshot, and in plans of
    # histories before group snapshots (no barrier)
    group_workflow_id: str = ""


class VSphereSnapshotRequest(BaseModel):
    vm_moref: str
    name: str
    owner_uid: str                  # the object's UID, as the snapshot's config carries it
    description: str = ""
    memory: bool = False
    quiesce_minutes: int | None = None
    # read the tree (with usage) and the snapshot's size right after the task and return them: the workflows
    # always ask; a task of histories v1 carries none, so whichever worker runs it returns what v1 expects
    read_after: bool = False
    # a cancel from the workflow (a deadline, a delete) cancels the vCenter task: the workflows ask whenever the
    # plan has a deadline; tasks of histories v1–v3 carry none (the vCenter task runs on)
    cancel_task_on_cancel: bool = False


class CreatedSnapshot(BaseModel):
    node: SnapshotNode
    # other vSphere snapshots of the same name on the VM: not this object's, left alone
    same_name: list[str] = Field(default_factory=list)
    # the VM's tree (with usage) and the snapshot's size, read in the same round trip right after the task
    # (None: not asked, as by histories v1, or no layoutEx entry for the size yet: the workflow then reads them)
    tree: SnapshotTree | None = None
    used_bytes: int | None = None
    # the VM's power state read with them (api PowerState value; None: not read with them, or the task was run
    # by a worker older than v4 during the rollout that brought v4)
    vm_power_state: str | None = None


class RevertedSnapshot(BaseModel):
    """What a revert's task activity read right after the task, in one round trip each."""

    tree: SnapshotTree | None = None  # the VM's tree with usage
    vm_yaml: str | None = None        # the VM YAML the snapshot captured (None: it has none)


class SnapshotExtraConfig(BaseModel):
    """What the VM's ExtraConfig holds just before a create, so the snapshot captures it."""

    vm_moref: str
    vm_yaml: str                    # the VM object, for a revert to restore
    owner_uid: str                  # the VirtualMachineSnapshot's UID: marks the snapshot as this object's


class SnapshotLocation(BaseModel):
    vm_moref: str
    snapshot_moref: str
    read_after: bool = False  # revert: return the VM YAML and the tree read right after the task (see above)
    cancel_task_on_cancel: bool = False  # revert: as VSphereSnapshotRequest's


class SnapshotLookup(BaseModel):
    vm_moref: str
    name: str
    snapshot_moref: str | None = None   # status.uniqueID when known: then the only way it is looked up
    owner_uid: str | None = None        # a delete's object UID: only a snapshot carrying it (or recorded) is its own


class ConditionChange(BaseModel):
    type: str
    status: bool
    reason: str = ""
    message: str = ""


class EventNote(BaseModel):
    """A Kubernetes Event to record on the object once a status write has gone through."""

    reason: str
    message: str
    warning: bool = False


class SnapshotStatusChange(BaseModel):
    """Fields to set on a snapshot's status (None = leave as is); Ready is derived from the others."""

    snapshot: SnapshotRef
    events: list[EventNote] = Field(default_factory=list)
    unique_id: str | None = None
    power_state: str | None = None
    quiesced: bool | None = None
    requested: list[RequestedStorageEntry] | None = None
    used_bytes: int | None = None
    conditions: list[ConditionChange] = Field(default_factory=list)

    def summary(self) -> str:
        """What the write sets, for the Temporal UI (the step's activity summary)."""
        parts = [f"uniqueID {self.unique_id}"] if self.unique_id else []
        parts += [self.power_state] if self.power_state else []
        parts += [] if self.quiesced is None else ["quiesced" if self.quiesced else "not quiesced"]
        parts += ["storage"] if self.requested is not None or self.used_bytes is not None else []
        parts += [f"{c.type}={c.status}" + (f" ({c.reason})" if c.reason and not c.status else "")
                  for c in self.conditions]
        return "status: " + (", ".join(parts) or "Ready from the other conditions")


class TreeSync(BaseModel):
    vm: VMRef
    tree: SnapshotTree
    # the vCenter VM the tree is of: always set (a local activity's input is built by the replaying code, never
    # read back from a history, so no version's payload lacks it)
    vm_moref: str | None = None
    # vSphere snapshot → object name, for a snapshot whose object may not show its uniqueID yet (the create that
    # made it records it at the same time)
    claimed: dict[str, str] = Field(default_factory=dict)
    # asked by an operation holding the VM's queue: no other create records a uniqueID of this VM meanwhile
    # (creates record theirs before they release the queue), so the objects need listing only once
    queue_held: bool = False


class DeletePlan(BaseModel):
    snapshot: SnapshotRef
    vm: VMRef | None = None
    vm_moref: str | None = None          # None: no vCenter VM known (never created there): nothing to remove
    snapshot_moref: str | None = None
    retry_seconds: float = 300           # the deployment's first wait before a failed delete is queued again
    retry_max_seconds: float = 3600      # ... doubling up to this


class FinalizerRemoval(BaseModel):
    snapshot: SnapshotRef
    outcome: str                         # what happened in vCenter, for the SnapshotDeleted event


class RevertPlan(BaseModel):
    vm: VMRef
    vm_moref: str
    snapshot_name: str
    snapshot_moref: str | None = None
    imported: bool = False               # the snapshot may carry no VM YAML (reference §3.8)
    # set by every prepare (plans of histories v1–v3 have none, see SnapshotPlan.deadline): when vCenter must have
    # reverted the VM
    deadline: datetime | None = None
    deadline_limit: str = ""


class RevertConditionChange(BaseModel):
    vm: VMRef
    reason: str | None = None            # None: remove the condition (success, or an abort)
    message: str = ""
    generation: int | None = None        # only for this VM generation (a newer request supersedes)


class VMRestore(BaseModel):
    vm: VMRef
    generation: int
    snapshot_name: str
    vm_yaml: str | None                  # gzip+base64 from the snapshot; None for an imported snapshot
    power_state: str
    snapshot_moref: str


class VMTarget(BaseModel):
    vm: VMRef
    vm_moref: str


class TreeWatchState(BaseModel):
    full_resync_seconds: int = 600
    last_full_resync: float = 0.0        # workflow time (epoch seconds) of the last full resync
