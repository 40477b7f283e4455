"""Which recorded versions each compatibility branch serves.

A workflow replays its history on whichever worker picks it up next, so today's code must issue, for what an earlier
version recorded, the commands that version issued. It does so by branching on what an earlier step recorded (no
`workflow.patched`: its marker and search-attribute upsert cost history events, bench/README.md). Every such
branch keys on one predicate below (true only for what those versions recorded: today's activities always set
the field), or on one payload field's default; each names the history versions that take
it, as the directories of tests/workflows/histories/ (recorded by `bench.overhead --save-histories`) name them.
tests/workflows/test_replay_histories.py proves it both ways: the stored histories of exactly those versions take
the branch, every version named here has its directory, and every directory is named here.

Removal (docs/operations.md, "Upgrades"): a version's branches go, with its directory of histories, in one change,
once no workflow started on that version can still be running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from contract.payloads import RevertPlan, SnapshotPlan

# the newest stored histories: today's workflows issue their commands (no branch serves it alone)
CURRENT = "v4"

# predicate (or `Model.field` whose default stands in for what older payloads lack) -> the versions served
SERVES: dict[str, tuple[str, ...]] = {}

Predicate = TypeVar("Predicate", bound=Callable[..., bool])


def serves(*versions: str) -> Callable[[Predicate], Predicate]:
    def register(predicate: Predicate) -> Predicate:
        SERVES[predicate.__name__] = versions
        return predicate
    return register


def default_serves(field: str, *versions: str) -> None:
    """A field the named versions' payloads lack, whose default makes today's code do what they did."""
    SERVES[field] = versions


@serves("v1")
def unprepared(plan: SnapshotPlan) -> bool:
    """v1 (before prepare marked the creation in progress and computed the requested storage, 861b76b): the create
    workflow does both itself, beside storing the ExtraConfig."""
    return not plan.prepared


@serves("v1", "v2")
def releases_queue_at_handshake(plan: SnapshotPlan) -> bool:
    """v1–v2 (before a create answered by the CSI driver at once just ended, c5c8103): the create releases the
    VM's queue as its handshake begins, whether the driver is slow or not."""
    return not plan.release_queue_if_csi_slow


@serves("v1", "v2", "v3")
def without_deadline(plan: SnapshotPlan | RevertPlan) -> bool:
    """v1–v3 (before deadlines, 57ccc22): no deadline timer, no crash-consistent fallback, the vCenter task not
    cancelled with the workflow (TRY_CANCEL, and no `cancel_task_on_cancel`), and a create writes no Consistency
    condition."""
    return plan.deadline is None


# deletes of v1–v2 carry no `stop_create`: True, so the delete asks its snapshot's create to stop, as they did
default_serves("Operation.stop_create", "v1", "v2")
# deletes of v1–v3 carry no `cancel_create`: False, so the VM's queue waits for a running create, as it did
default_serves("Operation.cancel_create", "v1", "v2", "v3")
# task activities scheduled by v1 carry no `read_after`: False, so the activity returns no reads, as v1 expects
# (the workflows' branch for a result without them stays: a create's task may find no layoutEx entry yet, and a
# revert reverted by a lost attempt's task has no result)
default_serves("VSphereSnapshotRequest.read_after", "v1")
default_serves("SnapshotLocation.read_after", "v1")
# task activities scheduled by v1–v3 carry no `cancel_task_on_cancel`: a cancel leaves the vCenter task running
default_serves("VSphereSnapshotRequest.cancel_task_on_cancel", "v1", "v2", "v3")
default_serves("SnapshotLocation.cancel_task_on_cancel", "v1", "v2", "v3")


def versions_named() -> set[str]:
    return {CURRENT, *(version for versions in SERVES.values() for version in versions)}

