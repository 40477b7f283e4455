"""The product image, built here without a registry: `python -m testbed.image [--tag T] [--base IMAGE]`.

1. A Docker engine: the one answering on the default socket, else `dockerd` started by this script (host
   networking only: `--bridge=none --iptables=false --ip-masq=false`; data root `~/.cache/vmsnap/docker`, log
   `~/.cache/vmsnap/dockerd.log`). It is left running, like a system service, so its images stay cached.
2. A base image with Python 3.11, unless `--base` names one: Debian bookworm made by `mmdebstrap` and imported,
   once (the tag carries a hash of the recipe; nothing is rebuilt while it exists).
3. The wheelhouse: every locked dependency (`constraints.txt`) as a wheel in `wheelhouse/`, plus the build
   backend pyproject.toml names, fetched by the host's pip (its index and cache); the build itself is offline.
4. `docker build --build-arg BASE_IMAGE=… --network host`, and the image's reference on stdout.

Failures raise ImageError with the reason (a missing engine is a failure, never a skip).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from testbed.process import cache_dir, repo_root

DEFAULT_TAG = "vmsnap:local"
# The local base: Debian's Python 3.11 (the same minor as the official default of the Dockerfile) on the Essential
# packages only (no apt, which a runtime image does not need), merged /usr set up by mmdebstrap's hook rather than
# the usrmerge package (which pulls in 47 MB of Perl), without docs, man pages, translations and glibc's iconv
# modules (Python's codecs are its own). python3-venv for `python3 -m venv` (Debian splits out ensurepip).
MMDEBSTRAP = [
    "mmdebstrap", "--variant=essential", "--include=python3,python3-venv,ca-certificates",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale", "lintian")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*",
    "bookworm",
]
BASE_REPO = "local/debian-python"
# docker-compose.production.yml's PostgreSQL where no apt reaches a mirror from inside a build (compose_here):
# the same minimal Debian with Debian's postgresql-15 (which needs gconv's modules, so those stay) and without
# the cluster its package would make at install (the image's start.sh makes the one it serves).
MMDEBSTRAP_POSTGRES = [
    "mmdebstrap", "--variant=essential", "--include=postgresql-15",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--essential-hook=mkdir -p \"$1/etc/postgresql-common/createcluster.d\" && echo 'create_main_cluster = false' "
    ">\"$1/etc/postgresql-common/createcluster.d/vmsnap.conf\"",
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale", "lintian")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "bookworm",
]
POSTGRES_BASE_REPO = "local/debian-postgres"
LABEL = "io.vmsnap.built-by-testbed"
DOCKERD_ARGS = ["--bridge=none", "--iptables=false", "--ip-masq=false"]
# dockerd's own pid file (its default): left behind by a dockerd that was killed, it stops the next from starting
DOCKERD_PID_FILE = Path("/var/run/docker.pid")


class ImageError(RuntimeError):
    """The engine, the base image, the wheelhouse or the build failed: the message says which and why."""


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def run(argv: list[str], what: str, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError as e:
        raise ImageError(f"{what}: {argv[0]} not found ({e})") from e
    except subprocess.TimeoutExpired as e:
        raise ImageError(f"{what}: no answer in {timeout:.0f} s: {' '.join(argv)}") from e
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise ImageError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{tail}")
    return done


def docker_cli() -> str:
    # Debian's client first: the same version as the engine it installs
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ImageError("no docker client: install docker.io (apt-get install -y docker.io; .ci/run does it)")


def engine_answers(docker: str) -> bool:
    return subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                          timeout=30).returncode == 0


def ensure_docker(timeout: float = 60) -> str:
    """The docker client, with an engine answering it (started here if none does)."""
    docker = docker_cli()
    if engine_answers(docker):
        return docker
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if dockerd is None:
        raise ImageError("no Docker engine answers and dockerd is not installed: apt-get install -y docker.io "
                         "(as root; .ci/run does it)")
    if os.geteuid() != 0:
        raise ImageError("no Docker engine answers, and starting dockerd needs root")
    data_root = cache_dir() / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    log_file = cache_dir() / "dockerd.log"
    remove_stale_pid_file(DOCKERD_PID_FILE)
    log(f"starting dockerd (data root {data_root}, log {log_file})")
    with open(log_file, "ab") as out:
        daemon = subprocess.Popen([dockerd, *DOCKERD_ARGS, f"--data-root={data_root}"], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-25:])
            raise ImageError(f"dockerd exited with {daemon.returncode} ({engine_state(data_root)}; log {log_file}):"
                             f"\n{tail}")
        if engine_answers(docker):
            log(f"dockerd up (pid {daemon.pid}) in {timeout - (deadline - time.monotonic()):.1f} s")
            return docker
        time.sleep(0.5)
    raise ImageError(f"dockerd (pid {daemon.pid}) did not answer within {timeout:.0f} s (log {log_file})")


def remove_stale_pid_file(pid_file: Path) -> None:
    """Remove dockerd's pid file when the process it names is no longer a dockerd (killed, machine restarted):
    no engine answered, so no live dockerd owns it."""
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return
    if not process_running(pid, "dockerd"):
        log(f"removing the stale {pid_file} (pid {pid} is not a running dockerd)")
        pid_file.unlink(missing_ok=True)


def process_state(pid: int) -> tuple[str, str] | None:
    """(command, state letter) of a process, from /proc/PID/stat; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:][:1]


