"""Image "v2" of tests/pods/test_upgrade.py: this clone with v2.patch applied, built as the pod tier builds the
product (testbed/image.py), under a tag of its own. Only the source layer differs from the v1 image the tier
built just before: the dependency layers come from Docker's cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testbed.image import build_image
from testbed.process import repo_root

PATCH = Path(__file__).parent / "v2.patch"
TAG = "vmsnap-upgrade:v2"  # a repository of its own: its build stage does not displace the v1 image's
# what no build reads (the rest is what .dockerignore lets through, and the files the patch touches)
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".dev", "__pycache__", "*.egg-info", ".pytest_cache",
                                    ".ruff_cache", ".mypy_cache", "build")


def build_v2(workdir: Path) -> str:
    source = workdir / "v2-source"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(repo_root(), source, ignore=NOT_COPIED)
    # a repository of its own: `git apply` inside another one would apply relative to that one's root
    subprocess.run(["git", "init", "--quiet"], cwd=source, check=True)
    applied = subprocess.run(["git", "apply", "--verbose", str(PATCH)], cwd=source, capture_output=True, text=True)
    if applied.returncode != 0:
        raise RuntimeError(f"{PATCH.name} no longer applies to this clone (update it with the code it patches):\n"
                           f"{applied.stderr}")
    return build_image(TAG, source=source)
