"""The annotations that lead from an object to the operation that last worked on it (its trace and its Temporal
workflow), and setting annotations on an object's metadata."""

from __future__ import annotations

from api.meta import ObjectMeta
from api.names import TRACE_ID_ANNOTATION, WORKFLOW_ID_ANNOTATION, WORKFLOW_URL_ANNOTATION
from runtime.telemetry import WorkflowLinks, current_trace_id


def operation_annotations(links: WorkflowLinks) -> dict[str, str | None]:
    """The annotations that lead from an object to the operation now working on it: its trace, and its workflow
    (ID, and UI link when configured; None removes an older operation's link)."""
    annotations: dict[str, str | None] = {}
    trace_id = current_trace_id()
    if trace_id:
        annotations[TRACE_ID_ANNOTATION] = trace_id
    workflow = links.current()
    if workflow is not None:
        annotations[WORKFLOW_ID_ANNOTATION], annotations[WORKFLOW_URL_ANNOTATION] = workflow
    return annotations


def annotate(meta: ObjectMeta, annotations: dict[str, str | None]) -> bool:
    """Set (or, for None, remove) these annotations on an object's metadata; True if anything changed."""
    current = dict(meta.annotations or {})
    wanted = {k: v for k, v in current.items() if k not in annotations or annotations[k] is not None}
    wanted.update({k: v for k, v in annotations.items() if v is not None})
    if wanted == current:
        return False
    meta.annotations = wanted or None
    return True
