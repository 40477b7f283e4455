"""The VirtualMachineGroupSnapshot validating webhook, and the refusal of a member's deletion on its own.

Group CREATE/UPDATE: api.group_snapshot.spec_problems, each refusal naming its field (members by exactly one of
vmNames and vmSelector, at least one and at most 64, each once, none in another namespace; the template's quiesce
timeout; spec.maxSkew and spec.deadline durations, the deadline no shorter than the quiesce timeout); on UPDATE,
spec.revert only on a Ready group (the spec's other fields are immutable: the CRD's CEL rules). On CREATE,
each member VM as a single snapshot's admission judges it (snapshot_validation.vm_problems and the 32-snapshot
guard, on the member's own path): a VKS node, a shared SCSI bus, a VM at vSphere's limit are refused; a missing VM
is left to the saga's preflight, as a single snapshot leaves it to its create.

Member DELETE (the snapshot webhook's DELETE rule, only for objects carrying the group label): refused, naming the
group, while the group exists and is not being deleted nor undoing its members; garbage collection (the group
deleted) and the saga's own undo (phase Compensating, or Failed) go through."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from api import VirtualMachineSnapshot
from api.group_snapshot import (
    VirtualMachineGroupSnapshot,
    member_snapshot_name,
    owning_group,
    spec_problems,
    vm_group_members,
)
from api.group_snapshot_messages import (
    REVERT_NEEDS_READY,
    member_of_group,
    member_problem,
    no_selected_members,
    too_many_members,
)
from api.group_snapshot_names import (
    GROUP_SPEC_REVERT_PATH,
    GROUP_SPEC_VM_GROUP_NAME_PATH,
    GROUP_SPEC_VM_NAMES_PATH,
    GROUP_SPEC_VM_SELECTOR_PATH,
    MAX_GROUP_MEMBERS,
    GroupPhase,
)

from . import field_errors as fe
from .bypass import validation_bypassed
from .cluster import ClusterReader, describe_error
from .review import AdmissionRequest, Verdict
from .snapshot_validation import judge_snapshot_count, vm_problems

# the group's phases in which its saga deletes its own members
UNDOING = (GroupPhase.COMPENSATING, GroupPhase.FAILED)


class GroupSnapshotValidator:
    def __init__(self, cluster: ClusterReader):
        self._cluster = cluster

    async def __call__(self, request: AdmissionRequest) -> Verdict:
        if validation_bypassed(request):
            return Verdict()
        document = request.new_object()
        try:
            group = VirtualMachineGroupSnapshot.model_validate(document)
        except ValidationError as error:
            return Verdict(errors=fe.from_validation_error(error, document))
        errors = [fe.invalid(field, _value_at(document, field), message)
                  for field, message in spec_problems(group.spec)]
        if request.operation == "UPDATE" and group.spec.revert and not group.is_ready:
            errors.append(fe.invalid(GROUP_SPEC_REVERT_PATH, True, REVERT_NEEDS_READY))
        if request.operation != "CREATE" or errors:
            return Verdict(errors=errors)
        return await self._judge_members(request.namespace, group)

    async def _judge_members(self, namespace: str, group: VirtualMachineGroupSnapshot) -> Verdict:
        spec, verdict = group.spec, Verdict()
        members: list[tuple[str, str, dict[str, Any] | None | BaseException]]
        if spec.vm_names is not None:
            found = await asyncio.gather(*(self._cluster.virtual_machine(namespace, n) for n in spec.vm_names),
                                         return_exceptions=True)
            members = [(f"{GROUP_SPEC_VM_NAMES_PATH}[{i}]", n, vm)
                       for i, (n, vm) in enumerate(zip(spec.vm_names, found, strict=True))]
        elif spec.vm_group_name is not None:
            order, problem = await asyncio.to_thread(vm_group_members, spec.vm_group_name,
                                                     lambda name: self._cluster.read_vm_group(namespace, name))
            if problem or len(order) > MAX_GROUP_MEMBERS:
                return Verdict(errors=[fe.invalid(GROUP_SPEC_VM_GROUP_NAME_PATH, spec.vm_group_name, problem or
                                                  too_many_members(GROUP_SPEC_VM_GROUP_NAME_PATH, len(order)))])
            found = await asyncio.gather(*(self._cluster.virtual_machine(namespace, n) for n in order),
                                         return_exceptions=True)
            members = [(GROUP_SPEC_VM_GROUP_NAME_PATH, n, vm) for n, vm in zip(order, found, strict=True)]
        else:
            selector = spec.vm_selector.to_query() if spec.vm_selector else ""
            try:
                vms = await self._cluster.virtual_machines(namespace, selector)
            except Exception as error:  # noqa: BLE001 - said as the refusal
                return Verdict(errors=[fe.internal(GROUP_SPEC_VM_SELECTOR_PATH, describe_error(error))])
            if not vms:
                return Verdict(errors=[fe.invalid(GROUP_SPEC_VM_SELECTOR_PATH, selector,
                                                  no_selected_members(selector))])
            if len(vms) > MAX_GROUP_MEMBERS:
                return Verdict(errors=[fe.invalid(GROUP_SPEC_VM_SELECTOR_PATH, selector,
                                                  too_many_members(GROUP_SPEC_VM_SELECTOR_PATH, len(vms)))])
            members = [(GROUP_SPEC_VM_SELECTOR_PATH, (vm.get("metadata") or {}).get("name") or "", vm) for vm in vms]
        siblings: list[dict[str, Any]] | BaseException
        try:
            siblings = await self._cluster.snapshots(namespace)
        except Exception as error:  # noqa: BLE001 - judge_snapshot_count says it
            siblings = error
        for path, name, vm in members:
            member = Verdict(errors=vm_problems(name, vm, path))
            if vm is not None and not isinstance(vm, BaseException):
                judge_snapshot_count(member, name, member_snapshot_name(group.name or "", name), siblings, path)
            # each refusal names its member: a selector's path alone does not
            verdict.errors += [replace(e, detail=member_problem(name, e.detail)) for e in member.errors]
            verdict.warnings += member.warnings
        return verdict


class MemberDeletionValidator:
    """A member's deletion on its own is refused while its group stands."""

    def __init__(self, cluster: ClusterReader):
        self._cluster = cluster

    async def __call__(self, request: AdmissionRequest) -> Verdict:
        if request.operation != "DELETE" or not isinstance(request.old_object, dict):
            return Verdict()
        try:
            snapshot = VirtualMachineSnapshot.model_validate(request.old_object)
        except ValidationError:
            return Verdict()  # not a member this webhook can read: not its to refuse
        owner = owning_group(snapshot)
        if owner is None:
            return Verdict()
        name, uid = owner
        found = await self._cluster.group_snapshot(request.namespace, name)
        if found is None:
            return Verdict()
        group = VirtualMachineGroupSnapshot.model_validate(found)
        if group.metadata.uid != uid or group.metadata.is_being_deleted or group.status.phase in UNDOING:
            return Verdict()
        return Verdict(errors=[fe.forbidden("metadata.name", member_of_group(name))])


def _value_at(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
