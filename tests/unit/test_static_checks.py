"""The house rules review would otherwise have to catch: ruff over the whole tree, and mypy, strict on the seven
product packages (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=REPO, capture_output=True, text=True)


def test_ruff():
    done = run("ruff", "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_on_the_product():
    done = run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
