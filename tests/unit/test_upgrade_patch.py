"""The pod tier's v2 (tests/pods/upgrade/v2.patch, built by tests/pods/test_upgrade.py) checked in the fast tier:
it still applies to this clone, and the code it makes still replays every stored history (v1–v4) — so a change to
the code it patches shows here, not only in the pod tier's run."""

from __future__ import annotations

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
