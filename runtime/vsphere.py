"""One vCenter session per worker process, shared by every activity thread and re-established when it
expires (never one login per call)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from typing import TypeVar

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from runtime.settings import Settings

T = TypeVar("T")


def fault_name(error: BaseException) -> str:
    """An error's type as vSphere names it (pyVmomi's fault classes are named like `vim.fault.InvalidState`)."""
    return type(error).__name__.split(".")[-1]


def fault_message(fault: vmodl.MethodFault) -> str:
    """vSphere's words for a fault: its message, then its localized messages (one per key); its type's name when it
    has none (e.g. `InvalidPowerState`)."""
    message: str | None = getattr(fault, "msg", None)  # every fault's; pyVmomi's stubs leave it out
    localized = {m.key: m.message for m in fault.faultMessage or [] if m.message}
    text = " ".join(p for p in [message or "", *localized.values()] if p).strip()
    return text or fault_name(fault)


def inventory_view(content: vim.ServiceInstanceContent, types: list[type]) -> vim.view.ContainerView:
    """A container view of every object of `types` under the root folder (the caller destroys it)."""
    if content.viewManager is None:  # only a host without vCenter's inventory service lacks it
        raise RuntimeError("vCenter's service content has no view manager")
    return content.viewManager.CreateContainerView(content.rootFolder, types, True)


class VSphereSession:
    def __init__(self, settings: Settings):
        if not settings.vsphere_url:
            raise ValueError("VSPHERE_URL is not set: the worker needs a vCenter to talk to")
        self._settings = settings
        self._lock = threading.Lock()
        self._si: vim.ServiceInstance | None = None

    def _connect(self) -> vim.ServiceInstance:
        s = self._settings
        context = ssl.create_default_context(cafile=str(s.vsphere_ca_file) if s.vsphere_ca_file else None)
        if s.vsphere_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        si: vim.ServiceInstance = SmartConnect(host=s.vsphere_host, port=s.vsphere_port, user=s.vsphere_username,
                                               pwd=s.vsphere_password.get_secret_value(), sslContext=context,
                                               connectionPoolTimeout=-1)
        return si

    def service_instance(self) -> vim.ServiceInstance:
        with self._lock:
            if self._si is None:
                self._si = self._connect()
            return self._si

    def run(self, fn: Callable[[vim.ServiceInstance], T]) -> T:
        """Run `fn` with the session; if vCenter says the session expired, log in again and retry once."""
        si = self.service_instance()
        try:
            return fn(si)
        except vim.fault.NotAuthenticated:
            with self._lock:
                if self._si is si:
                    self._si = self._connect()
            return fn(self.service_instance())

    def close(self) -> None:
        with self._lock:
            if self._si is not None:
                try:
                    Disconnect(self._si)
                finally:
                    self._si = None
