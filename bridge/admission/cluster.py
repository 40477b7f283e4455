"""The webhook's reads of other objects: the snapshot's VM, the snapshot a revert names, the VM's other
snapshots. Through the synchronous kubernetes client in a worker thread, so a slow apiserver never stalls the
event loop that answers other reviews; each read has a timeout well inside the webhook's 10 seconds."""

from __future__ import annotations

import asyncio
from typing import Any

from api import admission_messages
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_GROUP,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_VERSION,
    VM_GROUP_PLURAL,
    VM_GROUP_VERSION,
)
from api.names import SNAPSHOT_PLURAL, VM_PLURAL
from runtime.kube import Kube, KubeError

READ_TIMEOUT_SECONDS = 4.0


class ClusterReader:
    def __init__(self, kube: Kube, read_timeout: float = READ_TIMEOUT_SECONDS):
        self._kube = kube
        self._timeout = read_timeout

    async def virtual_machine(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachine, or None if it does not exist."""
        return await asyncio.to_thread(self._kube.get_object, VM_PLURAL, namespace, name, timeout=self._timeout)

    async def snapshot(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachineSnapshot, or None if it does not exist."""
        return await asyncio.to_thread(self._kube.get_object, SNAPSHOT_PLURAL, namespace, name, timeout=self._timeout)

    async def snapshots(self, namespace: str) -> list[dict[str, Any]]:
        """Every VirtualMachineSnapshot of the namespace (paged, so a big namespace is read in pieces)."""
        return await asyncio.to_thread(self._kube.list_objects, SNAPSHOT_PLURAL, namespace, timeout=self._timeout)


    async def virtual_machines(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The VirtualMachines of the namespace whose labels match (a group's vmSelector)."""
        return await asyncio.to_thread(self._kube.list_objects, VM_PLURAL, namespace, timeout=self._timeout,
                                       **({"label_selector": label_selector} if label_selector else {}))

    def read_vm_group(self, namespace: str, name: str) -> dict[str, Any] | None:
        """VM Operator's VirtualMachineGroup, or None (no such object, or no such kind). Blocking: called from a
        worker thread, as it is followed through its nested groups."""
        return self._kube.get_object(VM_GROUP_PLURAL, namespace, name, timeout=self._timeout,
                                     version=VM_GROUP_VERSION)

    async def group_snapshot(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachineGroupSnapshot, or None if it does not exist."""
        return await asyncio.to_thread(self._kube.get_object, GROUP_SNAPSHOT_PLURAL, namespace, name,
                                       timeout=self._timeout, group=GROUP_SNAPSHOT_GROUP,
                                       version=GROUP_SNAPSHOT_VERSION)


def describe_error(error: Exception) -> str:
    """A short reason for a failed read, for a refusal message (never a whole HTTP response)."""
    answered = KubeError.answered(error)
    if answered is not None:
        return admission_messages.apiserver_answered(answered.status, answered.reason)
    return f"{type(error).__name__}: {error}"
