"""The house's import rules (fast tier: files only, no imports of the code checked).

* nothing of the product, of bench/ or of testbed/ imports `tests`: the wheel and the benchmarks run without it;
* only `runtime/` imports the Kubernetes client: one layer talks to the API (docs/architecture.md);
* only the vSphere modules (`runtime/vsphere.py`, `runtime/vsphere_*.py`, `activities/vsphere_*.py`,
  `activities/vsphere/`) import pyVmomi.

The layer order between the product's packages is tests/unit/test_docs.py's (it reads docs/architecture.md's table).
Each rule is a function over a tree of files returning its violations, and each is shown to report a breach on a
tree made to break it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.unit.test_docs import PRODUCT, REPO

TEST_BED = ("bench", "testbed")


@dataclass(frozen=True)
class ImportRule:
    name: str
    forbidden: tuple[str, ...]  # top-level modules
    scope: tuple[str, ...]      # the directories whose modules the rule holds for
    allowed: tuple[str, ...] = ()  # fnmatch patterns of paths (from the tree's root) that may import them

    def allows(self, path: str) -> bool:
        return any(fnmatch(path, pattern) for pattern in self.allowed)


NO_TESTS = ImportRule("nothing imports tests", ("tests",), (*PRODUCT, *TEST_BED))
KUBE_CLIENT_IN_RUNTIME = ImportRule("only runtime/ imports the Kubernetes client", ("kubernetes",), PRODUCT,
                                    ("runtime/*",))
VSPHERE_SDK_IN_VSPHERE_MODULES = ImportRule(
    "only the vSphere modules import pyVmomi", ("pyVmomi", "pyVim"), PRODUCT,
    ("runtime/vsphere.py", "runtime/vsphere_*.py", "activities/vsphere_*.py", "activities/vsphere/*"))
RULES = (NO_TESTS, KUBE_CLIENT_IN_RUNTIME, VSPHERE_SDK_IN_VSPHERE_MODULES)


def imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every absolute import, wherever it is (function bodies, TYPE_CHECKING blocks)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(rule: ImportRule, root: Path) -> list[str]:
    """`path:line imports module` for each import under `root` that breaks the rule."""
    found = []
    for directory in rule.scope:
        for module in sorted((root / directory).rglob("*.py")):
            path = module.relative_to(root).as_posix()
            if rule.allows(path):
                continue
            found += [f"{path}:{line} imports {name}" for line, name in imports(module.read_text())
                      if name.split(".")[0] in rule.forbidden]
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_the_rule_holds(rule: ImportRule) -> None:
    assert all((REPO / directory).is_dir() for directory in rule.scope), rule.scope
    assert violations(rule, REPO) == []


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.mark.parametrize("rule, breaking, allowed", [
    (NO_TESTS,
     {"bench/run.py": "from tests.e2e.views import windows\n", "worker/main.py": "import tests\n",
      "testbed/stack.py": "def f():\n    import tests.fixtures.kube\n"},
     {"tests/unit/test_x.py": "from tests.fixtures import kube\n", "api/tests_helper.py": "import testsuite\n"}),
    (KUBE_CLIENT_IN_RUNTIME,
     {"activities/kube/events.py": "from kubernetes import client\n",
      "bridge/admission/server.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                    "    import kubernetes.client\n"},
     {"runtime/kube.py": "from kubernetes.client import ApiClient\n", "runtime/sub/watch.py": "import kubernetes\n",
      "bench/harness.py": "from kubernetes import client\n"}),
    (VSPHERE_SDK_IN_VSPHERE_MODULES,
     {"worker/import_vms.py": "from pyVmomi import vim\n", "runtime/vcenter_privileges.py": "import pyVim.connect\n",
      "activities/kube_vm.py": "from pyVmomi import vmodl\n"},
     {"runtime/vsphere.py": "from pyVim.connect import SmartConnect\n", "runtime/vsphere_tasks.py": "import pyVmomi\n",
      "activities/vsphere_snapshot.py": "from pyVmomi import vim\n", "activities/vsphere/tree.py": "import pyVmomi\n"}),
], ids=["tests", "kubernetes", "pyVmomi"])
def test_a_broken_rule_is_reported(tmp_path: Path, rule: ImportRule, breaking: dict[str, str],
                                   allowed: dict[str, str]) -> None:
    root = write(tmp_path, {**breaking, **allowed})
    reported = violations(rule, root)
    assert sorted(line.split(":")[0] for line in reported) == sorted(breaking), reported
