"""What the deployment tests read: the kustomize builds of deploy/, the project's console scripts, and the
environment variables the product really reads (runtime/settings.py, plus the few read directly from
os.environ, such as the OpenTelemetry SDK's standard names in runtime/telemetry.py)."""

from __future__ import annotations

import ast
import functools
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from runtime.settings import TEMPORAL_ENVIRONMENT, Settings
from tests.admission.kube_objects import KUBECTL

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("standalone", "production", "namespaced")
PRODUCT_PACKAGES = ("activities", "api", "bridge", "runtime", "worker", "workflows")
CERT_MANAGER_GROUP = "cert-manager.io"


@functools.cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize deploy/overlays/<overlay>`, as a tuple of objects (cached: read-only for callers)."""
    done = subprocess.run([str(KUBECTL), "kustomize", str(DEPLOY / "overlays" / overlay)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(KUBECTL), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True)


def one(objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} in the build"
    return found[0]


def of_kind(objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def is_cert_manager(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].split("/")[0] == CERT_MANAGER_GROUP


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name → the env entry (value or valueFrom)."""
    return {e["name"]: e for e in container(deployment).get("env", [])}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def console_scripts() -> dict[str, str]:
    return pyproject()["project"]["scripts"]


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads: its aliases, or VMSNAP_<FIELD> for fields without one, and
    Temporal's environment configuration."""
    prefix = Settings.model_config["env_prefix"]
    names: set[str] = set(TEMPORAL_ENVIRONMENT)
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def _environ_reads(tree: ast.AST) -> set[str]:
    """String keys of os.environ.get(...), os.environ[...] and os.getenv(...) in a module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv"):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


@functools.cache
def code_env_names() -> frozenset[str]:
    """Variables the product's own code reads from os.environ (outside Settings)."""
    names: set[str] = set()
    for package in PRODUCT_PACKAGES:
        for source in (REPO / package).rglob("*.py"):
            names |= _environ_reads(ast.parse(source.read_text()))
    return frozenset(names)


def product_env_names() -> set[str]:
    return settings_env_names() | code_env_names()
