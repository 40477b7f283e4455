"""How long an operation may take, and what a create does when the guest will not freeze: the deployment's
defaults (runtime settings) refined per object by annotations (names.FAILURE_DEADLINE_ANNOTATION,
names.QUIESCE_FALLBACK_ANNOTATION). Pure: the webhook refuses bad annotations with `*_problem`, the prepare
activities turn them into a plan with `failure_deadline` and `quiesce_fallback`.

A deadline is measured from the object's creation for a create (time spent queued behind the VM's other
operations counts: it is what the user waits for) and from the revert's start for a revert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .duration import parse_duration_seconds
from .names import FAILURE_DEADLINE_ANNOTATION, QUIESCE_FALLBACK_ANNOTATION, QuiesceFallback

FAILURE_DEADLINE_PATH = f"metadata.annotations[{FAILURE_DEADLINE_ANNOTATION}]"
QUIESCE_FALLBACK_PATH = f"metadata.annotations[{QUIESCE_FALLBACK_ANNOTATION}]"

# the deployment's default deadline when its settings name none
DEFAULT_FAILURE_DEADLINE = timedelta(hours=1)
# a deadline no annotation set is never shorter than the object's quiesce timeout plus this, which is what the
# snapshot task itself may take once the guest is frozen
TASK_AFTER_QUIESCE = timedelta(minutes=20)
_DEADLINE_NEEDED = "a failure deadline is how long the operation may take, such as 30m or 2h"


def parse_failure_deadline(text: str, *, field: str = FAILURE_DEADLINE_PATH) -> timedelta:
    """The deadline `text` gives; ValueError, naming `field`, if it is not a positive duration."""
    return timedelta(seconds=float(parse_duration_seconds(text, field=field, needed=_DEADLINE_NEEDED)))


def failure_deadline_problem(text: str | None, quiesce_minutes: int | None) -> str | None:
    """Admission's check of the annotation: None if absent or fine, else the refusal naming it."""
    if text is None:
        return None
    try:
        deadline = parse_failure_deadline(text)
    except ValueError as error:
        return str(error)
    if quiesce_minutes is not None and deadline < timedelta(minutes=quiesce_minutes):
        return (f"{FAILURE_DEADLINE_PATH} {text!r} is shorter than the quiesce timeout ({quiesce_minutes} minutes): "
                f"the guest may take that long to freeze before vSphere takes the snapshot")
    return None


@dataclass(frozen=True)
class OperationDefaults:
    """The deployment's choices (settings VMSNAP_FAILURE_DEADLINE, VMSNAP_QUIESCE_FALLBACK)."""

    failure_deadline: timedelta = DEFAULT_FAILURE_DEADLINE
    quiesce_fallback: QuiesceFallback = QuiesceFallback.FAIL


def failure_deadline(annotation: str | None, defaults: OperationDefaults,
                     quiesce_minutes: int | None) -> tuple[timedelta, str]:
    """The deadline of one operation and where it comes from, in words for messages: the annotation's when set
    (ValueError if it does not parse: only an object that bypassed admission has such a value), else the
    deployment's default, lengthened to the quiesce timeout plus TASK_AFTER_QUIESCE when that is longer."""
    if annotation is not None:
        return parse_failure_deadline(annotation), f"{FAILURE_DEADLINE_ANNOTATION}: {annotation}"
    default = defaults.failure_deadline
    if quiesce_minutes is not None and timedelta(minutes=quiesce_minutes) + TASK_AFTER_QUIESCE > default:
        return (timedelta(minutes=quiesce_minutes) + TASK_AFTER_QUIESCE,
                f"the quiesce timeout of {quiesce_minutes} minutes plus {_minutes(TASK_AFTER_QUIESCE)} for the task")
    return default, f"the deployment's failure deadline of {_minutes(default)}"


def _minutes(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def quiesce_fallback_problem(text: str | None) -> str | None:
    if text is None or text in {f.value for f in QuiesceFallback}:
        return None
    accepted = " or ".join(repr(f.value) for f in QuiesceFallback)
    return f"{QUIESCE_FALLBACK_PATH} {text!r} is not one of {accepted}"


def quiesce_fallback(annotation: str | None, default: QuiesceFallback) -> QuiesceFallback:
    """The object's choice when it makes one (ValueError for a value admission would refuse), else the default."""
    if annotation is None:
        return default
    problem = quiesce_fallback_problem(annotation)
    if problem is not None:
        raise ValueError(problem)
    return QuiesceFallback(annotation)
