"""How a snapshot's status conditions are derived and announced (activities/kube_snapshot.py, pure):
Ready follows Created and CSISynced as VM Operator's reconcileSnapshotReadyCondition, and each condition that
changes gives one Event (a warning for a failure), Ready's waiting reasons none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.kube_snapshot import derive_ready, transition_events
from api import messages
from api.conditions import Condition, get_condition, set_false, set_true
from api.meta import kube_time
from api.names import (
    SNAPSHOT_DELETED_CONDITION,
    ConditionStatus,
    EventReason,
    SnapshotConditionType,
    SnapshotReason,
)

CREATED, CSI_SYNCED, READY = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED, \
    SnapshotConditionType.READY
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def false(conditions: list[Condition], ctype: str, reason: str, message: str = "why") -> list[Condition]:
    return set_false(conditions, ctype, reason, message, T0)


def true(conditions: list[Condition], ctype: str) -> list[Condition]:
    return set_true(conditions, ctype, T0)


def ready(conditions: list[Condition]) -> tuple[str, str, str]:
    c = get_condition(derive_ready(conditions, T1, 4), READY)
    return c.status, c.reason, c.message


# --- derive_ready ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("conditions, expected", [
    ([], (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CREATION, messages.READY_WAITING_FOR_CREATION)),
    (false([], CREATED, SnapshotReason.CREATION_IN_PROGRESS),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CREATION, messages.READY_WAITING_FOR_CREATION)),
    (false([], CREATED, SnapshotReason.CREATION_FAILED),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CREATION, messages.READY_WAITING_FOR_CREATION)),
    (false([], CREATED, SnapshotReason.WAITING_FOR_DISK_REGISTRATION),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_DISK_REGISTRATION,
      messages.READY_WAITING_FOR_DISK_REGISTRATION)),
    # CSISynced alone does not make a snapshot ready
    (true([], CSI_SYNCED),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CREATION, messages.READY_WAITING_FOR_CREATION)),
    (true([], CREATED),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CSI_SYNC, messages.READY_WAITING_FOR_CSI_SYNC)),
    (false(true([], CREATED), CSI_SYNCED, SnapshotReason.CSI_SYNC_IN_PROGRESS),
     (ConditionStatus.FALSE, SnapshotReason.WAITING_FOR_CSI_SYNC, messages.READY_WAITING_FOR_CSI_SYNC)),
    (true(true([], CREATED), CSI_SYNCED), (ConditionStatus.TRUE, "True", "")),
], ids=["nothing", "creating", "creation-failed", "disk-registration", "synced-not-created", "created",
        "csi-syncing", "created-and-synced"])
def test_ready_follows_created_and_csi_synced(conditions, expected):
    assert ready(conditions) == expected


def test_ready_is_one_more_condition_and_leaves_the_others_alone():
    before = false(true([], CREATED), CSI_SYNCED, SnapshotReason.CSI_SYNC_IN_PROGRESS)
    snapshot = [c.model_dump() for c in before]

    after = derive_ready(before, T1, 4)

    assert [c.model_dump() for c in before] == snapshot, "the input is not mutated"
    assert [c.type for c in after] == sorted([CREATED, CSI_SYNCED, READY])
    assert [c for c in after if c.type != READY] == before
    assert get_condition(after, READY).observed_generation == 4
    assert get_condition(after, READY).last_transition_time == kube_time(T1)


def test_ready_moves_its_transition_time_only_when_it_flips():
    waiting = derive_ready(true([], CREATED), T0, 1)
    still_waiting = derive_ready(waiting, T1, 1)
    assert get_condition(still_waiting, READY).last_transition_time == get_condition(waiting, READY) \
        .last_transition_time
    ready_now = derive_ready(true(still_waiting, CSI_SYNCED), T1, 1)
    assert get_condition(ready_now, READY).status == ConditionStatus.TRUE
    assert get_condition(ready_now, READY).last_transition_time != get_condition(waiting, READY).last_transition_time
    assert derive_ready(ready_now, T1 + timedelta(hours=1), 1) == ready_now, "deriving again changes nothing"


# --- transition_events -------------------------------------------------------------------------------------------

def test_nothing_changed_is_no_event():
    conditions = derive_ready(false(true([], CREATED), CSI_SYNCED, SnapshotReason.CSI_SYNC_IN_PROGRESS), T0, 1)
    assert transition_events(conditions, conditions) == []


@pytest.mark.parametrize("ctype, event", [
    (CREATED, EventReason.SNAPSHOT_CREATED),
    (CSI_SYNCED, EventReason.CSI_VOLUMES_SYNCED),
    (READY, EventReason.SNAPSHOT_READY),
])
def test_each_condition_turning_true_has_its_event(ctype, event):
    assert transition_events([], true([], ctype)) == [(event, f"{ctype} is True", False)]
    assert transition_events(false([], ctype, "Before"), true([], ctype)) == [(event, f"{ctype} is True", False)]


def test_a_whole_create_announces_each_step_once():
    creating = derive_ready(false([], CREATED, SnapshotReason.CREATION_IN_PROGRESS, messages.CREATION_IN_PROGRESS),
                            T0, 1)
    created = derive_ready(false(true(creating, CREATED), CSI_SYNCED, SnapshotReason.CSI_SYNC_IN_PROGRESS,
                                 messages.CSI_SYNC_REQUESTED), T0, 1)
    ready_now = derive_ready(true(created, CSI_SYNCED), T1, 1)

    assert transition_events([], creating) == [
        (SnapshotReason.CREATION_IN_PROGRESS, messages.CREATION_IN_PROGRESS, False)]
    # in the order of the conditions list (by type), Ready's new waiting reason unannounced
    assert transition_events(creating, created) == [
        (SnapshotReason.CSI_SYNC_IN_PROGRESS, messages.CSI_SYNC_REQUESTED, False),
        (EventReason.SNAPSHOT_CREATED, f"{CREATED} is True", False)]
    assert transition_events(created, ready_now) == [
        (EventReason.CSI_VOLUMES_SYNCED, f"{CSI_SYNCED} is True", False),
        (EventReason.SNAPSHOT_READY, f"{READY} is True", False)]


@pytest.mark.parametrize("ctype, reason, warning", [
    (CREATED, SnapshotReason.CREATION_FAILED, True),
    (SNAPSHOT_DELETED_CONDITION, SnapshotReason.DELETION_FAILED, True),
    (CREATED, SnapshotReason.CREATION_IN_PROGRESS, False),
    (CSI_SYNCED, SnapshotReason.CSI_SYNC_IN_PROGRESS, False),
])
def test_a_condition_turning_false_is_an_event_with_its_reason_and_failures_are_warnings(ctype, reason, warning):
    assert transition_events([], false([], ctype, reason, "vSphere says no")) == [(reason, "vSphere says no", warning)]


def test_a_new_reason_is_an_event_a_new_message_alone_is_not():
    creating = false([], CREATED, SnapshotReason.CREATION_IN_PROGRESS, messages.CREATION_IN_PROGRESS)
    failed = false(creating, CREATED, SnapshotReason.CREATION_FAILED, "quiesce failed")
    assert transition_events(creating, failed) == [(SnapshotReason.CREATION_FAILED, "quiesce failed", True)]
    # a delete failing again: the condition's message says attempt 2, no second Event
    first = false([], SNAPSHOT_DELETED_CONDITION, SnapshotReason.DELETION_FAILED, "locked (attempt 1)")
    second = false(first, SNAPSHOT_DELETED_CONDITION, SnapshotReason.DELETION_FAILED, "locked (attempt 2)")
    assert transition_events(first, second) == []


def test_readys_waiting_reasons_and_other_true_conditions_are_not_announced():
    waiting = derive_ready([], T0, 1)
    assert transition_events([], waiting) == []
    assert transition_events(waiting, derive_ready(true([], CREATED), T0, 1)) == [
        (EventReason.SNAPSHOT_CREATED, f"{CREATED} is True", False)], "Ready's new waiting reason says nothing more"
    assert transition_events([], true([], "SomeoneElsesCondition")) == []
