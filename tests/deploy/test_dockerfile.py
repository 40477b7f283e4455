"""The Dockerfiles, checked for what can be checked without a Docker engine: base images pinned by tag, the
product image runs as a non-root uid (the one the Deployments declare), its command is a console script, it is
installed from the project's own metadata with pinned dependencies, and .dockerignore keeps what that needs."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.deploy.manifests import REPO, build, console_scripts, one, pyproject

DOCKERFILES = [REPO / "Dockerfile", REPO / "testbed/go/vcsim/Dockerfile", REPO / "testbed/go/Dockerfile.k8s",
               REPO / "testbed/go/Dockerfile.temporal-server", REPO / "testbed/go/Dockerfile.ui-server"]
POSTGRES_DOCKERFILE = REPO / "deploy/compose/postgres/Dockerfile"  # docker-compose.production.yml's, no Go


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped; in FROM, the build arguments
    declared before the first FROM are replaced by their defaults (what `docker build` uses when none is given)."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines()
                                             if not line.lstrip().startswith("#")))
    steps = [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
             for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())]
    defaults: dict[str, str] = {}
    for op, arguments in steps:
        if op == "FROM":
            break
        if op == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            defaults[name.strip()] = value.strip()
    return [(op, re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), arguments)
             if op == "FROM" else arguments) for op, arguments in steps]


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def image_of(from_arguments: str) -> str:
    return from_arguments.split()[0]


@pytest.mark.parametrize("dockerfile", [*DOCKERFILES, POSTGRES_DOCKERFILE], ids=lambda p: str(p.relative_to(REPO)))
def test_base_images_are_pinned_by_tag(dockerfile):
    for op, arguments in instructions(dockerfile):
        if op == "FROM":
            name, _, tag = image_of(arguments).partition(":")
            assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: pin a versioned tag, not {tag!r}"


def test_the_python_base_is_one_the_project_supports():
    versions = {re.match(r"python:(\d+\.\d+\.\d+)", image_of(arguments)).group(1)
                for op, arguments in instructions(REPO / "Dockerfile") if op == "FROM"}
    assert len(versions) == 1
    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains(versions.pop())


def test_runs_as_the_non_root_uid_the_deployments_declare():
    (user,) = [arguments for op, arguments in final_stage(REPO / "Dockerfile") if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can be checked without /etc/passwd"
    for name in ("vmsnap-worker", "vmsnap-bridge"):
        pod = one(build("production"), "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == int(uid)


def test_the_default_command_is_a_console_script():
    (command,) = [arguments for op, arguments in final_stage(REPO / "Dockerfile") if op == "CMD"]
    assert command == '["vmsnap-worker"]' and "vmsnap-worker" in console_scripts()


def test_the_base_image_is_a_build_argument_with_the_official_python_as_default():
    """`docker build .` with internet uses the official image; the tests pass a base made locally."""
    raw = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", raw, re.MULTILINE)
    froms = [line.split()[1] for line in raw.splitlines() if line.startswith("FROM ")]
    assert froms and all(f == "${BASE_IMAGE}" for f in froms)


def test_the_dependencies_are_the_locked_ones_from_the_wheelhouse():
    """The image installs exactly constraints.txt (offline from wheelhouse/ when it holds wheels), then the
    product's own wheel built from the source without dependencies, checks the set and drops pip."""
    steps = instructions(REPO / "Dockerfile")
    runs = " ".join(arguments for op, arguments in steps if op == "RUN")
    assert ("COPY", "constraints.txt ./") in steps and ("COPY", "wheelhouse/ wheelhouse/") in steps
    assert "PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheelhouse" in runs
    assert "pip install --quiet --no-deps --requirement constraints.txt" in runs
    assert re.search(r"pip wheel [^&]*--no-deps [^&]*--wheel-dir /wheels \.", runs)
    assert "pip install --quiet --no-deps /wheels/vmsnap-*.whl" in runs and "pip check" in runs
    assert [arguments for op, arguments in final_stage(REPO / "Dockerfile") if op == "COPY"] == [
        "--from=build /opt/vmsnap /opt/vmsnap"], "the final stage takes the virtualenv only"
    for dependency in pyproject()["project"]["dependencies"]:
        (specifier,) = Requirement(dependency).specifier
        assert specifier.operator == "==", f"{dependency}: the image would float"


def locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not a pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_lock_holds_pyprojects_pins_and_the_test_lock_does_not_overlap_it():
    runtime, test = locked(REPO / "constraints.txt"), locked(REPO / "constraints-test.txt")
    for dependency in pyproject()["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = requirement.name.lower().replace("_", "-")
        assert name in runtime and runtime[name] in requirement.specifier, dependency
    for dependency in pyproject()["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(dependency)
        assert test.get(requirement.name.lower().replace("_", "-")) in requirement.specifier, dependency
    assert not set(runtime) & set(test), "a package pinned twice"
    assert "-c constraints.txt -c constraints-test.txt" in (REPO / "Makefile").read_text()


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's matching for the pattern forms this .dockerignore uses: a path, or **/ for any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_the_build_context_keeps_what_the_package_is_built_from():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "dockerignored() does not model exceptions"
    setuptools = pyproject()["tool"]["setuptools"]
    needed = ["pyproject.toml", pyproject()["project"]["readme"]]
    for include in setuptools["packages"]["find"]["include"]:
        needed += [p.name for p in REPO.iterdir() if p.is_dir() and fnmatch.fnmatch(p.name, include)
                   and (p / "__init__.py").exists()]
    for package, globs in setuptools.get("package-data", {}).items():
        needed += [str(f.relative_to(REPO)) for g in globs for f in (REPO / package).glob(g) if f.is_file()]
    needed += ["constraints.txt", "wheelhouse/README.md"]  # what the dependencies are installed from
    for path in needed:
        assert not dockerignored(path, patterns), f".dockerignore drops {path}, which the image is built from"
    for path in (".git/HEAD", ".venv/bin/python", "tests/conftest.py", "worker/__pycache__/main.cpython-311.pyc",
                 "testbed/go/vcsim/main.go", "build/lib/api/__init__.py"):
        assert dockerignored(path, patterns)


def test_the_wheel_holds_the_product_only(tmp_path):
    """What the image installs: the product's packages, not the test bed, its Go sources or the dev command."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--wheel-dir", str(tmp_path), str(REPO)], check=True)
    (wheel,) = tmp_path.glob("vmsnap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("vmsnap-")}
    assert top == {"api", "runtime", "contract", "workflows", "activities", "worker", "bridge"}
    entry_points = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "vmsnap-dev" not in entry_points and "vmsnap-worker" in entry_points


@pytest.mark.parametrize("dockerfile", DOCKERFILES[1:], ids=lambda p: str(p.relative_to(REPO)))
def test_go_images_take_their_bases_as_build_arguments_with_a_prebuilt_target_first(dockerfile):
    """BASE_IMAGE defaults to the product's base (a laptop pulls one); target `prebuilt` (binaries from the build
    context, as tests/deploy/test_compose_up.py builds them) comes first, so the classic builder, which builds
    every stage before its target, needs no Go image for it."""
    text = dockerfile.read_text()
    assert "ARG BASE_IMAGE=" in text and "ARG GO_IMAGE=" in text
    froms = [arguments for op, arguments in instructions(dockerfile) if op == "FROM"]
    product_base = image_of(next(a for op, a in instructions(REPO / "Dockerfile") if op == "FROM"))
    assert froms[0].endswith(" AS prebuilt")
    assert image_of(froms[0]) == image_of(froms[-1]) == product_base


def test_the_postgres_image_takes_its_base_as_a_build_argument_with_a_prebuilt_target_first():
    """As the Go images: the product's base by default, and target `prebuilt` (a base with postgresql-15 already,
    as tests/deploy/compose_here builds it) first, the two stages alike but for the package's installation."""
    froms = [arguments for op, arguments in instructions(POSTGRES_DOCKERFILE) if op == "FROM"]
    product_base = image_of(next(a for op, a in instructions(REPO / "Dockerfile") if op == "FROM"))
    assert froms[0].endswith(" AS prebuilt") and len(froms) == 2
    assert image_of(froms[0]) == image_of(froms[-1]) == product_base
    stages = POSTGRES_DOCKERFILE.read_text().split("\nFROM ")[1:]
    prebuilt, installed = ([line for line in s.splitlines()[1:] if line and not line.startswith("#")] for s in stages)
    assert installed[-len(prebuilt):] == prebuilt
