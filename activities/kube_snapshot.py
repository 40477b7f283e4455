"""Activities against the Kubernetes API for one VirtualMachineSnapshot: ownership, status, the CSI handshake
and storage accounting. Each is convergent: running it twice leaves the object as running it once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kube.annotations import annotate, operation_annotations
from activities.kube.events import EventRecorder
from activities.kube.storage import requested_storage
from activities.vm_yaml import encode_vm_yaml
from api import (
    OwnerReference,
    RequestedStorage,
    SnapshotStorageStatus,
    VirtualMachine,
    VirtualMachineSnapshot,
    messages,
)
from api.conditions import Condition, set_condition, set_false, set_true
from api.errors import ErrorType
from api.group_snapshot import owning_group
from api.names import (
    CREATE_FAILED_REASONS,
    CSI_VOLUME_SYNC_ANNOTATION,
    FAILURE_DEADLINE_ANNOTATION,
    QUIESCE_FALLBACK_ANNOTATION,
    READY_REPEATS_REASONS,
    SNAPSHOT_CONSISTENCY_CONDITION,
    SNAPSHOT_FINALIZER,
    VM_NAME_LABEL,
    VSPHERE_VM_ANNOTATION,
    ConditionStatus,
    CSIVolumeSync,
    EventReason,
    PowerState,
    QuiesceFallback,
    SnapshotConditionType,
    SnapshotReason,
)
from api.operation_policy import OperationDefaults, failure_deadline, quiesce_fallback
from api.quantity import format_binary_bytes, format_plain_bytes
from contract.names import group_snapshot_workflow_id
from contract.payloads import (
    ConditionChange,
    DeletePlan,
    FinalizerRemoval,
    RequestedStorageEntry,
    SnapshotPlan,
    SnapshotRef,
    SnapshotStatusChange,
    VMRef,
)
from runtime.kube import Kube
from runtime.settings import CSISyncMode
from runtime.telemetry import WorkflowLinks


def derive_ready(conditions: list[Condition], now: datetime, generation: int | None) -> list[Condition]:
    """Ready follows Created and CSISynced (VM Operator's reconcileSnapshotReadyCondition)."""
    by_type = {c.type: c for c in conditions}
    created, synced = by_type.get(SnapshotConditionType.CREATED), by_type.get(SnapshotConditionType.CSI_SYNCED)
    ready = SnapshotConditionType.READY
    if created is None or created.status != ConditionStatus.TRUE:
        if created is not None and created.reason == SnapshotReason.WAITING_FOR_DISK_REGISTRATION:
            return set_false(conditions, ready, SnapshotReason.WAITING_FOR_DISK_REGISTRATION,
                             messages.READY_WAITING_FOR_DISK_REGISTRATION, now, generation)
        if created is not None and created.reason in READY_REPEATS_REASONS:  # ours: why it never will be
            return set_false(conditions, ready, created.reason, created.message, now, generation)
        return set_false(conditions, ready, SnapshotReason.WAITING_FOR_CREATION,
                         messages.READY_WAITING_FOR_CREATION, now, generation)
    if synced is None or synced.status != ConditionStatus.TRUE:
        if synced is not None and synced.reason in READY_REPEATS_REASONS:
            return set_false(conditions, ready, synced.reason, synced.message, now, generation)
        return set_false(conditions, ready, SnapshotReason.WAITING_FOR_CSI_SYNC,
                         messages.READY_WAITING_FOR_CSI_SYNC, now, generation)
    return set_true(conditions, ready, now, generation)


def apply_condition(conditions: list[Condition], change: ConditionChange, now: datetime,
                    generation: int | None) -> list[Condition]:
    if change.status and not change.reason:  # VM Operator's conditions: True has reason "True", no message
        return set_true(conditions, change.type, now, generation)
    if change.status:  # ours that say what in their reason when True (the Consistency condition)
        return set_condition(conditions, change.type, ConditionStatus.TRUE, change.reason, change.message, now,
                             generation)
    return set_condition(conditions, change.type, ConditionStatus.FALSE, change.reason, change.message, now,
                         generation)


TRUE_EVENTS: dict[str, str] = {SnapshotConditionType.CREATED: EventReason.SNAPSHOT_CREATED,
               SnapshotConditionType.CSI_SYNCED: EventReason.CSI_VOLUMES_SYNCED,
               SnapshotConditionType.READY: EventReason.SNAPSHOT_READY}


WARNING_REASONS = CREATE_FAILED_REASONS | {SnapshotReason.DELETION_FAILED}


def transition_events(before: list[Condition], after: list[Condition]) -> list[tuple[str, str, bool]]:
    """(reason, message, warning) for each condition that changed: True transitions, and Created/CSISynced
    turning False (Ready's waiting reasons only repeat those). The Consistency condition has Events of its own
    (the workflow's, saying why the snapshot differs from the spec)."""
    old = {c.type: (c.status, c.reason) for c in before}
    events: list[tuple[str, str, bool]] = []
    for c in after:
        if old.get(c.type) == (c.status, c.reason) or c.type == SNAPSHOT_CONSISTENCY_CONDITION:
            continue
        if c.status == ConditionStatus.TRUE and c.type in TRUE_EVENTS:
            events.append((TRUE_EVENTS[c.type], messages.condition_is_true(c.type), False))
        elif c.status == ConditionStatus.FALSE and c.type != SnapshotConditionType.READY:
            events.append((c.reason, c.message, c.reason in WARNING_REASONS))
    return events


@dataclass(frozen=True)
class DeleteRetry:
    """How a delete that vCenter keeps failing is retried (the deployment's settings)."""

    first_seconds: float = 300.0
    max_seconds: float = 3600.0


def group_workflow_id(snapshot: VirtualMachineSnapshot) -> str:
    """The saga of the group whose member the snapshot is ("" for any other snapshot)."""
    group = owning_group(snapshot)
    return "" if group is None else group_snapshot_workflow_id(snapshot.namespace or "", *group)


class KubeSnapshotActivities:
    def __init__(self, kube: Kube, events: EventRecorder, csi_sync: CSISyncMode = CSISyncMode.HANDSHAKE,
                 links: WorkflowLinks = WorkflowLinks(), delete_retry: DeleteRetry = DeleteRetry(),
                 defaults: OperationDefaults = OperationDefaults()):
        self.kube = kube
        self.events = events
        self.csi_sync = csi_sync
        self.links = links
        self.delete_retry = delete_retry
        self.defaults = defaults

    @activity.defn(name="kube_prepare_snapshot")
    def prepare_snapshot(self, ref: SnapshotRef) -> SnapshotPlan | None:
        """Finalizer, vm-name label and owner reference on the snapshot; then the plan read from it and its
        VM. None when the snapshot is gone or being deleted (nothing to create)."""
        snapshot = self.kube.get_snapshot(ref.namespace, ref.name)
        if snapshot is None or snapshot.metadata.uid != ref.uid or snapshot.is_being_deleted:
            return None
        vm_name = snapshot.vm_name
        if not vm_name:
            raise ApplicationError(messages.VM_NAME_REQUIRED, type=ErrorType.PRECONDITION_FAILED, non_retryable=True)
        vm = self.kube.get_vm(ref.namespace, vm_name)
        if vm is None:
            raise ApplicationError(messages.vm_not_found(vm_name, ref.namespace),
                                   type=ErrorType.PRECONDITION_FAILED, non_retryable=True)
        if vm.is_vks_node:
            raise ApplicationError(messages.SNAPSHOT_OF_VKS_NODE_FORBIDDEN, type=ErrorType.PRECONDITION_FAILED,
                                   non_retryable=True)
        if not vm.status.unique_id:
            # retryable: a VM applied together with its snapshot gets its uniqueID moments later
            raise ApplicationError(messages.vm_not_in_vsphere_yet(vm_name),
                                   type=ErrorType.PRECONDITION_FAILED)

        # the vCenter VM is recorded before any vSphere work, so a delete finds the snapshot without the VM object
        annotations = {**operation_annotations(self.links), VSPHERE_VM_ANNOTATION: vm.status.unique_id}
        owner = OwnerReference(api_version=vm.api_version, kind=vm.kind, name=vm_name, uid=vm.metadata.uid or "")
        # a group's member is owned by its group alone: garbage collection deletes an object only once every owner
        # is gone, and deleting the group must delete its members
        group_saga = group_workflow_id(snapshot)

        def own(s: VirtualMachineSnapshot) -> bool:
            meta, changed = s.metadata, False
            if SNAPSHOT_FINALIZER not in (meta.finalizers or []):
                meta.finalizers = [*(meta.finalizers or []), SNAPSHOT_FINALIZER]
                changed = True
            if (meta.labels or {}).get(VM_NAME_LABEL) != vm_name:
                meta.labels = {**(meta.labels or {}), VM_NAME_LABEL: vm_name}
                changed = True
            if not group_saga and not any(o.uid == owner.uid for o in meta.owner_references or []):
                meta.owner_references = [*(meta.owner_references or []), owner]
                changed = True
            return annotate(meta, annotations) or changed

        snapshot = self.kube.update_snapshot(ref.namespace, ref.name, own, current=snapshot)  # as just read
        if snapshot is None or snapshot.is_being_deleted:
            return None
        meta = snapshot.metadata
        try:  # only an object that bypassed admission fails here
            quiesce_minutes = snapshot.spec.quiesce_minutes
            deadline, deadline_limit = failure_deadline(meta.annotation(FAILURE_DEADLINE_ANNOTATION), self.defaults,
                                                        quiesce_minutes)
            fallback = quiesce_fallback(meta.annotation(QUIESCE_FALLBACK_ANNOTATION), self.defaults.quiesce_fallback)
        except ValueError as e:
            raise ApplicationError(str(e), type=ErrorType.PRECONDITION_FAILED, non_retryable=True) from e
        plan = SnapshotPlan(
            snapshot=ref, vm=VMRef(namespace=ref.namespace, name=vm_name), vm_moref=vm.status.unique_id,
            description=snapshot.spec.description or "", memory=snapshot.spec.includes_memory,
            quiesce_minutes=quiesce_minutes, generation=snapshot.metadata.generation or 0,
            vm_yaml=encode_vm_yaml(vm.to_kube()),  # every field: the model keeps the ones it does not type
            deadline=(meta.creation_timestamp or datetime.now(UTC)) + deadline, deadline_limit=deadline_limit,
            quiesce_fallback=quiesce_minutes is not None and fallback is QuiesceFallback.CRASH_CONSISTENT,
            group_workflow_id=group_saga)
        # the two steps that always follow, here rather than as activities of their own (each a history marker
        # and, for the storage, a second read of the VM): Created=False/InProgress, and the requested storage
        self.update_snapshot_status(SnapshotStatusChange(snapshot=ref, conditions=[ConditionChange(
            type=SnapshotConditionType.CREATED, status=False, reason=SnapshotReason.CREATION_IN_PROGRESS,
            message=messages.CREATION_IN_PROGRESS)]))
        plan.requested = self._requested_storage_or_none(vm, plan)
        plan.prepared = plan.release_queue_if_csi_slow = True
        return plan

    def _requested_storage_or_none(self, vm: VirtualMachine,
                                   plan: SnapshotPlan) -> list[RequestedStorageEntry] | None:
        """Accounting must not stop (or undo) a snapshot: when the storage cannot be worked out, say why in the
        log and carry on without it."""
        try:
            return self._requested_storage(vm, plan)
        except Exception as e:  # noqa: BLE001 - any failure leaves `requested` unknown, never the create failed
            activity.logger.warning("requested storage of %s unknown: %s", plan.snapshot,
                                    getattr(e, "message", None) or e)
            return None

    def _requested_storage(self, vm: VirtualMachine, plan: SnapshotPlan) -> list[RequestedStorageEntry]:
        try:
            totals = requested_storage(
                vm, plan.memory, lambda claim: self.kube.read_pvc(plan.vm.namespace, claim))
        except ValueError as e:
            raise ApplicationError(str(e), type=ErrorType.PRECONDITION_FAILED, non_retryable=True) from e
        return [RequestedStorageEntry(storage_class=sc, total_bytes=n) for sc, n in sorted(totals.items())]

    @activity.defn(name="kube_update_snapshot_status")
    def update_snapshot_status(self, change: SnapshotStatusChange) -> None:
        ref = change.snapshot
        now = datetime.now(UTC)
        seen: dict[str, list[Condition]] = {}

        def apply(s: VirtualMachineSnapshot) -> bool:
            if s.metadata.uid != ref.uid:
                return False
            before = s.status.model_dump()
            seen["before"] = list(s.status.conditions or [])
            status, generation = s.status, s.metadata.generation
            if change.unique_id is not None:
                status.unique_id = change.unique_id
            if change.power_state is not None:
                status.power_state = PowerState(change.power_state)
            if change.quiesced is not None:
                status.quiesced = change.quiesced
            if change.requested is not None or change.used_bytes is not None:
                storage = status.storage or SnapshotStorageStatus()
                if change.requested is not None:
                    storage.requested = [RequestedStorage(storage_class=r.storage_class,
                                                          total=format_binary_bytes(r.total_bytes))
                                         for r in sorted(change.requested, key=lambda r: r.storage_class)]
                if change.used_bytes is not None:
                    storage.used = format_plain_bytes(change.used_bytes)
                status.storage = storage
            conditions = list(status.conditions or [])
            for c in change.conditions:
                conditions = apply_condition(conditions, c, now, generation)
            # the generation is each condition's observedGeneration: VM Operator's status has no field of its own
            # for it (its CRD prunes one)
            status.conditions = derive_ready(conditions, now, generation)
            return status.model_dump() != before

        written = self.kube.update_snapshot(ref.namespace, ref.name, apply, status=True)
        if written is not None and "before" in seen:
            for reason, message, warning in transition_events(seen["before"], written.status.conditions or []):
                self.events.record(written, reason, message, warning)
            for note in change.events:
                self.events.record(written, note.reason, note.message, note.warning)

    @activity.defn(name="kube_request_csi_sync")
    def request_csi_sync(self, ref: SnapshotRef) -> bool:
        """Ask the vSphere CSI driver to sync the snapshot's volumes; True if it already answered, or if this
        cluster has no such driver (CSI_SYNC=skip)."""
        if self.csi_sync is CSISyncMode.SKIP:
            return True
        def request(s: VirtualMachineSnapshot) -> bool:
            if s.metadata.uid != ref.uid or s.csi_volume_sync == CSIVolumeSync.COMPLETED:
                return False
            s.metadata.annotations = {**(s.metadata.annotations or {}),
                                      CSI_VOLUME_SYNC_ANNOTATION: CSIVolumeSync.REQUESTED.value}
            return True

        snapshot = self.kube.update_snapshot(ref.namespace, ref.name, request)
        return snapshot is None or snapshot.csi_volume_sync == CSIVolumeSync.COMPLETED

    @activity.defn(name="kube_read_csi_sync_completed")
    def csi_sync_completed(self, ref: SnapshotRef) -> bool:
        snapshot = self.kube.get_snapshot(ref.namespace, ref.name)
        return snapshot is None or snapshot.csi_volume_sync == CSIVolumeSync.COMPLETED

    @activity.defn(name="kube_compute_requested_storage")
    def compute_requested_storage(self, plan: SnapshotPlan) -> list[RequestedStorageEntry]:
        """(CreateSnapshot before prepare computed it; kept for the workflows that still call it.)"""
        vm = self.kube.get_vm(plan.vm.namespace, plan.vm.name)
        if vm is None:
            raise ApplicationError(messages.vm_not_found(plan.vm.name, plan.vm.namespace),
                                   type=ErrorType.PRECONDITION_FAILED, non_retryable=True)
        return self._requested_storage(vm, plan)

    @activity.defn(name="kube_prepare_delete")
    def prepare_delete(self, ref: SnapshotRef) -> DeletePlan | None:
        """Where the snapshot lives in vCenter, and the workflow now deleting it on the object; None when the
        object (this uid) is already gone. The vCenter VM is the one recorded on the snapshot when it was
        created, so it is found even when the VirtualMachine object is gone (standalone clusters keep the
        vCenter VM); for an object from before that record, the VM object's uniqueID. No VM known: nothing
        was made in vCenter."""
        snapshot = self.kube.annotate_snapshot(ref.namespace, ref.name, ref.uid, operation_annotations(self.links))
        if snapshot is None or snapshot.metadata.uid != ref.uid:
            return None
        plan = DeletePlan(snapshot=ref, snapshot_moref=snapshot.status.unique_id,
                          vm_moref=snapshot.metadata.annotation(VSPHERE_VM_ANNOTATION),
                          retry_seconds=self.delete_retry.first_seconds,
                          retry_max_seconds=self.delete_retry.max_seconds)
        if snapshot.vm_name:
            plan.vm = VMRef(namespace=ref.namespace, name=snapshot.vm_name)
            if plan.vm_moref is None:
                vm = self.kube.get_vm(ref.namespace, snapshot.vm_name)
                plan.vm_moref = vm.status.unique_id if vm is not None else None
        return plan

    @activity.defn(name="kube_remove_snapshot_finalizer")
    def remove_finalizer(self, finalizing: FinalizerRemoval) -> None:
        ref, outcome = finalizing.snapshot, finalizing.outcome
        dropped: list[VirtualMachineSnapshot] = []

        def drop(s: VirtualMachineSnapshot) -> bool:
            if s.metadata.uid != ref.uid or SNAPSHOT_FINALIZER not in (s.metadata.finalizers or []):
                return False
            s.metadata.finalizers = [f for f in s.metadata.finalizers or [] if f != SNAPSHOT_FINALIZER]
            dropped[:] = [s]
            return True
        written = self.kube.update_snapshot(ref.namespace, ref.name, drop)
        if dropped and (written is None or SNAPSHOT_FINALIZER not in (written.metadata.finalizers or [])):
            # once, for the write that removed it (a 409 re-applies `drop`); the object may be gone already
            self.events.record(dropped[0], EventReason.SNAPSHOT_DELETED, outcome)
