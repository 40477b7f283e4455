"""Every activity the code defines is registered on exactly one of the worker's two task queues."""

from __future__ import annotations

import ast
from pathlib import Path
from unittest import mock

from temporalio import activity

from activities.vsphere_snapshot import VSphereSnapshotActivities
from runtime.settings import Settings
from worker import main

REPO = Path(__file__).resolve().parents[2]


def defined_activity_names() -> set[str]:
    """The names given in @activity.defn(name=...) anywhere under activities/."""
    names = set()
    for source in (REPO / "activities").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "activity.defn":
                names |= {k.value.value for k in node.keywords if k.arg == "name"}
    return names


def test_every_activity_is_registered_once():
    vsphere = VSphereSnapshotActivities(mock.MagicMock())
    settings = Settings(VSPHERE_URL="https://vcenter.example/sdk")
    served = main.activities(settings, main.temporal_activities(settings, mock.MagicMock()), vsphere,
                             mock.MagicMock(), mock.MagicMock(), mock.MagicMock())
    capped = main.vcenter_task_activities(vsphere)
    names = [activity._Definition.must_from_callable(m).name for m in served + capped]
    assert sorted(names) == sorted(defined_activity_names())
