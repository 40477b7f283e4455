"""Workflows already running when a new worker version is deployed must replay on it: histories recorded from
real runs of earlier versions (by `bench.overhead --save-histories`, against the real test bed) replay against
today's workflow code. No server: the Replayer works from the stored JSON. A change that alters the commands
a workflow issues without `workflow.patched` fails here with a non-determinism error."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", json.loads(path.read_text()))


def with_task_result(path: Path, result: Any) -> WorkflowHistory:
    """The stored history with its vCenter task activity's result replaced: a rolling upgrade, where a newer
    worker ran the task (and returned what it reads after it) while an older one ran the workflow task that
    took the result and chose the next steps."""
    history = json.loads(path.read_text())
    completed = [e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"]
    assert len(completed) == 1
    completed[0]["activityTaskCompletedEventAttributes"]["result"] = {"payloads": [{
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(result).encode()).decode()}]}
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}-upgraded-task", history)


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


TREE = {"roots": [], "current": None, "usage": {"vm_bytes": 0, "volume_bytes": 0}}


@pytest.mark.parametrize("kind, result", [
    ("create", {"node": {"name": "s00-00", "moref": "snapshot-147", "power_state": "PoweredOff"}, "same_name": [],
                "tree": TREE, "used_bytes": 0}),
    ("revert", {"tree": TREE, "vm_yaml": "H4sI"}),
])
async def test_a_task_result_from_a_newer_worker_replays_with_the_steps_the_older_workflow_took(kind, result):
    """What `workflow.patched` is for: the result carries what today's task activity reads, yet the history's
    next steps are the older ones (no patch marker), and that is what replay must choose. Without the patch
    (taking the new path whenever the result allows it) this replay fails with a non-determinism error."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    outcome = await replayer.replay_workflow(with_task_result(HISTORIES / "v1" / f"{kind}.json", result),
                                             raise_on_replay_failure=False)
    assert outcome.replay_failure is None, outcome.replay_failure
