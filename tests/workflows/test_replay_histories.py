"""Workflows already running when a new worker version is deployed must replay on it: histories recorded from
real runs of earlier versions (by `bench.overhead --save-histories`, against the real test bed) replay against
today's workflow code. No server: the Replayer works from the stored JSON. A change that alters the commands
a workflow issues without `workflow.patched` fails here with a non-determinism error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    text = path.read_text()
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", json.loads(text))


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
