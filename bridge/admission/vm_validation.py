"""The VirtualMachine validating webhook: VM Operator's revert rules on spec.currentSnapshotName (reference
§2.3), plus one of ours.

CREATE: a non-empty value is forbidden (a VM is reverted only after it exists).
UPDATE, when the value is non-empty (clearing always works: it is how a user abandons a revert):
  whitespace only → invalid · changed from one non-empty value to another → forbidden (a revert is pending)
  · a VKS/TKG node → forbidden · ours: newly set to a VirtualMachineSnapshot of another VM → forbidden.
A snapshot that does not exist is allowed, as in VM Operator: the revert workflow reports it as a condition on
the VM, and the user may create the snapshot object later.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from api import admission_messages, messages
from api.names import SPEC_CURRENT_SNAPSHOT_NAME_PATH

from . import field_errors as fe
from .bypass import validation_bypassed
from .cluster import ClusterReader, describe_error
from .field_errors import FieldError
from .review import AdmissionRequest, Verdict
from .snapshot_validation import parse_snapshot
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
        if request.operation == "CREATE":
            if new_name:
                return Verdict(errors=[fe.forbidden(PATH, messages.CREATE_VM_WITH_CURRENT_SNAPSHOT_FORBIDDEN)])
            return Verdict()
        if not new_name:
            return Verdict()
        if not new_name.strip():
            return Verdict(errors=[fe.invalid(PATH, new_name, messages.CURRENT_SNAPSHOT_NAME_EMPTY)])
        old_name = _current_snapshot_name(request.previous_object())
        if old_name and old_name != new_name:
            return Verdict(errors=[fe.forbidden(PATH, messages.REVERT_ALREADY_IN_PROGRESS)])
        if vm.is_vks_node:
            return Verdict(errors=[fe.forbidden(PATH, messages.REVERT_OF_VKS_NODE_FORBIDDEN)])
        if old_name != new_name:
            return Verdict(errors=await self._snapshot_ownership(request.namespace, vm.name or "", new_name))
        return Verdict()

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


def _current_snapshot_name(document: dict[str, Any]) -> str:
    try:
        return vm_view(document, "current_snapshot_name").spec.current_snapshot_name or ""
    except ValidationError:
        return ""  # an old object the model cannot read: judge the new value on its own
