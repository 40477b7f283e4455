"""Workflows already running when a new worker version is deployed must replay on it: histories recorded from
real runs of earlier versions (by `bench.overhead --save-histories`, against the real test bed) replay against
today's workflow code. No server: the Replayer works from the stored JSON. A change that alters the commands
a workflow issues without keeping the older steps for older histories fails here (non-determinism)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from contract import compat
from contract.payloads import Operation, RevertPlan, SnapshotLocation, SnapshotPlan, VSphereSnapshotRequest
from worker.main import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", json.loads(path.read_text()))


def test_every_kind_is_stored() -> None:
    """Each version directory holds a create, a revert, a delete and a VM queue."""
    versions = {p.parent for p in FILES}
    assert versions
    for version in versions:
        assert {p.stem for p in version.glob("*.json")} >= {"create", "revert", "delete", "queue"}, version


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


# --- the compatibility branches (contract/compat.py) against the stored histories -----------------------------------

def versions() -> set[str]:
    return {p.parent.name for p in FILES}


def events(version: str, kind: str) -> list[dict[str, Any]]:
    return json.loads((HISTORIES / version / f"{kind}.json").read_text())["events"]


def decoded(payloads: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payloads["payloads"][0]["data"]))


def local_activity_result(activity_type: str) -> Callable[[list[dict[str, Any]]], Any]:
    def read(history: list[dict[str, Any]]) -> Any:
        for e in history:
            details = e.get("markerRecordedEventAttributes", {}).get("details", {})
            if "data" in details and decoded(details["data"])["activity_type"] == activity_type:
                return decoded(details["result"])
        raise LookupError(activity_type)
    return read


def activity_input(activity_type: str) -> Callable[[list[dict[str, Any]]], Any]:
    def read(history: list[dict[str, Any]]) -> Any:
        for e in history:
            attributes = e.get("activityTaskScheduledEventAttributes")
            if attributes and attributes["activityType"]["name"] == activity_type:
                return decoded(attributes["input"])
        raise LookupError(activity_type)
    return read


def workflow_input(history: list[dict[str, Any]]) -> Any:
    return decoded(history[0]["workflowExecutionStartedEventAttributes"]["input"])


# each case of contract.compat.SERVES: the stored payloads its branch keys on (history kind, where, model)
PREPARED_CREATE = ("create", local_activity_result("kube_prepare_snapshot"), SnapshotPlan)
CREATE_TASK = ("create", activity_input("vsphere_create_snapshot"), VSphereSnapshotRequest)
REVERT_TASK = ("revert", activity_input("vsphere_revert_snapshot"), SnapshotLocation)
DELETE = ("delete", workflow_input, Operation)
KEYED_ON: dict[str, list[tuple[str, Callable[[list[dict[str, Any]]], Any], type[BaseModel]]]] = {
    "unprepared": [PREPARED_CREATE],
    "releases_queue_at_handshake": [PREPARED_CREATE],
    "without_deadline": [PREPARED_CREATE, ("revert", local_activity_result("kube_prepare_revert"), RevertPlan)],
    "Operation.stop_create": [DELETE],
    "Operation.cancel_create": [DELETE],
    "VSphereSnapshotRequest.read_after": [CREATE_TASK],
    "SnapshotLocation.read_after": [REVERT_TASK],
    "VSphereSnapshotRequest.cancel_task_on_cancel": [CREATE_TASK],
    "SnapshotLocation.cancel_task_on_cancel": [REVERT_TASK],
}


def takes(case: str, recorded: Any, model: type[BaseModel]) -> bool:
    """Whether a history whose payload is `recorded` takes the branch: the predicate says so, or the field whose
    default stands in for it is absent."""
    if "." in case:
        name, field = case.split(".")
        assert name == model.__name__ and field in model.model_fields, case
        return field not in recorded
    predicate = getattr(compat, case)
    return bool(predicate(model.model_validate(recorded)))


def test_every_version_named_by_a_branch_has_its_histories_and_every_history_a_version_named() -> None:
    """A branch cannot lose its proof, nor a history its branch: the two go in one change (docs/operations.md)."""
    assert compat.versions_named() == versions()


def test_every_compatibility_case_says_where_the_histories_record_what_it_keys_on() -> None:
    assert set(compat.SERVES) == set(KEYED_ON)


@pytest.mark.parametrize("case", sorted(compat.SERVES))
def test_the_stored_histories_of_exactly_the_versions_a_case_names_take_its_branch(case: str) -> None:
    for kind, read, model in KEYED_ON[case]:
        taken = {version for version in versions() if takes(case, read(events(version, kind)), model)}
        assert taken == set(compat.SERVES[case]), f"{case} on {kind}"
