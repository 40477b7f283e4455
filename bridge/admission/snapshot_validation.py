"""The VirtualMachineSnapshot validating webhook: VM Operator's rules (reference §2.2) and ours (DESIGN §2).

CREATE
  spec.vmName required, a VirtualMachine name (DNS-1123 subdomain) and at most 63 characters (it becomes the
  vm-name label's value) · metadata.name at most 80 characters (the vSphere snapshot name) · quiesce and queisce
  not both set with different values · quiesce timeout parses and lies within vSphere's 5–240 minutes · the
  vm-name label, if present, equals spec.vmName · ours, the annotations that govern the create
  (api/operation_policy.py, refused naming the annotation): vmsnap.io/failure-deadline is a positive duration
  no shorter than the quiesce timeout (the default 10 minutes for `quiesce: {}`; when the timeout is itself
  refused, only the duration is checked), vmsnap.io/quiesce-fallback is `fail` or `crash-consistent` · then,
  about the VM: a missing VM is allowed (the create workflow reports it), a VKS/TKG node is forbidden, a SCSI
  controller sharing its bus is not supported · and about the VM's other snapshots: a warning at 32, a refusal
  beyond.
UPDATE
  spec.vmName, spec.memory and spec.quiesce (under either spelling) are immutable · the vm-name label, if
  present, equals spec.vmName · the two annotations, when added or changed, as on CREATE (a value the object
  already had is not judged again, so it never blocks the writes of the worker or of VM Operator). The
  description may change; the label may be removed (the mutating webhook puts it back).

The CRD's CEL rules refuse several of these first (see the CRD's header); the webhook checks them all anyway,
so that it is complete on a cluster whose CRD is VM Operator's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from api import admission_messages, messages
from api.limits import snapshot_count_refusal, snapshot_count_warning, snapshot_name_length_problem
from api.names import (
    FAILURE_DEADLINE_ANNOTATION,
    METADATA_NAME_PATH,
    QUIESCE_FALLBACK_ANNOTATION,
    SPEC_MEMORY_PATH,
    SPEC_QUEISCE_PATH,
    SPEC_QUIESCE_PATH,
    SPEC_VM_NAME_PATH,
    VM_NAME_LABEL_PATH,
    ControllerSharingMode,
)
from api.operation_policy import (
    FAILURE_DEADLINE_PATH,
    QUIESCE_FALLBACK_PATH,
    failure_deadline_problem,
    quiesce_fallback_problem,
)
from api.virtualmachinesnapshot import VirtualMachineSnapshot, vm_name_problems

from . import field_errors as fe
from .bypass import validation_bypassed
from .cluster import ClusterReader, describe_error
from .field_errors import FieldError
from .review import AdmissionRequest, Verdict
from .vm_view import vm_view


class SnapshotValidator:
    def __init__(self, cluster: ClusterReader):
        self._cluster = cluster

    async def __call__(self, request: AdmissionRequest) -> Verdict:
        if validation_bypassed(request):
            return Verdict()
        new = request.new_object()
        if request.operation == "CREATE":
            return await self._validate_create(request.namespace, new)
        return _validate_update(request.previous_object(), new)

    async def _validate_create(self, namespace: str, document: dict[str, Any]) -> Verdict:
        snapshot, errors = parse_snapshot(document)
        if snapshot is None:
            return Verdict(errors=errors)
        name = snapshot.name or ""
        vm_name = snapshot.vm_name or ""
        if not vm_name:
            errors.append(fe.required(SPEC_VM_NAME_PATH, messages.VM_NAME_REQUIRED))
        vm_name_errors = [fe.invalid(SPEC_VM_NAME_PATH, vm_name, problem) for problem in vm_name_problems(vm_name)]
        errors += vm_name_errors
        if name and (problem := snapshot_name_length_problem(name)):
            errors.append(fe.too_long(METADATA_NAME_PATH, problem))
        if (problem := snapshot.spec.quiesce_problem()) and snapshot.spec.effective_quiesce is not None:
            errors.append(fe.invalid(snapshot.spec.quiesce_timeout_path, snapshot.spec.effective_quiesce.timeout,
                                     problem))
        errors += _label_mismatch(snapshot)
        errors += operation_policy_errors(snapshot)
        if not vm_name or vm_name_errors:
            return Verdict(errors=errors)  # no VM can have that name: nothing to read about it

        vm, siblings = await asyncio.gather(self._cluster.virtual_machine(namespace, vm_name),
                                            self._cluster.snapshots(namespace), return_exceptions=True)
        errors += vm_problems(vm_name, vm)
        verdict = Verdict(errors=errors)
        judge_snapshot_count(verdict, vm_name, name, siblings)
        return verdict


def parse_snapshot(document: dict[str, Any]) -> tuple[VirtualMachineSnapshot | None, list[FieldError]]:
    """The snapshot as the api model, and the errors found reading it.

    Both spellings set with different timeouts is reported here (the model itself refuses it with a bare
    ValueError); the model is then read from `quiesce` alone, so the other checks still run.
    """
    errors: list[FieldError] = []
    spec = document.get("spec")
    if isinstance(spec, dict) and "quiesce" in spec and "queisce" in spec:
        if _timeout_text(spec["quiesce"]) != _timeout_text(spec["queisce"]):
            errors.append(fe.invalid(SPEC_QUEISCE_PATH, spec["queisce"], messages.QUIESCE_ALIAS_CONFLICT))
        document = {**document, "spec": {k: v for k, v in spec.items() if k != "queisce"}}
    try:
        return VirtualMachineSnapshot.model_validate(document), errors
    except ValidationError as error:
        return None, errors + fe.from_validation_error(error, document)


def _timeout_text(quiesce: Any) -> str:
    # As the CRD's CEL rule compares them: an absent timeout equals an empty one.
    timeout = quiesce.get("timeout") if isinstance(quiesce, dict) else None
    return timeout if isinstance(timeout, str) else ""


def _label_mismatch(snapshot: VirtualMachineSnapshot) -> list[FieldError]:
    vm_name = snapshot.vm_name
    label = snapshot.vm_name_label
    if vm_name and label is not None and label != vm_name:
        return [fe.invalid(VM_NAME_LABEL_PATH, label, messages.vm_name_label_mismatch(vm_name))]
    return []


def operation_policy_errors(snapshot: VirtualMachineSnapshot, old: dict[str, Any] | None = None) -> list[FieldError]:
    """The annotations that govern the create (api/operation_policy.py), each refused on its own path. With `old`
    (an UPDATE: the previous object's raw document), only an annotation added or changed is judged."""
    errors: list[FieldError] = []
    deadline = snapshot.metadata.annotation(FAILURE_DEADLINE_ANNOTATION)
    if _changed(FAILURE_DEADLINE_ANNOTATION, deadline, old) and \
            (problem := failure_deadline_problem(deadline, _valid_quiesce_minutes(snapshot))):
        errors.append(fe.invalid(FAILURE_DEADLINE_PATH, deadline, problem))
    fallback = snapshot.metadata.annotation(QUIESCE_FALLBACK_ANNOTATION)
    if _changed(QUIESCE_FALLBACK_ANNOTATION, fallback, old) and (problem := quiesce_fallback_problem(fallback)):
        errors.append(fe.invalid(QUIESCE_FALLBACK_PATH, fallback, problem))
    return errors


def _valid_quiesce_minutes(snapshot: VirtualMachineSnapshot) -> int | None:
    """The minutes the guest may take to freeze (either spelling, the default for `quiesce: {}`); None without
    quiesce, or when the timeout is refused itself (then the deadline is checked as a duration only)."""
    if snapshot.spec.quiesce_problem() is not None:
        return None
    return snapshot.spec.quiesce_minutes


def _changed(annotation: str, value: str | None, old: dict[str, Any] | None) -> bool:
    return old is None or value != raw_annotation(old, annotation)


def raw_annotation(document: dict[str, Any], key: str) -> str | None:
    """An annotation of an object as received (an old object the model cannot read still has its annotations)."""
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations.get(key) if isinstance(annotations, dict) else None


def vm_problems(vm_name: str, found: dict[str, Any] | None | BaseException,
                path: str = SPEC_VM_NAME_PATH) -> list[FieldError]:
    """Why a snapshot of this VM (as read, or the read's failure) is refused, on `path`: a single snapshot's checks,
    which a group snapshot makes of each member too."""
    if isinstance(found, BaseException):
        # VM Operator reports this as Invalid; it is not the user's fault, so it is an internal error (500) here.
        return [fe.internal(path,
                            admission_messages.vm_unreadable(vm_name, describe_error(_read_failure(found))))]
    if found is None:
        return []  # allowed, as in VM Operator: the create workflow reports a missing VM as a condition
    try:
        vm = vm_view(found, "hardware")
    except ValidationError as error:
        return [fe.internal(path, admission_messages.vm_unreadable(vm_name, str(error)))]
    errors: list[FieldError] = []
    if vm.is_vks_node:
        errors.append(fe.forbidden(path, messages.SNAPSHOT_OF_VKS_NODE_FORBIDDEN))
    for bus, sharing_mode in vm.snapshot_blocking_scsi_buses:
        problem = messages.unsupported_scsi_sharing_mode(bus, sharing_mode)
        errors.append(fe.not_supported(path, problem, [ControllerSharingMode.NONE]))
    return errors


def _read_failure(error: BaseException) -> Exception:
    """What a read in asyncio.gather(return_exceptions=True) failed with. A BaseException that is no Exception
    (a cancellation) is no failed read: it goes on up."""
    if isinstance(error, Exception):
        return error
    raise error


def judge_snapshot_count(verdict: Verdict, vm_name: str, own_name: str,
                         siblings: list[dict[str, Any]] | BaseException, path: str = SPEC_VM_NAME_PATH) -> None:
    """The guard on the VM's number of snapshots (a refusal beyond 32, a warning at 32), on `path`."""
    if isinstance(siblings, BaseException):
        reason = describe_error(_read_failure(siblings))
        verdict.errors.append(fe.internal(path, admission_messages.snapshots_uncountable(vm_name, reason)))
        return
    count_with_new = 1 + sum(1 for s in siblings if _counts_as_snapshot_of(s, vm_name, own_name))
    if refusal := snapshot_count_refusal(vm_name, count_with_new):
        verdict.errors.append(fe.forbidden(path, refusal))
    elif warning := snapshot_count_warning(vm_name, count_with_new):
        verdict.warnings.append(warning)


def _counts_as_snapshot_of(snapshot: dict[str, Any], vm_name: str, own_name: str) -> bool:
    # Raw JSON, not the model: one odd object in the namespace must not make every create fail.
    # A snapshot being deleted does not count: the VM's operations run one at a time in arrival order, so its
    # removal in vSphere happens before the new snapshot is taken, and "delete one before creating another"
    # (the refusal's advice) works at once.
    metadata = snapshot.get("metadata") or {}
    spec = snapshot.get("spec") or {}
    return (spec.get("vmName") == vm_name and metadata.get("name") != own_name
            and not metadata.get("deletionTimestamp"))


def _validate_update(old_document: dict[str, Any], new_document: dict[str, Any]) -> Verdict:
    new, errors = parse_snapshot(new_document)
    old, _ = parse_snapshot(old_document)
    if new is None:
        return Verdict(errors=errors)
    if old is not None:
        errors += _immutability_errors(old, new, new_document)
    errors += _label_mismatch(new)
    errors += operation_policy_errors(new, old_document)
    return Verdict(errors=errors)


def _immutability_errors(old: VirtualMachineSnapshot, new: VirtualMachineSnapshot,
                         new_document: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if (old.vm_name or "") != (new.vm_name or ""):
        errors.append(fe.invalid(SPEC_VM_NAME_PATH, new.vm_name, messages.FIELD_IMMUTABLE))
    if old.spec.includes_memory != new.spec.includes_memory:
        errors.append(fe.invalid(SPEC_MEMORY_PATH, new.spec.includes_memory, messages.FIELD_IMMUTABLE))
    if _quiesce_identity(old) != _quiesce_identity(new):
        # Named as the user spelled it in the new object.
        spec = new_document.get("spec") or {}
        spelling = "queisce" if "queisce" in spec and "quiesce" not in spec else "quiesce"
        path = SPEC_QUEISCE_PATH if spelling == "queisce" else SPEC_QUIESCE_PATH
        errors.append(fe.invalid(path, spec.get(spelling), messages.FIELD_IMMUTABLE))
    return errors


def _quiesce_identity(snapshot: VirtualMachineSnapshot) -> tuple[bool, str]:
    """What makes two quiesce specs the same, whichever spelling holds it: `{}` differs from no quiesce."""
    quiesce = snapshot.spec.effective_quiesce
    return (quiesce is not None, (quiesce.timeout or "") if quiesce is not None else "")
