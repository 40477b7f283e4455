"""Field errors in the Kubernetes style (k8s.io/apimachinery/pkg/util/validation/field), so a refusal by the
webhook reads like one by the apiserver itself: `spec.vmName: Required value: vmName must be provided`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import ValidationError

from api import admission_messages


class ErrorType(Enum):
    """(StatusCause reason, the words Kubernetes prints) for each kind of field error."""

    REQUIRED = admission_messages.FIELD_VALUE_REQUIRED
    INVALID = admission_messages.FIELD_VALUE_INVALID
    FORBIDDEN = admission_messages.FIELD_VALUE_FORBIDDEN
    NOT_SUPPORTED = admission_messages.FIELD_VALUE_NOT_SUPPORTED
    TOO_LONG = admission_messages.FIELD_VALUE_TOO_LONG
    INTERNAL = admission_messages.FIELD_INTERNAL_ERROR

    @property
    def cause_reason(self) -> str:
        return self.value[0]

    @property
    def words(self) -> str:
        return self.value[1]


# Kubernetes prints the bad value only for these types (field.Error.ErrorBody).
_TYPES_SHOWING_VALUE = (ErrorType.INVALID, ErrorType.NOT_SUPPORTED)
_NO_VALUE = object()


@dataclass(frozen=True)
class FieldError:
    type: ErrorType
    field: str
    detail: str
    value: Any = _NO_VALUE

    @property
    def body(self) -> str:
        """What Kubernetes puts in StatusCause.message: `Invalid value: "4m": ...`, without the field path."""
        text = self.type.words
        if self.type in _TYPES_SHOWING_VALUE and self.value is not _NO_VALUE:
            text += f": {format_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"

    def as_cause(self) -> dict[str, str]:
        return {"reason": self.type.cause_reason, "message": self.body, "field": self.field}


def format_value(value: Any) -> str:
    """A bad value as Kubernetes prints it: strings quoted, numbers and booleans bare, null, objects as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=isinstance(value, dict))


def _detail_for(field: str, detail: str) -> str:
    # Some api messages are whole field errors already (`spec.vmName: VM 'x' already has ...`): the path is
    # printed once, by the error itself.
    prefix = f"{field}: "
    return detail[len(prefix):] if detail.startswith(prefix) else detail


def required(field: str, detail: str) -> FieldError:
    return FieldError(ErrorType.REQUIRED, field, _detail_for(field, detail))


def invalid(field: str, value: Any, detail: str) -> FieldError:
    detail = _detail_for(field, detail)
    if detail.startswith(f"{field} "):
        # A sentence that names the field and quotes the value (api.duration's): printed without the value
        # again, as the apiserver prints the CRD's CEL messages (`spec.memory: Invalid value: spec.memory is
        # immutable`).
        return FieldError(ErrorType.INVALID, field, detail)
    return FieldError(ErrorType.INVALID, field, detail, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, field, _detail_for(field, detail))


def not_supported(field: str, value: Any, supported: list[str] | tuple[str, ...]) -> FieldError:
    return FieldError(ErrorType.NOT_SUPPORTED, field, admission_messages.supported_values(supported), value)


def too_long(field: str, detail: str) -> FieldError:
    return FieldError(ErrorType.TOO_LONG, field, _detail_for(field, detail))


def internal(field: str, detail: str) -> FieldError:
    return FieldError(ErrorType.INTERNAL, field, _detail_for(field, detail))


def from_validation_error(error: ValidationError, document: dict[str, Any]) -> list[FieldError]:
    """pydantic's complaints about an object as field errors on the paths of the object's JSON."""
    found = []
    for problem in error.errors(include_url=False):
        location = [str(part) for part in problem["loc"]]
        path = ".".join(location) or admission_messages.WHOLE_OBJECT
        found.append(invalid(path, _value_at(document, problem["loc"]), problem["msg"]))
    return found


def _value_at(document: Any, location: tuple[int | str, ...]) -> Any:
    for part in location:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None
    return document
