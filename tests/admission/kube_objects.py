"""Helpers of the admission tests: manifests, writes through the kubernetes client and kubectl, and refusals
read back the way a client sees them (code, message, causes)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from api.names import API_VERSION, GROUP, SNAPSHOT_KIND, SNAPSHOT_PLURAL, VERSION, VM_KIND, VM_PLURAL
from bridge.admission import SNAPSHOT_VALIDATING, VM_VALIDATING

KUBECTL = Path(sys.executable).parent / "kubectl"


def snapshot_manifest(name: str, vm_name: str | None = "my-vm", *, labels: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body_spec = ({"vmName": vm_name} if vm_name is not None else {}) | spec
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": SNAPSHOT_KIND, "metadata": metadata, "spec": body_spec}


def vm_manifest(name: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": VM_KIND, "metadata": metadata, "spec": spec}


class Objects:
    """Create, read and change our two kinds in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create_snapshot(self, body: dict[str, Any], **options: Any) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, SNAPSHOT_PLURAL, body,
                                                           **options)

    def get_snapshot(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, SNAPSHOT_PLURAL, name)

    def patch_snapshot(self, name: str, patch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, SNAPSHOT_PLURAL, name,
                                                          patch)

    def replace_snapshot(self, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, change and write the whole object back (an UPDATE, as controllers do)."""
        current = self.get_snapshot(name)
        change(current)
        return self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, SNAPSHOT_PLURAL,
                                                            name, current)

    def create_vm(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, VM_PLURAL, body)

    def get_vm(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, VM_PLURAL, name)

    def patch_vm(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, VM_PLURAL, name, patch)

    def revert_vm(self, name: str, snapshot_name: str | None) -> dict[str, Any]:
        return self.patch_vm(name, {"spec": {"currentSnapshotName": snapshot_name}})


@dataclass
class Refusal:
    code: int
    reason: str
    message: str
    causes: list[dict[str, str]]

    @property
    def fields(self) -> set[str]:
        return {c.get("field", "") for c in self.causes}

    @property
    def by_snapshot_webhook(self) -> bool:
        return f'admission webhook "{SNAPSHOT_VALIDATING.name}" denied the request' in self.message

    @property
    def by_vm_webhook(self) -> bool:
        return f'admission webhook "{VM_VALIDATING.name}" denied the request' in self.message

    @property
    def by_schema(self) -> bool:
        """Refused by the CRD's schema or CEL rules (before any validating webhook is called)."""
        return "admission webhook" not in self.message


def refused(write: Callable[[], Any]) -> Refusal:
    """The refusal of a write that must be refused, as the kubernetes client receives it."""
    with pytest.raises(ApiException) as caught:
        write()
    status = json.loads(caught.value.body)
    # Printed so a run with -rP lists every message the apiserver returned.
    print(f"REFUSED {status.get('code')} {status.get('reason')}: {status.get('message')}")
    return Refusal(status.get("code", caught.value.status), status.get("reason", ""), status.get("message", ""),
                   (status.get("details") or {}).get("causes") or [])


def kubectl(kubeconfig: Path, namespace: str, *args: str, manifest: str | dict[str, Any] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    text = manifest if isinstance(manifest, str) or manifest is None else yaml.safe_dump(manifest)
    done = subprocess.run([str(KUBECTL), "--kubeconfig", str(kubeconfig), "--namespace", namespace, *args],
                          input=text, capture_output=True, text=True, timeout=60)
    print(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    return done


def kubectl_apply(kubeconfig: Path, namespace: str, manifest: str | dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, namespace, "apply", "-f", "-", manifest=manifest)
