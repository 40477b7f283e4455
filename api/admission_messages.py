"""Admission's texts: the protocol's own strings (AdmissionReview, the Kubernetes Status of a refusal, field
errors, the webhook server's HTTP answers), our refusals that api.messages does not hold (the
revert-to-another-VM's-snapshot rule, the messages for reads the webhook could not make), and the answers to
reviews a webhook configuration should never have sent.

VM Operator's refusal texts stay in api.messages; the texts computed from values (quiesce timeout, snapshot
count, name length) stay with the code that computes them (api.duration, api.limits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .names import GROUP, SERVED_VERSIONS, SNAPSHOT_KIND, VM_KIND

# --- AdmissionReview (admission.k8s.io/v1) ------------------------------------------------------------------------

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_REVIEW_KIND = "AdmissionReview"
JSON_PATCH = "JSONPatch"  # response.patchType
STATUS_FAILURE = "Failure"  # metav1.Status.status of every refusal

REVIEW_NOT_AN_OBJECT = "the body must be a JSON object (an AdmissionReview)"
REVIEW_WITHOUT_REQUEST = "the AdmissionReview has no request"


def not_an_admission_review(api_version: object, kind: object) -> str:
    return (f"expected apiVersion {ADMISSION_API_VERSION} and kind {ADMISSION_REVIEW_KIND}, "
            f"got {api_version!r} and {kind!r}")


def malformed_request(error: object) -> str:
    return f"the AdmissionReview's request is malformed: {error}"


def object_missing(operation: str) -> str:
    return f"request.object is missing for a {operation} request"


def old_object_missing(operation: str) -> str:
    return f"request.oldObject is missing for a {operation} request"


# --- refusals: a metav1.Status like the apiserver's own -----------------------------------------------------------


class Refusal(NamedTuple):
    """HTTP code, StatusReason and the verb of the message, as apierrors.NewInternalError, NewForbidden and
    NewInvalid write them."""

    code: int
    reason: str
    verb: str


INTERNAL_ERROR = Refusal(500, "InternalError", "could not be checked")
FORBIDDEN = Refusal(403, "Forbidden", "is forbidden")
INVALID = Refusal(422, "Invalid", "is invalid")
# A review this webhook cannot judge (apierrors.NewBadRequest): its message is the whole answer.
BAD_REQUEST_CODE = 400
BAD_REQUEST_REASON = "BadRequest"


def object_refused(kind: str, group: str, name: str, verb: str, listed_errors: str) -> str:
    """`VirtualMachineSnapshot.vmoperator.vmware.com "s1" is invalid: spec.vmName: Required value: ...`"""
    return f'{kind}.{group} "{name}" {verb}: {listed_errors}'


# --- field errors (k8s.io/apimachinery/pkg/util/validation/field) -------------------------------------------------

# (StatusCause reason, the words Kubernetes prints) of each kind of field error
FIELD_VALUE_REQUIRED = ("FieldValueRequired", "Required value")
FIELD_VALUE_INVALID = ("FieldValueInvalid", "Invalid value")
FIELD_VALUE_FORBIDDEN = ("FieldValueForbidden", "Forbidden")
FIELD_VALUE_NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
FIELD_VALUE_TOO_LONG = ("FieldValueTooLong", "Too long")
FIELD_INTERNAL_ERROR = ("InternalError", "Internal error")
# The field path of an error about the object as a whole
WHOLE_OBJECT = "<object>"


def supported_values(supported: Sequence[str]) -> str:
    return "supported values: " + ", ".join(f'"{s}"' for s in supported)


# --- the webhook server's HTTP answers ----------------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/json"
HEALTHY = "ok"  # /healthz and /readyz


def content_type_not_json(content_type: str) -> str:
    return f"Content-Type must be {JSON_CONTENT_TYPE}, not {content_type}"


def body_not_json(error: Exception) -> str:
    return f"the body is not JSON: {error}"


def webhook_failed(error: Exception) -> str:
    """A webhook raised: refused as an internal error naming the failure."""
    return f"the webhook failed: {type(error).__name__}: {error}"


# --- our refusals -------------------------------------------------------------------------------------------------


def snapshot_of_another_vm(snapshot_name: str, owner_vm_name: str, vm_name: str) -> str:
    """spec.currentSnapshotName names a snapshot whose spec.vmName is another VM."""
    return (f'{SNAPSHOT_KIND} "{snapshot_name}" is a snapshot of {VM_KIND} "{owner_vm_name}", not of '
            f'"{vm_name}": a VM can only be reverted to its own snapshots')


def vm_unreadable(vm_name: str, error: str) -> str:
    return f'cannot read {VM_KIND} "{vm_name}" to check that it can be snapshotted: {error}'


def snapshots_uncountable(vm_name: str, error: str) -> str:
    return f'cannot count the snapshots of {VM_KIND} "{vm_name}": {error}'


def snapshot_unreadable(snapshot_name: str, error: str) -> str:
    return f'cannot read {SNAPSHOT_KIND} "{snapshot_name}" to check that it is a snapshot of this VM: {error}'


def kind_not_admitted(admitted_kind: str, kind: str) -> str:
    return f"this webhook admits {admitted_kind} objects, not {kind}: check the webhook configuration's rules"


def version_not_admitted(admitted_kind: str, group: str, version: str) -> str:
    return (f"this webhook admits {admitted_kind} objects of {GROUP} {', '.join(SERVED_VERSIONS)}, not of "
            f"{group}/{version}: check the webhook configuration's rules")


def apiserver_answered(status: int | None, reason: str | None) -> str:
    return f"the apiserver answered {status} {reason or ''}".rstrip()
