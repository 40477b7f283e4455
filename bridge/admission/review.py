"""AdmissionReview (admission.k8s.io/v1): reading the request and writing the response.

A webhook's verdict is a `Verdict` (field errors, warnings, JSON patch); `review_response` turns it into the
AdmissionReview the apiserver expects. A refusal carries a Kubernetes Status with the code (422 Invalid,
403 Forbidden, 500 InternalError), a message in the apiserver's own words and `details.causes[]` with the
field paths; the apiserver passes all of it to the client, prefixed with the webhook's name.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api import admission_messages
from api.names import GROUP

from .field_errors import ErrorType, FieldError


class MalformedReview(ValueError):
    """The body is not an AdmissionReview this server can answer (answered with HTTP 400)."""


class GroupVersionKind(BaseModel):
    model_config = ConfigDict(extra="ignore")
    group: str = ""
    version: str
    kind: str


class AdmissionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    name: str = ""
    namespace: str = ""
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = Field(default=None, alias="oldObject")
    dry_run: bool = Field(default=False, alias="dryRun")

    @property
    def object_name(self) -> str:
        """The object's name (on CREATE with generateName the validating webhooks see the generated one)."""
        return ((self.object or {}).get("metadata") or {}).get("name") or self.name

    def new_object(self) -> dict[str, Any]:
        if not isinstance(self.object, dict):
            raise MalformedReview(admission_messages.object_missing(self.operation))
        return self.object

    def previous_object(self) -> dict[str, Any]:
        if not isinstance(self.old_object, dict):
            raise MalformedReview(admission_messages.old_object_missing(self.operation))
        return self.old_object


def parse_review(body: Any) -> AdmissionRequest:
    """The request of an AdmissionReview v1 document. MalformedReview if it is not one."""
    if not isinstance(body, dict):
        raise MalformedReview(admission_messages.REVIEW_NOT_AN_OBJECT)
    if (body.get("apiVersion"), body.get("kind")) != (admission_messages.ADMISSION_API_VERSION,
                                                      admission_messages.ADMISSION_REVIEW_KIND):
        raise MalformedReview(admission_messages.not_an_admission_review(body.get("apiVersion"), body.get("kind")))
    request = body.get("request")
    if not isinstance(request, dict):
        raise MalformedReview(admission_messages.REVIEW_WITHOUT_REQUEST)
    try:
        return AdmissionRequest.model_validate(request)
    except ValueError as error:
        raise MalformedReview(admission_messages.malformed_request(error)) from None


@dataclass
class Verdict:
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def refusal_status(kind: str, name: str, errors: list[FieldError], group: str = GROUP) -> dict[str, Any]:
    """A metav1.Status like the apiserver's own (apierrors.NewInvalid / NewForbidden / NewInternalError)."""
    types = {e.type for e in errors}
    if ErrorType.INTERNAL in types:
        refusal = admission_messages.INTERNAL_ERROR
    elif types == {ErrorType.FORBIDDEN}:
        refusal = admission_messages.FORBIDDEN
    else:
        refusal = admission_messages.INVALID
    listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    return {
        "metadata": {},
        "status": admission_messages.STATUS_FAILURE,
        "message": admission_messages.object_refused(kind, group, name, refusal.verb, listed),
        "reason": refusal.reason,
        "details": {"name": name, "group": group, "kind": kind, "causes": [e.as_cause() for e in errors]},
        "code": refusal.code,
    }


def review_response(request: AdmissionRequest, verdict: Verdict) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": request.uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = refusal_status(request.kind.kind, request.object_name, verdict.errors,
                                            request.kind.group or GROUP)
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if verdict.allowed and verdict.patch:
        response["patchType"] = admission_messages.JSON_PATCH
        response["patch"] = base64.b64encode(json.dumps(verdict.patch).encode()).decode()
    return _review(response)


def bad_request_response(request: AdmissionRequest, message: str) -> dict[str, Any]:
    """A refusal for a review this webhook cannot judge (wrong kind: a misconfigured webhook rule)."""
    return _review({
        "uid": request.uid, "allowed": False,
        "status": {"metadata": {}, "status": admission_messages.STATUS_FAILURE, "message": message,
                   "reason": admission_messages.BAD_REQUEST_REASON, "code": admission_messages.BAD_REQUEST_CODE},
    })


def _review(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": admission_messages.ADMISSION_API_VERSION, "kind": admission_messages.ADMISSION_REVIEW_KIND,
            "response": response}


def json_pointer_token(key: str) -> str:
    """A map key as one JSON Pointer token (RFC 6901): label keys contain '/'."""
    return key.replace("~", "~0").replace("/", "~1")
