"""Reading vSphere managed objects through the PropertyCollector with explicit property paths: one round
trip per read, and no lazy attribute fetches (which also avoids reading properties that are unset)."""

from __future__ import annotations

import weakref
from typing import Any

from pyVmomi import vim, vmodl
from pyVmomi.VmomiSupport import ManagedObject

# the ServiceContent of each connection (its SOAP stub): pyvmomi's `si.content` is a Fetch round trip on every
# access, and the content (the managers' references) does not change during a session
_contents: weakref.WeakKeyDictionary[Any, vim.ServiceInstanceContent] = weakref.WeakKeyDictionary()


def service_content(si: vim.ServiceInstance) -> vim.ServiceInstanceContent:
    """`si.content`, read once per connection."""
    content = _contents.get(si._stub)
    if content is None:
        content = _contents[si._stub] = si.RetrieveContent()
    return content


def retrieve(si: vim.ServiceInstance, obj: ManagedObject, paths: list[str]) -> dict[str, Any]:
    """The named properties of one object; an unset property is absent from the dict.
    Raises vmodl.fault.ManagedObjectNotFound when the object does not exist, and vCenter's fault for any
    property it could not read (e.g. vim.fault.NotAuthenticated once the session has ended)."""
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(obj), pathSet=paths, all=False)])
    result = service_content(si).propertyCollector.RetrieveContents([spec])
    if not result:
        raise vmodl.fault.ManagedObjectNotFound(obj=obj, msg=f"{obj._moId} not found")
    content = result[0]
    for missing in content.missingSet or []:
        # an unset property is simply absent; a missing one carries the reason (object gone, session ended,
        # no permission), which the caller must see
        raise missing.fault
    return {p.name: p.val for p in content.propSet or []}


def virtual_machine(si: vim.ServiceInstance, moref: str) -> vim.VirtualMachine:
    """A reference to the VM whose managed object ID is `moref` (VirtualMachine.status.uniqueID)."""
    return vim.VirtualMachine(moref, si._stub)


def task(si: vim.ServiceInstance, moref: str) -> vim.Task:
    return vim.Task(moref, si._stub)


def snapshot(si: vim.ServiceInstance, moref: str) -> vim.vm.Snapshot:
    return vim.vm.Snapshot(moref, si._stub)
