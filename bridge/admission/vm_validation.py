"""The VirtualMachine validating webhook: VM Operator's revert rules on spec.currentSnapshotName (reference
§2.3), plus two of ours.

CREATE: a non-empty value is forbidden (a VM is reverted only after it exists).
UPDATE, when the value is non-empty (clearing always works: it is how a user abandons a revert):
  whitespace only → invalid · changed from one non-empty value to another → forbidden (a revert is pending)
  · a VKS/TKG node → forbidden · ours: newly set to a VirtualMachineSnapshot of another VM → forbidden.
A snapshot that does not exist is allowed, as in VM Operator: the revert workflow reports it as a condition on
the VM, and the user may create the snapshot object later.
Ours, on every request judged: the annotation vmsnap.io/failure-deadline (the deadline of the VM's reverts,
api/operation_policy.py) is a positive duration, refused naming the annotation; judged on CREATE, and on UPDATE
when it is added or changed or when a revert is newly asked (the deadline it will run under). An unchanged value
is not judged again during a pending revert, so it never blocks VM Operator's own writes.

The apiserver calls this webhook only while a revert is asked (webhooks.VM_VALIDATING's match condition: a
non-empty spec.currentSnapshotName), so a bad deadline written while no revert is pending is not refused then:
it is refused when a revert is asked, by that request.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from api import VirtualMachine, admission_messages, messages
from api.names import FAILURE_DEADLINE_ANNOTATION, SPEC_CURRENT_SNAPSHOT_NAME_PATH
from api.operation_policy import FAILURE_DEADLINE_PATH, failure_deadline_problem

from . import field_errors as fe
from .bypass import validation_bypassed
from .cluster import ClusterReader, describe_error
from .field_errors import FieldError
from .review import AdmissionRequest, Verdict
from .snapshot_validation import parse_snapshot, raw_annotation
from .vm_view import vm_view

PATH = SPEC_CURRENT_SNAPSHOT_NAME_PATH


class VirtualMachineValidator:
    def __init__(self, cluster: ClusterReader):
        self._cluster = cluster

    async def __call__(self, request: AdmissionRequest) -> Verdict:
        if validation_bypassed(request):
            return Verdict()
        new_document = request.new_object()
        try:
            vm = vm_view(new_document, "current_snapshot_name")
        except ValidationError as error:
            return Verdict(errors=fe.from_validation_error(error, new_document))
        new_name = vm.spec.current_snapshot_name or ""
        errors = await self._revert_errors(request, vm, new_name)
        return Verdict(errors=errors + _deadline_errors(request, vm, new_name))

    async def _revert_errors(self, request: AdmissionRequest, vm: VirtualMachine, new_name: str) -> list[FieldError]:
        if request.operation == "CREATE":
            if new_name:
                return [fe.forbidden(PATH, messages.CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN)]
            return []
        if not new_name:
            return []
        if not new_name.strip():
            return [fe.invalid(PATH, new_name, messages.CURRENT_SNAPSHOT_NAME_EMPTY)]
        old_name = _current_snapshot_name(request.previous_object())
        if old_name and old_name != new_name:
            return [fe.forbidden(PATH, messages.REVERT_ALREADY_IN_PROGRESS)]
        if vm.is_vks_node:
            return [fe.forbidden(PATH, messages.REVERT_OF_VKS_NODE_FORBIDDEN)]
        if old_name != new_name:
            return await self._snapshot_ownership(request.namespace, vm.name or "", new_name)
        return []

    async def _snapshot_ownership(self, namespace: str, vm_name: str, snapshot_name: str) -> list[FieldError]:
        """Checked only when the value is newly set: the VM's later updates during the revert need no reads."""
        try:
            snapshot = await self._cluster.snapshot(namespace, snapshot_name)
        except Exception as error:  # noqa: BLE001 - any failed read is reported, never allowed unchecked
            return [fe.internal(PATH, admission_messages.snapshot_unreadable(snapshot_name, describe_error(error)))]
        if snapshot is None:
            return []
        parsed, problems = parse_snapshot(snapshot)
        if parsed is None:
            reason = "; ".join(str(p) for p in problems)
            return [fe.internal(PATH, admission_messages.snapshot_unreadable(snapshot_name, reason))]
        owner = parsed.vm_name or ""
        if owner != vm_name:
            return [fe.forbidden(PATH, admission_messages.snapshot_of_another_vm(snapshot_name, owner, vm_name))]
        return []


def _deadline_errors(request: AdmissionRequest, vm: VirtualMachine, new_name: str) -> list[FieldError]:
    """The deadline of the VM's reverts, judged when it is new or changed, or when a revert is newly asked (the
    deadline that revert will run under). A revert has no quiesce timeout: it only has to be a positive duration."""
    deadline = vm.metadata.annotation(FAILURE_DEADLINE_ANNOTATION)
    old = request.old_object if request.operation == "UPDATE" else None
    if old is not None and deadline == raw_annotation(old, FAILURE_DEADLINE_ANNOTATION) and \
            (not new_name or new_name == _current_snapshot_name(old)):
        return []
    if problem := failure_deadline_problem(deadline, None):
        return [fe.invalid(FAILURE_DEADLINE_PATH, deadline, problem)]
    return []


def _current_snapshot_name(document: dict[str, Any]) -> str:
    try:
        return vm_view(document, "current_snapshot_name").spec.current_snapshot_name or ""
    except ValidationError:
        return ""  # an old object the model cannot read: judge the new value on its own
