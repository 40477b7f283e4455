"""Workflows already running when a new worker version is deployed must replay on it: histories recorded from
real runs of earlier versions (by `bench.overhead --save-histories`, against the real test bed) replay against
today's workflow code. No server: the Replayer works from the stored JSON. A change that alters the commands
a workflow issues without keeping the older steps for older histories fails here (non-determinism)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from contract.payloads import SnapshotLocation, VSphereSnapshotRequest
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



@pytest.mark.parametrize("kind, activity_type, model", [
    ("create", "vsphere_create_snapshot", VSphereSnapshotRequest),
    ("revert", "vsphere_revert_snapshot", SnapshotLocation),
])
def test_older_versions_never_asked_their_task_activity_for_the_reads_after_it(kind, activity_type, model) -> None:
    """Why the stored histories stay replayable through a rolling upgrade: an older workflow's task activity
    input has no `read_after`, so a newer worker running that task returns the result the older code expects
    (no tree, no YAML), and the steps after it are chosen from that result in replay as they were then."""
    history = json.loads((HISTORIES / "v1" / f"{kind}.json").read_text())
    scheduled = [e["activityTaskScheduledEventAttributes"] for e in history["events"]
                 if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    assert [a["activityType"]["name"] for a in scheduled] == [activity_type]
    request = model.model_validate_json(base64.b64decode(scheduled[0]["input"]["payloads"][0]["data"]))
    assert request.read_after is False
