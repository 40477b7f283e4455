"""A group snapshot's Kubernetes steps: read the group and preflight its members (Kubernetes' side), create one
member VirtualMachineSnapshot per VM, read the members' states, delete them (undo), record the group's status and
Events. Each is convergent (a lost workflow task re-runs it): a create finds the member an earlier attempt made
by its deterministic name and the group's UID, deletes carry each member's UID as a precondition and touch only
objects carrying the group's UID annotation (never one by name alone)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from temporalio import activity

from activities.kube.events import EventRecorder
from api import VirtualMachineSnapshot
from api.conditions import set_false, set_true
from api.group_snapshot import (
    GroupMember,
    VirtualMachineGroupSnapshot,
    format_skew,
    member_snapshot_name,
    spec_problems,
    vm_group_members,
)
from api.group_snapshot_messages import (
    member_name_taken,
    no_selected_members,
    too_many_members,
    vm_at_limit,
    vm_missing,
    vm_not_bound,
)
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION,
    GROUP_SNAPSHOT_UID_ANNOTATION,
    GROUP_SPEC_VM_GROUP_NAME_PATH,
    GROUP_SPEC_VM_SELECTOR_PATH,
    MAX_GROUP_MEMBERS,
    VM_GROUP_PLURAL,
    VM_GROUP_VERSION,
    GroupConditionType,
)
from api.limits import MAX_SNAPSHOTS_PER_VM
from api.names import (
    API_VERSION,
    FAILURE_DEADLINE_ANNOTATION,
    SNAPSHOT_KIND,
    SNAPSHOT_PLURAL,
    VM_NAME_LABEL,
    VM_PLURAL,
    RevertReason,
)
from api.schedule import failure_text
from api.virtualmachine import VirtualMachine, snapshot_refusals
from contract.group_payloads import (
    GroupPlan,
    GroupRecord,
    GroupRef,
    GroupRevertPlan,
    GroupRevertRecord,
    GroupRevertRef,
    MemberCreate,
    MemberCreated,
    MemberPlan,
    MemberRecord,
    MemberRevert,
    MemberReverted,
    MembersRead,
    MemberState,
    MembersUndo,
)
from runtime.kube import Kube, KubeError
from runtime.telemetry import current_trace_context


class KubeGroupSnapshotActivities:
    def __init__(self, kube: Kube, events: EventRecorder):
        self.kube = kube
        self.events = events

    def _own(self, ref: GroupRef) -> VirtualMachineGroupSnapshot | None:
        group = self.kube.get_group_snapshot(ref.namespace, ref.name)
        if group is None or group.metadata.uid != ref.uid or group.metadata.is_being_deleted:
            return None
        return group

    @activity.defn(name="kube_plan_group_snapshot")
    def plan_group(self, ref: GroupRef) -> GroupPlan | None:
        """The members (each with its snapshot's name and VM moref, or why the preflight refuses it: missing, not
        bound, at vSphere's 32 snapshots, a VKS node, a shared SCSI bus — a single snapshot's checks), the skew
        and the deadline. None when the group is gone (or being deleted)."""
        group = self._own(ref)
        if group is None:
            return None
        spec = group.spec
        created = group.metadata.creation_timestamp or datetime.now(UTC)
        plan = GroupPlan(group=ref, deadline=created, finished=group.finished)
        problems = spec_problems(spec)
        if problems:
            plan.spec_problem = "; ".join(message for _, message in problems)
            return plan
        plan.deadline = created + spec.deadline_delta
        plan.deadline_limit = spec.deadline or plan.deadline_limit
        plan.max_skew_seconds, plan.max_skew = spec.max_skew_seconds, spec.max_skew or plan.max_skew
        plan.quiesce = spec.template.quiesce is not None
        order: list[str] | None = None  # boot order, for a VM Operator group's members; else by name
        if spec.vm_group_name is not None:
            order, plan.spec_problem = vm_group_members(spec.vm_group_name, lambda name: self.kube.get_object(
                VM_GROUP_PLURAL, ref.namespace, name, version=VM_GROUP_VERSION))
            if not plan.spec_problem and len(order) > MAX_GROUP_MEMBERS:
                plan.spec_problem = too_many_members(GROUP_SPEC_VM_GROUP_NAME_PATH, len(order))
            if plan.spec_problem:
                return plan
            vms: dict[str, VirtualMachine | None] = {n: self.kube.get_vm(ref.namespace, n) for n in order}
        elif spec.vm_names is not None:
            vms = {n: self.kube.get_vm(ref.namespace, n) for n in spec.vm_names}
        else:
            selector = spec.vm_selector.to_query() if spec.vm_selector else ""
            items = self.kube.list_objects(VM_PLURAL, ref.namespace,
                                           **({"label_selector": selector} if selector else {}))
            vms = {vm.name or "": vm for vm in map(VirtualMachine.model_validate, items)}
            if not vms:
                plan.spec_problem = no_selected_members(selector)
            elif len(vms) > MAX_GROUP_MEMBERS:
                plan.spec_problem = too_many_members(GROUP_SPEC_VM_SELECTOR_PATH, len(vms))
            if plan.spec_problem:
                return plan
        own = {member_snapshot_name(ref.name, vm) for vm in vms}
        counts = Counter(s.vm_name or "" for s in map(VirtualMachineSnapshot.model_validate,
                                                      self.kube.list_objects(SNAPSHOT_PLURAL, ref.namespace))
                         if s.name not in own and not s.is_being_deleted)
        for name in order or sorted(vms):
            vm = vms[name]
            member = MemberPlan(vm=name, snapshot=member_snapshot_name(ref.name, name))
            if vm is None:
                member.problem = vm_missing(name)
            elif refusals := snapshot_refusals(vm):
                member.problem = "; ".join(refusals)
            elif not vm.status.unique_id:
                member.problem = vm_not_bound(name)
            elif counts[name] >= MAX_SNAPSHOTS_PER_VM:
                member.problem = vm_at_limit(name, counts[name], MAX_SNAPSHOTS_PER_VM)
            else:
                member.vm_moref = vm.status.unique_id
            plan.members.append(member)
        return plan

    @activity.defn(name="kube_create_group_member")
    def create_member(self, request: MemberCreate) -> MemberCreated:
        """The member object: owned by the group (so it goes with it), labelled and annotated with it (so the
        saga and its member's create recognise it), its failure deadline the group's; then every usual path."""
        ref = request.group
        outcome = MemberCreated(vm=request.vm, snapshot=request.snapshot)
        group = self._own(ref)
        if group is None:
            return outcome.model_copy(update={"error": "the group was deleted"})
        template = group.spec.template
        spec = {"vmName": request.vm, **template.to_kube()}
        spec.setdefault("description", f"member of {group.kind} {ref.name}")
        annotations = {GROUP_SNAPSHOT_UID_ANNOTATION: ref.uid, FAILURE_DEADLINE_ANNOTATION: group.spec.deadline_text}
        if parent := current_trace_context().get("traceparent"):
            annotations[GROUP_SNAPSHOT_TRACEPARENT_ANNOTATION] = parent
        body = {
            "apiVersion": API_VERSION, "kind": SNAPSHOT_KIND,
            "metadata": {"name": request.snapshot, "namespace": ref.namespace,
                         "labels": {GROUP_SNAPSHOT_LABEL: ref.name, VM_NAME_LABEL: request.vm},
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": group.api_version, "kind": group.kind, "name": ref.name,
                                              "uid": ref.uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec,
        }
        try:
            made = self.kube.create_object(SNAPSHOT_PLURAL, ref.namespace, body)
        except KubeError as e:
            if e.status == 409:
                existing = self.kube.get_snapshot(ref.namespace, request.snapshot)
                if existing is not None and existing.metadata.annotation(GROUP_SNAPSHOT_UID_ANNOTATION) == ref.uid:
                    return outcome.model_copy(update={"uid": existing.metadata.uid or ""})  # an earlier attempt's
                return outcome.model_copy(update={"error": member_name_taken(request.snapshot)})
            if e.status in (400, 403, 422):  # refused by admission or the schema: retrying would not help
                return outcome.model_copy(update={"error": e.message or e.reason})
            raise
        return outcome.model_copy(update={"uid": (made.get("metadata") or {}).get("uid") or ""})

    def _members(self, ref: GroupRef) -> list[VirtualMachineSnapshot]:
        """The group's own members: its label and its UID (a label alone can be put on any snapshot by hand)."""
        items = self.kube.list_objects(SNAPSHOT_PLURAL, ref.namespace,
                                       label_selector=f"{GROUP_SNAPSHOT_LABEL}={ref.name}")
        return [s for s in map(VirtualMachineSnapshot.model_validate, items)
                if s.metadata.annotation(GROUP_SNAPSHOT_UID_ANNOTATION) == ref.uid]

    @activity.defn(name="kube_read_group_members")
    def read_members(self, ref: GroupRef) -> MembersRead:
        """The members by name: Ready, failed for good (as `<reason>: <message>`), the snapshot's uniqueID."""
        if self._own(ref) is None:
            return MembersRead(group_gone=True)
        read = MembersRead()
        for snapshot in self._members(ref):
            failure = snapshot.create_failure
            read.members[snapshot.name or ""] = MemberState(
                uid=snapshot.metadata.uid or "", ready=snapshot.is_ready,
                failed="" if failure is None else failure_text(failure),
                unique_id=snapshot.status.unique_id or "", deleting=snapshot.is_being_deleted)
        return read

    @activity.defn(name="kube_undo_group_members")
    def undo_members(self, undo: MembersUndo) -> int:
        """Delete every member of the group (each by its UID: an object of the same name made since is not
        touched); the members' own deletes then remove their vSphere snapshots through the VMs' queues. Returns
        how many members still exist (being deleted included): the saga waits for none."""
        members = self._members(undo.group)
        for snapshot in members:
            if not snapshot.is_being_deleted:
                self.kube.delete_object(SNAPSHOT_PLURAL, undo.group.namespace, snapshot.name or "",
                                        snapshot.metadata.uid or "")
        return len(members)

    @activity.defn(name="kube_record_group_snapshot")
    def record(self, record: GroupRecord) -> None:
        """The group's status (phase, Ready, members, skew, counts) and, when the record names one, its Event."""
        ref = record.group
        now = datetime.now(UTC)

        def mutate(group: VirtualMachineGroupSnapshot) -> bool:
            if group.metadata.uid != ref.uid:
                return False
            status, generation = group.status, group.metadata.generation
            before = status.to_kube()
            status.phase = record.phase
            status.workflow_id = record.workflow_id
            if record.members:
                status.members = [GroupMember(vm_name=m.vm, snapshot_name=m.snapshot, unique_id=m.unique_id or None,
                                              create_time=m.create_time) for m in record.members]
                status.member_count = len(record.members)
            status.ready_members = record.ready_members
            if record.skew_seconds is not None:
                status.skew_seconds = round(record.skew_seconds, 3)
                status.skew = format_skew(record.skew_seconds)
            ready = GroupConditionType.READY
            status.conditions = (set_true(status.conditions, ready, now, generation) if record.ready else
                                 set_false(status.conditions, ready, record.reason, record.message, now, generation))
            status.observed_generation = generation
            return status.to_kube() != before

        group = self.kube.update_group_snapshot_status(ref.namespace, ref.name, mutate)
        if group is not None and group.metadata.uid == ref.uid and record.event_reason:
            self.events.record(group, record.event_reason, record.message, warning=record.event_warning)

    # --- spec.revert --------------------------------------------------------------------------------------------

    @activity.defn(name="kube_plan_group_revert")
    def plan_revert(self, ref: GroupRevertRef) -> GroupRevertPlan | None:
        """The members to revert, by VM name (a VM Operator group's in its boot order); None when there is nothing
        to revert at this generation (the group is gone, not Ready, spec.revert cleared, a newer generation, or this
        one reverted already)."""
        group = self._own(ref.group)
        if group is None or group.metadata.generation != ref.generation or not group.revert_wanted:
            return None
        members = list(group.status.members or [])  # a VM Operator group's: its boot order
        if group.spec.vm_group_name is None:
            members.sort(key=lambda m: m.vm_name)
        return GroupRevertPlan(members=[MemberRecord(vm=m.vm_name, snapshot=m.snapshot_name,
                                                     unique_id=m.unique_id or "") for m in members])

    @activity.defn(name="kube_request_member_revert")
    def request_member_revert(self, request: MemberRevert) -> str:
        """spec.currentSnapshotName of the member's VM set to its member snapshot: the VM's usual revert (the
        bridge, the VM's queue, RevertSnapshot). "" when asked, else why it cannot be (the VM is gone)."""
        def ask(vm: VirtualMachine) -> bool:
            if vm.spec.current_snapshot_name == request.snapshot:
                return False  # asked already (an earlier attempt of this step)
            vm.spec.current_snapshot_name = request.snapshot
            return True
        if self.kube.update_vm(request.namespace, request.vm, ask) is None:
            return vm_missing(request.vm)
        return ""

    @activity.defn(name="kube_read_member_revert")
    def read_member_revert(self, request: MemberRevert) -> MemberReverted:
        """Done when the VM's revert ended on the member snapshot (spec.currentSnapshotName cleared, the current
        snapshot the member's); failed when its revert condition says so (a reason other than in progress)."""
        vm = self.kube.get_vm(request.namespace, request.vm)
        if vm is None:
            return MemberReverted(failed=vm_missing(request.vm))
        condition = vm.revert_condition
        if condition is not None and condition.reason != RevertReason.IN_PROGRESS:
            return MemberReverted(failed=failure_text(condition))
        current = vm.status.current_snapshot
        done = (condition is None and vm.spec.current_snapshot_name != request.snapshot
                and current is not None and current.name == request.snapshot)
        return MemberReverted(done=done)

    @activity.defn(name="kube_record_group_revert")
    def record_revert(self, record: GroupRevertRecord) -> None:
        """The Reverted condition, the VMs reverted so far and, once it has ended, the generation; its Event."""
        ref = record.revert.group
        now = datetime.now(UTC)

        def mutate(group: VirtualMachineGroupSnapshot) -> bool:
            if group.metadata.uid != ref.uid:
                return False
            status = group.status
            before = status.to_kube()
            reverted = GroupConditionType.REVERTED
            status.conditions = (set_true(status.conditions, reverted, now, record.revert.generation) if record.ok
                                 else set_false(status.conditions, reverted, record.reason, record.message, now,
                                                record.revert.generation))
            status.reverted_members = list(record.reverted)
            if record.ended:
                status.reverted_generation = record.revert.generation
            return status.to_kube() != before

        group = self.kube.update_group_snapshot_status(ref.namespace, ref.name, mutate)
        if group is not None and group.metadata.uid == ref.uid and record.event_reason:
            self.events.record(group, record.event_reason, record.message, warning=not record.ok)
