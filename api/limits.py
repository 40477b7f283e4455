"""vSphere's numeric limits that the API enforces, and the guard on the number of snapshots per VM."""

from __future__ import annotations

from .names import METADATA_NAME_PATH, SPEC_VM_NAME_PATH

# vSphere's VirtualMachineGuestQuiesceSpec.timeout is in whole minutes and "can not be less than 5 minutes or more
# than 240 minutes".
MIN_QUIESCE_TIMEOUT_MINUTES = 5
MAX_QUIESCE_TIMEOUT_MINUTES = 240
# `quiesce: {}` (no timeout) means this. Ten minutes is the value of the guide's own example (`timeout: 10min`)
# and of VM Operator's tests; VM Operator itself crashes on a nil timeout (reference §6), we never do.
DEFAULT_QUIESCE_TIMEOUT_MINUTES = 10

# The snapshot's metadata.name is its vSphere snapshot name. vSphere names its entities with at most 80
# characters ("Up to 80 characters may be used (fewer if the characters %, \ or / are used)": those three are
# stored escaped). Kubernetes object names never contain them, so the limit applies exactly. Kubernetes itself
# would allow 253.
MAX_SNAPSHOT_NAME_LENGTH = 80

# VMware supports at most 32 snapshots in a chain (KB 1025279) and recommends far fewer; the guide says "prefer
# limiting the number of snapshots to less than 32". We count every snapshot of the VM, not only one chain: a
# chain is never longer than the count, so the refusal is conservative and needs no knowledge of the tree.
RECOMMENDED_MAX_SNAPSHOTS_PER_VM = 31  # "less than 32"
MAX_SNAPSHOTS_PER_VM = 32


def snapshot_count_warning(vm_name: str, count_with_new: int) -> str | None:
    """A warning for admission when the new snapshot makes the VM reach 32 snapshots (allowed, not advised)."""
    if RECOMMENDED_MAX_SNAPSHOTS_PER_VM < count_with_new <= MAX_SNAPSHOTS_PER_VM:
        return (f"{SPEC_VM_NAME_PATH}: VM {vm_name!r} will have {count_with_new} snapshots; prefer fewer than "
                f"{RECOMMENDED_MAX_SNAPSHOTS_PER_VM + 1}: every snapshot slows the VM's disk I/O")
    return None


def snapshot_count_refusal(vm_name: str, count_with_new: int) -> str | None:
    """The refusal for admission when the new snapshot would exceed vSphere's 32-snapshot limit."""
    if count_with_new > MAX_SNAPSHOTS_PER_VM:
        return (f"{SPEC_VM_NAME_PATH}: VM {vm_name!r} already has {count_with_new - 1} snapshots, the most allowed "
                f"per VM (vSphere supports chains of at most {MAX_SNAPSHOTS_PER_VM} snapshots): delete one before "
                f"creating another")
    return None


# spec.vmName names a VirtualMachine, so it must be what Kubernetes accepts as that object's name: a DNS-1123
# subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit). It is also
# copied into the label snapshot.vmoperator.vmware.com/vm-name, and a label value has at most 63 characters, so a
# longer VM name (Kubernetes would allow 253) cannot have snapshots. Both are checked on spec.vmName itself, so a
# refusal names the field the user wrote, never the label. `[.]` rather than `\.`: the pattern is also written
# into a CEL string in the CRD, where a backslash would need escaping again.
VM_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_VM_NAME_LENGTH = 63  # the longest label value

# Also the message of the CRD's CEL rule on metadata.name (a test keeps the two equal).
SNAPSHOT_NAME_TOO_LONG = (
    f"{METADATA_NAME_PATH} must be at most {MAX_SNAPSHOT_NAME_LENGTH} characters: it becomes the vSphere "
    f"snapshot name, and vSphere allows at most {MAX_SNAPSHOT_NAME_LENGTH}")


def snapshot_name_length_problem(name: str) -> str | None:
    if len(name) > MAX_SNAPSHOT_NAME_LENGTH:
        return f"{SNAPSHOT_NAME_TOO_LONG} ({len(name)} given)"
    return None