def process_running(pid: int, command: str) -> bool:
    """Whether `pid` runs `command` and is not a zombie: a killed dockerd whose parent has not reaped it yet (PID 1
    of some machines reaps late) still shows its name, but owns nothing."""
    state = process_state(pid)
    return state is not None and state[0] == command and state[1] != "Z"


def engine_state(data_root: Path) -> str:
    """What a dockerd that exited may not have been able to log: the space left under its data root (a full disk
    also stops its own log), the pid file, and the engine processes there are (a Z is a zombie)."""
    free = shutil.disk_usage(data_root).free / 2**30
    try:
        pid_file = f"{DOCKERD_PID_FILE} names {DOCKERD_PID_FILE.read_text().strip() or 'nothing'}"
    except OSError:
        pid_file = f"no {DOCKERD_PID_FILE}"
    engines = [f"{command} {pid} {state}" for pid in sorted(int(p.name) for p in Path("/proc").glob("[0-9]*"))
               if (found := process_state(pid)) and (command := found[0]) in ("dockerd", "containerd")
               and (state := found[1])]
    return f"{free:.1f} GiB free under {data_root}, {pid_file}, engine processes: {', '.join(engines) or 'none'}"


def image_exists(docker: str, ref: str) -> bool:
    return subprocess.run([docker, "image", "inspect", ref], capture_output=True).returncode == 0


def ensure_base(docker: str, recipe: list[str] = MMDEBSTRAP, repository: str = BASE_REPO) -> str:
    """The local Debian + Python base image (or another mmdebstrap recipe's image), made once."""
    ref = f"{repository}:bookworm-{hashlib.sha256(' '.join(recipe).encode()).hexdigest()[:10]}"
    if image_exists(docker, ref):
        return ref
    if shutil.which("mmdebstrap") is None:
        raise ImageError(f"base image {ref} is missing and mmdebstrap is not installed: apt-get install -y "
                         "mmdebstrap (as root; .ci/run does it)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vmsnap-base-", dir=cache_dir()) as tmp:
        tar = Path(tmp) / "base.tar"
        log(f"making the base image {ref}: {' '.join(recipe)}")
        run([*recipe, str(tar)], "mmdebstrap (the base image)")
        run([docker, "import", str(tar), ref], "docker import (the base image)")
    log(f"base image {ref} made in {time.monotonic() - started:.0f} s")
    return ref


def build_backend() -> list[str]:
    return tomllib.loads((repo_root() / "pyproject.toml").read_text())["build-system"]["requires"]


def normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def wheelhouse_is_complete(house: Path, pins: list[str]) -> bool:
    """Every pin has its wheel there (a wheel's file name starts with its name and version)."""
    present = {(normalized(w.name.split("-")[0]), w.name.split("-")[1]) for w in house.glob("*.whl")}
    return all((normalized(name), version) in present
               for name, _, version in (pin.partition("==") for pin in pins))


def build_wheelhouse(python: str = sys.executable) -> Path:
    """wheelhouse/: the locked dependencies and the build backend as wheels, and nothing else (the image builds
    the product's own wheel from its source). Nothing is fetched while it holds every pinned wheel."""
    repo = repo_root()
    house = repo / "wheelhouse"
    pins = [line.strip() for line in (repo / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")] + build_backend()
    if wheelhouse_is_complete(house, pins):
        return house
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wheelhouse-", dir=repo / "wheelhouse") as tmp:
        run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, "-r", "constraints.txt",
             *build_backend()], "pip wheel (the wheelhouse)", cwd=repo)
        wanted = {p.name for p in Path(tmp).glob("*.whl")}
        for old in house.glob("*.whl"):
            if old.name not in wanted:
                old.unlink()
        for new in Path(tmp).glob("*.whl"):
            target = house / new.name
            if not target.exists():
                shutil.move(new, target)
    log(f"wheelhouse: {len(wanted)} wheels in {time.monotonic() - started:.1f} s")
    return house


def build_image(tag: str = DEFAULT_TAG, base: str | None = None, source: Path | None = None) -> str:
    """Build the product image from this clone, or from `source` (a copy of it: the layers below the source's
    come from the cache); returns its reference."""
    docker = ensure_docker()
    base = base or ensure_base(docker)
    build_wheelhouse()
    started = time.monotonic()
    # The build stage is tagged too, so that the layers of the current build stay while those of earlier builds
    # (untagged once superseded) are pruned: repeated builds do not fill the disk.
    repository = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    common = ["--network", "host", "--build-arg", f"BASE_IMAGE={base}", "--label", f"{LABEL}=1"]
    for argv in (["--target", "build", "--tag", f"{repository}:build-stage"], ["--tag", tag]):
        run([docker, "build", *common, *argv, "."], "docker build (the product image)", cwd=source or repo_root(),
            env={**os.environ, "DOCKER_BUILDKIT": "0"})
    log(f"image {tag} (base {base}) built in {time.monotonic() - started:.1f} s")
    run([docker, "image", "prune", "--force", "--filter", f"label={LABEL}=1"], "docker image prune")
    return tag


def image_size(docker: str, ref: str) -> int:
    return int(run([docker, "image", "inspect", "--format", "{{.Size}}", ref], "docker image inspect").stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base", help="a base image with python3 (default: the local Debian one, made once)")
    args = parser.parse_args()
    try:
        ref = build_image(args.tag, args.base)
    except ImageError as e:
        sys.exit(f"image: {e}")
    log(f"size {image_size(docker_cli(), ref) / 1e6:.0f} MB")
    print(ref)


if __name__ == "__main__":
    main()
