"""When the validating webhooks step aside, as VM Operator's generic validating builder does (reference §2.2):

* an object carrying the annotation vmoperator.vmware.com.protected/skip-validation (the CRD's CEL rules still
  apply: the annotation bypasses this webhook, not the schema);
* any update to an object that is being deleted: removing finalizers and the last status writes must always
  go through, or a deletion could hang on a rule that no longer matters;
* deletes (not registered in the configurations; answered anyway if a configuration sends them).
"""

from __future__ import annotations

from typing import Any

from api.names import SKIP_VALIDATION_ANNOTATION

from .review import AdmissionRequest


def validation_bypassed(request: AdmissionRequest) -> bool:
    if request.operation not in ("CREATE", "UPDATE"):
        return True
    metadata = _metadata(request.new_object())
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and SKIP_VALIDATION_ANNOTATION in annotations:
        return True
    return request.operation == "UPDATE" and bool(metadata.get("deletionTimestamp"))


def _metadata(document: dict[str, Any]) -> dict[str, Any]:
    metadata = document.get("metadata")
    return metadata if isinstance(metadata, dict) else {}
