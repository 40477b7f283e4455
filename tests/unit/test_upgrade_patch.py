"""The pod tier's v2 (tests/pods/upgrade/v2.patch, built by tests/pods/test_upgrade.py) checked in the fast tier:
it still applies to this clone, the code it makes still replays every stored history (v1–v4), and only thanks to
its predicates: without them v4's create and revert fail to replay — so a change to the code it patches shows here,
not only in the pod tier's run, and the pod tier's upgrade test cannot pass for want of a real difference."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from testbed.process import repo_root
from tests.pods.upgrade.image import PATCH

# the bytecode too (with the sources' times): only what the patch changes is compiled again
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".dev", "*.egg-info", ".pytest_cache", ".ruff_cache",
                                    ".mypy_cache")


def test_the_v2_patch_applies_and_its_code_replays_the_stored_histories(tmp_path):
    source = tmp_path / "v2-source"
    shutil.copytree(repo_root(), source, ignore=NOT_COPIED)
    subprocess.run(["git", "init", "--quiet"], cwd=source, check=True)
    applied = subprocess.run(["git", "apply", str(PATCH)], cwd=source, capture_output=True, text=True)
    assert applied.returncode == 0, f"{PATCH.name} no longer applies: {applied.stderr}"
    # all of the replay test but the one that asks for v5's histories, which the patch does not record
    replayed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/workflows/test_replay_histories.py", "-k", "not every_version_named"],
        cwd=source, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(source)})
    assert replayed.returncode == 0, replayed.stdout[-3000:] + replayed.stderr[-2000:]
    assert " passed" in replayed.stdout.splitlines()[-1] and "failed" not in replayed.stdout.splitlines()[-1]

    without = subprocess.run([sys.executable, "-c", WITHOUT_THE_PREDICATES], cwd=source, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(source)})
    assert without.returncode == 0, without.stderr[-3000:]
    failures = json.loads(without.stdout.splitlines()[-1])  # the lines before: the SDK core's warnings
    assert set(failures) == {"create", "revert"}
    assert all("nondetermin" in failure.lower() for failure in failures.values()), failures


# v2's workflows as if its predicates always said "today's code": v4's in-flight create and revert, replayed
WITHOUT_THE_PREDICATES = """
import asyncio, json
from pathlib import Path
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from contract import compat

# before the sandbox imports the workflows, which take these from compat (passed through)
compat.without_tree_read_before_task = lambda plan: False
compat.marks_in_progress_while_finding = lambda plan: False
from worker.main import WORKFLOWS

async def failure(kind):
    path = Path("tests/workflows/histories/v4") / f"{kind}.json"
    history = WorkflowHistory.from_json(kind, json.loads(path.read_text()))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return str(result.replay_failure)

print(json.dumps({kind: asyncio.run(failure(kind)) for kind in ("create", "revert")}))
"""
