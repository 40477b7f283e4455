"""The VM object as stored in vSphere ExtraConfig (`vmservice.virtualmachine.resource.yaml`): YAML, gzip,
base64. The stored copy drops what changes without the VM changing, so a revert restores only intent."""

from __future__ import annotations

import base64
import binascii
import gzip
from typing import Any

import yaml

from api import messages
from api.names import LAST_APPLIED_CONFIGURATION_ANNOTATION, TOPOLOGY_ZONE_LABEL

_DROPPED_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
                     "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers")


def encode_vm_yaml(vm: dict[str, Any]) -> str:
    meta = {k: v for k, v in (vm.get("metadata") or {}).items() if k not in _DROPPED_METADATA}
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != TOPOLOGY_ZONE_LABEL}
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                           if k != LAST_APPLIED_CONFIGURATION_ANNOTATION}
    stored = {"apiVersion": vm.get("apiVersion"), "kind": vm.get("kind"), "metadata": meta,
              "spec": vm.get("spec") or {}}
    text = yaml.safe_dump(stored, sort_keys=True).encode()
    return base64.b64encode(gzip.compress(text, mtime=0)).decode()


def decode_vm_yaml(stored: str) -> dict[str, Any]:
    """Tolerant as VM Operator's reader: base64 (possibly repeated), gzip if it is gzip, else plain YAML."""
    data = stored.encode()
    while True:
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            break
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    obj = yaml.safe_load(data)
    if not isinstance(obj, dict) or "spec" not in obj:
        raise ValueError(messages.VM_YAML_HAS_NO_SPEC)
    return obj
