"""The VirtualMachineSnapshot mutating webhook (reference §2.1, plus the finalizer).

* The label snapshot.vmoperator.vmware.com/vm-name=<spec.vmName> is set when vmName is set and the label key is
  absent. An existing label is never overwritten, even a wrong one: the validating webhook refuses it, so the
  user sees the mismatch instead of having it silently "fixed". A vmName that is no VirtualMachine name, or too
  long for a label value, is not copied: the apiserver would refuse the label (a field the user never wrote)
  before anything judged spec.vmName; left alone, the refusal names spec.vmName (the CRD's CEL rules, and the
  validating webhook on a cluster whose CRD lacks them).
* On CREATE the finalizer is added, so it is on the object from the moment the object exists, before the bridge
  sees it and before any vSphere work (design invariant 5). Not on UPDATE: the finalizer is removed only by the
  delete workflow (after deletion started, when this webhook steps aside) or by a person on purpose.
* An object being deleted is left alone.

The mutating webhook runs before the CRD's schema and CEL validation, so it reads the raw JSON defensively and
never assumes the object is valid.
"""

from __future__ import annotations

from typing import Any

from api.names import SNAPSHOT_FINALIZER, VM_NAME_LABEL
from api.virtualmachinesnapshot import vm_name_problems

from .review import AdmissionRequest, Verdict, json_pointer_token


def mutate_snapshot(request: AdmissionRequest) -> Verdict:
    if request.operation not in ("CREATE", "UPDATE"):
        return Verdict()
    snapshot = request.new_object()
    metadata = _object_at(snapshot, "metadata")
    if metadata.get("deletionTimestamp"):
        return Verdict()
    patch = _vm_name_label_patch(snapshot, metadata)
    if request.operation == "CREATE":
        patch += _finalizer_patch(metadata)
    return Verdict(patch=patch)


def _vm_name_label_patch(snapshot: dict[str, Any], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _object_at(snapshot, "spec")
    vm_name = spec.get("vmName")
    if not isinstance(vm_name, str) or not vm_name or vm_name_problems(vm_name):
        return []
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        if VM_NAME_LABEL in labels:
            return []
        return [{"op": "add", "path": f"/metadata/labels/{json_pointer_token(VM_NAME_LABEL)}", "value": vm_name}]
    return [{"op": "add", "path": "/metadata/labels", "value": {VM_NAME_LABEL: vm_name}}]


def _object_at(document: dict[str, Any], key: str) -> dict[str, Any]:
    """document[key] if it is a JSON object, else an empty one (the raw JSON may hold anything there)."""
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _finalizer_patch(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    finalizers = metadata.get("finalizers")
    if isinstance(finalizers, list):
        if SNAPSHOT_FINALIZER in finalizers:
            return []
        return [{"op": "add", "path": "/metadata/finalizers/-", "value": SNAPSHOT_FINALIZER}]
    return [{"op": "add", "path": "/metadata/finalizers", "value": [SNAPSHOT_FINALIZER]}]
