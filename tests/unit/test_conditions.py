"""api.conditions: True conditions as the guide shows them, transition-time semantics, purity, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import yaml

from api.conditions import (
    Condition,
    get_condition,
    get_reason,
    is_false,
    is_true,
    remove_condition,
    set_condition,
    set_false,
    set_true,
    set_unknown,
)
from api.names import ConditionStatus, SnapshotConditionType, SnapshotReason, VMConditionType
from tests.guide_examples import GUIDE_SNAPSHOT_STATUS

CREATED = SnapshotConditionType.CREATED
CSI_SYNCED = SnapshotConditionType.CSI_SYNCED
READY = SnapshotConditionType.READY

T0 = datetime(2025, 10, 27, 14, 55, 26, tzinfo=UTC)
T1 = T0 + timedelta(minutes=3)
T2 = T0 + timedelta(minutes=7)



def _dump(conditions: list[Condition]) -> list[dict]:
    return [c.model_dump(by_alias=True, exclude_none=True) for c in conditions]


def test_true_conditions_look_like_the_guides() -> None:
    conditions = set_true(None, READY, T0)
    conditions = set_true(conditions, CREATED, T0)
    conditions = set_true(conditions, CSI_SYNCED, T0)
    assert _dump(conditions) == yaml.safe_load(GUIDE_SNAPSHOT_STATUS)["status"]["conditions"]


def test_guide_conditions_round_trip() -> None:
    raw = yaml.safe_load(GUIDE_SNAPSHOT_STATUS)["status"]["conditions"]
    conditions = [Condition.model_validate(c) for c in raw]
    assert all(c.status == ConditionStatus.TRUE and c.reason == "True" and c.message == "" for c in conditions)
    assert conditions[0].last_transition_time == T0
    assert _dump(conditions) == raw


def test_set_false_carries_reason_and_message() -> None:
    conditions = set_false([], CREATED, SnapshotReason.CREATION_IN_PROGRESS, "snapshot in progress", T0)
    assert _dump(conditions) == [{
        "type": "VirtualMachineSnapshotCreated", "status": "False",
        "reason": "VirtualMachineSnapshotCreationInProgress", "message": "snapshot in progress",
        "lastTransitionTime": "2025-10-27T14:55:26Z",
    }]
    assert is_false(conditions, CREATED) and not is_true(conditions, CREATED)
    assert get_reason(conditions, CREATED) == SnapshotReason.CREATION_IN_PROGRESS


def test_transition_time_moves_only_when_status_changes() -> None:
    waiting = set_false(None, READY, SnapshotReason.WAITING_FOR_CREATION, "waiting", T0)
    # same status, new reason and message: the time stays
    still_waiting = set_false(waiting, READY, SnapshotReason.WAITING_FOR_CSI_SYNC, "csi", T1)
    assert get_condition(still_waiting, READY).last_transition_time == T0
    assert get_condition(still_waiting, READY).reason == SnapshotReason.WAITING_FOR_CSI_SYNC
    assert get_condition(still_waiting, READY).message == "csi"
    # status changes: the time moves
    ready = set_true(still_waiting, READY, T2)
    assert get_condition(ready, READY).last_transition_time == T2
    # True again: unchanged, so a repeated status patch is a no-op
    assert set_true(ready, READY, T2 + timedelta(hours=1)) == ready


def test_unknown_is_a_status_change_too() -> None:
    conditions = set_true(None, CSI_SYNCED, T0)
    conditions = set_unknown(conditions, CSI_SYNCED, "Unknown", "lost track", T1)
    assert get_condition(conditions, CSI_SYNCED).status == ConditionStatus.UNKNOWN
    assert get_condition(conditions, CSI_SYNCED).last_transition_time == T1


def test_observed_generation_is_kept_unless_given() -> None:
    conditions = set_false(None, CREATED, SnapshotReason.CREATION_IN_PROGRESS, "m", T0, observed_generation=1)
    conditions = set_true(conditions, CREATED, T1)
    assert get_condition(conditions, CREATED).observed_generation == 1
    conditions = set_true(conditions, CREATED, T2, observed_generation=2)
    assert get_condition(conditions, CREATED).observed_generation == 2
    assert get_condition(conditions, CREATED).last_transition_time == T1
    assert _dump(conditions)[0]["observedGeneration"] == 2


def test_inputs_are_not_mutated() -> None:
    original = set_false(None, READY, SnapshotReason.WAITING_FOR_CREATION, "waiting", T0)
    snapshot_of_original = _dump(original)
    set_true(original, READY, T1)
    set_true(original, CREATED, T1)
    remove_condition(original, READY)
    assert _dump(original) == snapshot_of_original


def test_list_is_sorted_by_type_whatever_the_order_of_writes() -> None:
    one = set_true(set_true(set_true(None, READY, T0), CSI_SYNCED, T0), CREATED, T0)
    other = set_true(set_true(set_true(None, CREATED, T0), READY, T0), CSI_SYNCED, T0)
    assert [c.type for c in one] == [CSI_SYNCED, CREATED, READY]
    assert one == other


def test_foreign_conditions_are_kept() -> None:
    foreign = Condition.model_validate({"type": "VirtualMachineCreated", "status": "True", "reason": "True",
                                        "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z",
                                        "observedGeneration": 4})
    conditions = set_false([foreign], VMConditionType.SNAPSHOT_REVERT_SUCCEEDED, "VirtualMachineSnapshotRevertFailed",
                           "boom", T0)
    assert get_condition(conditions, "VirtualMachineCreated") == foreign
    assert len(conditions) == 2


def test_remove_condition() -> None:
    conditions = set_false(set_true(None, "VirtualMachineCreated", T0), VMConditionType.SNAPSHOT_REVERT_SUCCEEDED,
                           "VirtualMachineSnapshotRevertFailed", "boom", T0)
    remaining = remove_condition(conditions, VMConditionType.SNAPSHOT_REVERT_SUCCEEDED)
    assert [c.type for c in remaining] == ["VirtualMachineCreated"]
    assert remove_condition(None, READY) == []
    assert get_condition(None, READY) is None
    assert not is_true(None, READY) and not is_false(None, READY) and get_reason(None, READY) is None


def test_times_are_utc_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    conditions = set_true(None, READY, datetime(2025, 10, 27, 16, 55, 26, 987654, tzinfo=plus_two))
    assert _dump(conditions)[0]["lastTransitionTime"] == "2025-10-27T14:55:26Z"
    naive = set_true(None, READY, datetime(2025, 10, 27, 14, 55, 26, 5))  # naive means UTC
    assert _dump(naive)[0]["lastTransitionTime"] == "2025-10-27T14:55:26Z"


def test_set_condition_accepts_status_text() -> None:
    conditions = set_condition(None, READY, "False", SnapshotReason.WAITING_FOR_CSI_SYNC, "m", T0)
    assert is_false(conditions, READY)
    # values are plain strings in dumps, so YAML and JSON writers need no enum support
    assert type(_dump(conditions)[0]["status"]) is str
    yaml.safe_dump(_dump(conditions))
