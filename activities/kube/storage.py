"""`status.storage.requested` of a snapshot: the most it can take per storage class (reference §3.6)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from api import VirtualMachine, messages
from api.names import VolumeType
from api.quantity import quantity_bytes


def requested_storage(vm: VirtualMachine, memory: bool,
                      read_pvc: Callable[[str], dict[str, Any]]) -> dict[str, int]:
    """Bytes per storage class: the VM's memory (if the snapshot includes it) and each disk's full size on the
    class it lives on (a PVC's, read as JSON by `read_pvc`). ValueError naming what is missing when a size or class
    cannot be found."""
    totals: dict[str, int] = defaultdict(int)
    vm_class = vm.spec.storage_class
    if memory:
        memory_total = vm.status.hardware.memory.total if vm.status.hardware and vm.status.hardware.memory else None
        if not memory_total or not vm_class:
            raise ValueError(messages.vm_has_no_memory_or_storage_class(str(vm.name)))
        totals[vm_class] += quantity_bytes(memory_total)
    for volume in vm.status.volumes or []:
        if volume.type == VolumeType.CLASSIC:
            if not vm_class or volume.requested is None:
                raise ValueError(messages.classic_disk_without_size(volume.name))
            totals[vm_class] += quantity_bytes(volume.requested)
        elif volume.type == VolumeType.MANAGED:
            spec = vm.volume_spec(volume.name)
            claim = spec.persistent_volume_claim if spec else None
            if claim is None:
                continue
            if claim.instance_volume_claim is not None:
                ivc = claim.instance_volume_claim
                totals[ivc.storage_class or vm_class or ""] += quantity_bytes(ivc.size or 0)
                continue
            pvc_spec = read_pvc(str(claim.claim_name)).get("spec") or {}
            storage_class = pvc_spec.get("storageClassName")
            request = ((pvc_spec.get("resources") or {}).get("requests") or {}).get("storage")
            if not storage_class or not request:
                raise ValueError(messages.claim_without_class_or_request(str(claim.claim_name)))
            totals[storage_class] += quantity_bytes(request)
        else:
            raise ValueError(messages.unsupported_volume_type(volume.name, str(volume.type)))
    return dict(totals)
