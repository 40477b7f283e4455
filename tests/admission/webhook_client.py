"""Talking to the webhook server directly over HTTPS, as the apiserver does: AdmissionReview documents in,
AdmissionReview answers out. For what the apiserver never lets through to the webhook (its CEL rules refuse
first) and for the server's HTTP behaviour."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL


@dataclass
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def https_request(base_url: str, path: str, ca_file: Path, *, body: bytes | None = None,
                  content_type: str = "application/json") -> HttpAnswer:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(base_url + path, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return HttpAnswer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, error.read())


def admission_review(kind: str, operation: str, new: dict[str, Any], old: dict[str, Any] | None = None,
                     namespace: str = "default", *, group: str = GROUP, version: str = VERSION) -> dict[str, Any]:
    plural = SNAPSHOT_PLURAL if kind == "VirtualMachineSnapshot" else VM_PLURAL
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": plural},
        "name": new["metadata"].get("name", ""), "namespace": namespace, "operation": operation,
        "userInfo": {"username": "tester"}, "object": new, "oldObject": old, "dryRun": False,
    }}


@dataclass
class ReviewAnswer:
    uid: str
    allowed: bool
    status: dict[str, Any]
    warnings: list[str]
    patch: list[dict[str, Any]] | None

    @property
    def code(self) -> int | None:
        return self.status.get("code")

    @property
    def message(self) -> str:
        return self.status.get("message", "")

    @property
    def fields(self) -> set[str]:
        return {c["field"] for c in (self.status.get("details") or {}).get("causes") or []}


def review(base_url: str, path: str, ca_file: Path, document: dict[str, Any]) -> ReviewAnswer:
    answer = https_request(base_url, path, ca_file, body=json.dumps(document).encode())
    assert answer.status == 200, answer.body
    reply = answer.json()
    assert (reply["apiVersion"], reply["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response = reply["response"]
    patch = json.loads(base64.b64decode(response["patch"])) if "patch" in response else None
    if "patch" in response:
        assert response["patchType"] == "JSONPatch"
    print(f"ANSWER allowed={response['allowed']} {response.get('status', {}).get('message', '')}")
    return ReviewAnswer(response["uid"], response["allowed"], response.get("status") or {},
                        response.get("warnings") or [], patch)
