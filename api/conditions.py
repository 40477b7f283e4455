"""Conditions (metav1.Condition) and pure functions over a conditions list.

Rules, the same for every writer so status patches converge:
  * a True condition has reason "True" and message "" (the guide's status example, VM Operator's convention);
  * lastTransitionTime changes only when status changes; a new reason or message alone keeps the old time;
  * observedGeneration is kept unless the caller gives a new one;
  * the list is kept sorted by type, as in the guide, so two writers produce the same list.
Functions never mutate their input and never read a clock: the caller passes `now` (in a workflow,
`workflow.now()`), so they are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from .meta import ApiModel, KubeTime, kube_time
from .names import TRUE_REASON, ConditionStatus


class Condition(ApiModel):
    type: str
    status: ConditionStatus
    reason: str
    # Always written, even empty: metav1.Condition has no omitempty on message.
    message: str = ""
    last_transition_time: KubeTime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


def get_condition(conditions: Sequence[Condition] | None, condition_type: str) -> Condition | None:
    return next((c for c in conditions or () if c.type == condition_type), None)


def is_true(conditions: Sequence[Condition] | None, condition_type: str) -> bool:
    condition = get_condition(conditions, condition_type)
    return condition is not None and condition.status == ConditionStatus.TRUE


def is_false(conditions: Sequence[Condition] | None, condition_type: str) -> bool:
    condition = get_condition(conditions, condition_type)
    return condition is not None and condition.status == ConditionStatus.FALSE


def get_reason(conditions: Sequence[Condition] | None, condition_type: str) -> str | None:
    condition = get_condition(conditions, condition_type)
    return condition.reason if condition is not None else None


def set_condition(conditions: Sequence[Condition] | None, condition_type: str, status: ConditionStatus | str,
                  reason: str, message: str, now: datetime,
                  observed_generation: int | None = None) -> list[Condition]:
    """A new list with `condition_type` set as given; the transition time moves only if the status changes."""
    previous = get_condition(conditions, condition_type)
    status = ConditionStatus(status)
    if previous is not None and previous.status == status:
        transition_time = previous.last_transition_time
    else:
        transition_time = kube_time(now)
    if observed_generation is None and previous is not None:
        observed_generation = previous.observed_generation
    updated = Condition(type=condition_type, status=status, reason=reason, message=message,
                        last_transition_time=transition_time, observed_generation=observed_generation)
    others = [c for c in conditions or () if c.type != condition_type]
    return sorted([*others, updated], key=lambda c: c.type)


def set_true(conditions: Sequence[Condition] | None, condition_type: str, now: datetime,
             observed_generation: int | None = None) -> list[Condition]:
    return set_condition(conditions, condition_type, ConditionStatus.TRUE, TRUE_REASON, "", now,
                         observed_generation)


def set_false(conditions: Sequence[Condition] | None, condition_type: str, reason: str, message: str,
              now: datetime, observed_generation: int | None = None) -> list[Condition]:
    return set_condition(conditions, condition_type, ConditionStatus.FALSE, reason, message, now,
                         observed_generation)


def set_unknown(conditions: Sequence[Condition] | None, condition_type: str, reason: str, message: str,
                now: datetime, observed_generation: int | None = None) -> list[Condition]:
    return set_condition(conditions, condition_type, ConditionStatus.UNKNOWN, reason, message, now,
                         observed_generation)


def remove_condition(conditions: Sequence[Condition] | None, condition_type: str) -> list[Condition]:
    """A new list without `condition_type` (the VM's revert condition after a successful or aborted revert)."""
    return [c for c in conditions or () if c.type != condition_type]
