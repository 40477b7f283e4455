"""The texts a schedule's runs write: Events, the Suspended condition, the reasons a VM is skipped or failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .limits import MAX_SNAPSHOTS_PER_VM
from .names import SNAPSHOT_KIND, VM_KIND
from .schedule_names import SCHEDULE_UID_ANNOTATION

MAX_NAMED = 10  # VMs named in one message; the status lists them all


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def vm_not_found(vm: str) -> str:
    return f"{VM_KIND} {vm!r} does not exist"


def skipped_at_limit(vm: str, count: int) -> str:
    return (f"{VM_KIND} {vm!r} already has {count} snapshots, vSphere's most per VM ({MAX_SNAPSHOTS_PER_VM}): "
            f"skipped until some are deleted")


def snapshot_not_ours(name: str) -> str:
    return (f"a {SNAPSHOT_KIND} {name!r} exists that this schedule did not make (annotation "
            f"{SCHEDULE_UID_ANNOTATION}): left alone")


def not_ready_in_time(minutes: int) -> str:
    return f"not Ready within {minutes} minutes"


def run_message(result: str, created: int, failed: Mapping[str, str], skipped: int, pruned: Sequence[str]) -> str:
    text = f"run {result}: {created} created, {len(failed)} failed, {skipped} skipped, {len(pruned)} pruned"
    if failed:
        text += f"; failed: {_names(list(failed))} (first: {next(iter(sorted(failed.items())))[1]})"
    return text


def skipped_message(skipped: Mapping[str, str]) -> str:
    first = next(iter(sorted(skipped.items())))[1]
    return f"skipped {_names(list(skipped))}: {first}"


def auto_suspended(failures: int, failed: Mapping[str, str]) -> str:
    text = (f"suspended after {failures} failed runs in a row; edit the spec (e.g. set spec.suspend and clear "
            f"it) to resume")
    if failed:
        text += f"; last failures: {_names(list(failed))}"
    return text


def _failed_runs(count: int) -> str:
    return f"{count} failed run{'' if count == 1 else 's'} in a row"


def vm_failing(vm: str, failures: int, since: str, last: str) -> str:
    """The Warning Event of a VM whose scheduled snapshot keeps failing."""
    return (f"{VM_KIND} {vm!r} has no new scheduled snapshot: {_failed_runs(failures)} (since {since}); "
            f"last failure: {last}")


def vms_failing(failing: Sequence[tuple[str, int, str]]) -> str:
    """The VMsFailing condition's message: each VM (name, failed runs in a row, last failure), the first
    MAX_NAMED by name; status.failingVMs lists them all."""
    shown = sorted(failing)[:MAX_NAMED]
    text = "; ".join(f"{vm}: {_failed_runs(failures)}, last: {last}" for vm, failures, last in shown)
    if len(failing) > MAX_NAMED:
        text += f"; and {len(failing) - MAX_NAMED} more (status.failingVMs)"
    return text
