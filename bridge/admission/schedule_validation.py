"""The VirtualMachineSnapshotSchedule validating webhook: api.schedule.spec_problems, each refusal naming its
field (a bad cron, an unknown time zone, retention that keeps nothing, a template a VirtualMachineSnapshot would
refuse, a spread window longer than the schedule's interval, a retention.keepFailed outside 0-32, a negative
vmFailuresBeforeAlert). Needs no read of the cluster."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from api.schedule import VirtualMachineSnapshotSchedule, spec_problems

from . import field_errors as fe
from .bypass import validation_bypassed
from .review import AdmissionRequest, Verdict


async def validate_schedule(request: AdmissionRequest) -> Verdict:
    if validation_bypassed(request):
        return Verdict()
    document = request.new_object()
    try:
        schedule = VirtualMachineSnapshotSchedule.model_validate(document)
    except ValidationError as error:
        return Verdict(errors=fe.from_validation_error(error, document))
    return Verdict(errors=[fe.invalid(field, _value_at(document, field), message)
                           for field, message in spec_problems(schedule.spec)])


def _value_at(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
