"""The texts a group snapshot writes and admission refuses with: the Ready condition's messages (each naming the
member and its cause), its Events, the spec's refusals."""

from __future__ import annotations

from .group_snapshot_names import (
    GROUP_SNAPSHOT_KIND,
    GROUP_SPEC_VM_NAMES_PATH,
    GROUP_SPEC_VM_SELECTOR_PATH,
    MAX_GROUP_MEMBERS,
)
from .names import SNAPSHOT_KIND, VM_KIND

MEMBERS_EXACTLY_ONE = (f"exactly one of {GROUP_SPEC_VM_NAMES_PATH}, {GROUP_SPEC_VM_SELECTOR_PATH} and "
                       f"spec.vmGroupName must be set")
NO_MEMBERS = f"{GROUP_SPEC_VM_NAMES_PATH} is empty: a group snapshot needs at least one {VM_KIND}"
MEMBERS_UNDONE = "every member taken was removed"


def no_selected_members(selector: str) -> str:
    return (f"{GROUP_SPEC_VM_SELECTOR_PATH} ({selector or 'everything'}) selects no {VM_KIND} in the namespace: "
            f"a group snapshot needs at least one")


def too_many_members(path: str, count: int) -> str:
    return (f"{path} gives {count} {VM_KIND}s; a group snapshot has at most {MAX_GROUP_MEMBERS} members "
            f"(a schedule snapshots more VMs, each on its own)")


def member_in_other_namespace(path: str, name: str) -> str:
    return (f"{path} {name!r} names a {VM_KIND} in another namespace: members are {VM_KIND}s in the group's own "
            f"namespace, by name")


def duplicate_member(path: str, name: str) -> str:
    return f"{path} names {VM_KIND} {name!r} more than once"


def deadline_shorter_than_quiesce(deadline: str, minutes: int) -> str:
    return (f"spec.deadline {deadline!r} is shorter than the members' quiesce timeout ({minutes} minutes): a guest "
            f"may take that long to freeze")


def member_problem(vm: str, problem: str) -> str:
    """A member's refusal at admission or in preflight: which VM, and why."""
    return f"member {VM_KIND} {vm!r}: {problem}"


def vm_missing(vm: str) -> str:
    return f"{VM_KIND} {vm!r} does not exist"


def vm_not_bound(vm: str) -> str:
    return f"{VM_KIND} {vm!r} is not bound to a vCenter VM yet (no status.uniqueID)"


def vm_at_limit(vm: str, count: int, most: int) -> str:
    return f"{VM_KIND} {vm!r} already has {count} snapshots, vSphere's most per VM ({most})"


def tools_not_running(vm: str, status: str) -> str:
    return (f"{VM_KIND} {vm!r} cannot be quiesced: VMware Tools is not running in its guest ({status}); start it or "
            f"leave spec.template.quiesce out")


def vm_not_in_vcenter(vm: str, moref: str) -> str:
    return f"{VM_KIND} {vm!r}: its vCenter VM {moref} does not exist"


def member_name_taken(name: str) -> str:
    return f"a {SNAPSHOT_KIND} {name!r} exists that this group did not make: left alone"


def preflight_failed(failures: list[tuple[str, str]]) -> str:
    """Ready=False PreflightFailed: every member that cannot be snapshotted, the first ones by name."""
    shown = "; ".join(member_problem(vm, why) for vm, why in sorted(failures)[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    return f"preflight refused, nothing was taken: {shown}{more}"


def member_failed(vm: str, snapshot: str, cause: str) -> str:
    return f"member {VM_KIND} {vm!r} (snapshot {snapshot!r}) failed: {cause}; {MEMBERS_UNDONE}"


def member_deleted(snapshot: str) -> str:
    return f"member {SNAPSHOT_KIND} {snapshot!r} was deleted before the group was Ready"


def skew_exceeded(skew: str, max_skew: str, first: str, last: str) -> str:
    return (f"the members' snapshots lie {skew} apart (first {first!r}, last {last!r}), more than spec.maxSkew "
            f"{max_skew}; {MEMBERS_UNDONE}")


def deadline_exceeded(limit: str, waiting_for: list[str]) -> str:
    waiting = f" (still waiting for {', '.join(sorted(waiting_for)[:5])})" if waiting_for else ""
    return f"not Ready within spec.deadline {limit}{waiting}; {MEMBERS_UNDONE}"


def compensating(why: str) -> str:
    return f"removing the members taken: {why}"


def in_progress(phase: str, ready: int, members: int) -> str:
    return f"{phase}: {ready} of {members} members Ready"


def group_ready(members: int, skew: str) -> str:
    return f"{members} members Ready, taken {skew} apart"


def member_of_group(group: str) -> str:
    """Admission's refusal of a member's deletion on its own."""
    return (f"this snapshot is a member of {GROUP_SNAPSHOT_KIND} {group!r}: delete the group (its members go with "
            f"it), not one member")


REVERT_NEEDS_READY = "spec.revert needs a Ready group: its members are what the VMs are reverted to"


def reverting(members: int) -> str:
    return f"reverting {members} members in name order"


def member_revert_failed(vm: str, snapshot: str, cause: str, not_reverted: list[str]) -> str:
    rest = f"; not reverted: {', '.join(not_reverted)}" if not_reverted else ""
    return f"member VirtualMachine {vm!r} failed to revert to {snapshot!r}: {cause}{rest}"


def group_reverted(order: list[str]) -> str:
    return f"{len(order)} members reverted, in this order: {', '.join(order)}"


def vm_group_not_found(name: str) -> str:
    return (f"spec.vmGroupName: VirtualMachineGroup {name!r} does not exist (or VM Operator's VirtualMachineGroup "
            f"kind is not installed)")


def vm_group_cycle(name: str) -> str:
    return f"spec.vmGroupName: VirtualMachineGroup {name!r} contains itself (through its nested groups)"


def vm_group_empty(name: str) -> str:
    return f"spec.vmGroupName: VirtualMachineGroup {name!r} has no VirtualMachine in its spec.bootOrder"
