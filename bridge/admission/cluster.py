"""The webhook's reads of other objects: the snapshot's VM, the snapshot a revert names, the VM's other
snapshots. Through the synchronous kubernetes client in a worker thread, so a slow apiserver never stalls the
event loop that answers other reviews; each read has a timeout well inside the webhook's 10 seconds."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL

READ_TIMEOUT_SECONDS = 4.0
LIST_PAGE_SIZE = 500


class ClusterReader:
    def __init__(self, api: client.ApiClient, read_timeout: float = READ_TIMEOUT_SECONDS):
        self._custom = client.CustomObjectsApi(api)
        self._timeout = read_timeout

    async def virtual_machine(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachine, or None if it does not exist."""
        return await asyncio.to_thread(self._get, VM_PLURAL, namespace, name)

    async def snapshot(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachineSnapshot, or None if it does not exist."""
        return await asyncio.to_thread(self._get, SNAPSHOT_PLURAL, namespace, name)

    async def snapshots(self, namespace: str) -> list[dict[str, Any]]:
        """Every VirtualMachineSnapshot of the namespace (paged, so a big namespace is read in pieces)."""
        return await asyncio.to_thread(self._list, SNAPSHOT_PLURAL, namespace)

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name,
                                                             _request_timeout=self._timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        continue_token: str | None = None
        while True:
            page = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, limit=LIST_PAGE_SIZE, _continue=continue_token,
                _request_timeout=self._timeout)
            items.extend(page.get("items") or [])
            continue_token = (page.get("metadata") or {}).get("continue")
            if not continue_token:
                return items


def describe_error(error: Exception) -> str:
    """A short reason for a failed read, for a refusal message (never a whole HTTP response)."""
    if isinstance(error, ApiException):
        return f"the apiserver answered {error.status} {error.reason}".rstrip()
    return f"{type(error).__name__}: {error}"
