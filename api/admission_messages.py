"""Admission refusals of our own that api.messages does not hold: the revert-to-another-VM's-snapshot rule, the
messages for reads the webhook could not make, and the answers to reviews a webhook configuration should never
have sent.

VM Operator's refusal texts stay in api.messages; the texts computed from values (quiesce timeout, snapshot
count, name length) stay with the code that computes them (api.duration, api.limits).
"""

from __future__ import annotations

from .names import GROUP, SERVED_VERSIONS, SNAPSHOT_KIND, VM_KIND


def snapshot_of_another_vm(snapshot_name: str, owner_vm_name: str, vm_name: str) -> str:
    """spec.currentSnapshotName names a snapshot whose spec.vmName is another VM."""
    return (f'{SNAPSHOT_KIND} "{snapshot_name}" is a snapshot of {VM_KIND} "{owner_vm_name}", not of '
            f'"{vm_name}": a VM can only be reverted to its own snapshots')


def vm_unreadable(vm_name: str, error: str) -> str:
    return f'cannot read {VM_KIND} "{vm_name}" to check that it can be snapshotted: {error}'


def snapshots_uncountable(vm_name: str, error: str) -> str:
    return f'cannot count the snapshots of {VM_KIND} "{vm_name}": {error}'


def snapshot_unreadable(snapshot_name: str, error: str) -> str:
    return f'cannot read {SNAPSHOT_KIND} "{snapshot_name}" to check that it is a snapshot of this VM: {error}'


def kind_not_admitted(admitted_kind: str, kind: str) -> str:
    return f"this webhook admits {admitted_kind} objects, not {kind}: check the webhook configuration's rules"


def version_not_admitted(admitted_kind: str, group: str, version: str) -> str:
    return (f"this webhook admits {admitted_kind} objects of {GROUP} {', '.join(SERVED_VERSIONS)}, not of "
            f"{group}/{version}: check the webhook configuration's rules")


def apiserver_answered(status: int | None, reason: str | None) -> str:
    return f"the apiserver answered {status} {reason or ''}".rstrip()
