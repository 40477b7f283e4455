"""Before and after a change, on a machine whose speed moves from run to run: `bench.overhead` of two versions of
the product, interleaved (before, after, after, before, ...), and the median of each figure.

CPU-seconds per operation of the same code move by ±10–15 % between runs on these shared machines (other tenants,
the host's caches; there are no hardware counters to count instructions instead), so one run of each version can
show a change that is not there or hide one that is. Interleaving spreads a slow spell over both versions; the
medians and every run's figure are printed, and the requests per operation, which do not move with the machine,
beside them.

    .venv/bin/python -m bench.compare 82339a9                 # that commit against the working tree
    .venv/bin/python -m bench.compare 82339a9 HEAD --runs 6 --n 30

Each version runs from an export (`git archive`) with this tree's `bench/` and `testbed/` laid over it, so both
are measured by the same harness on the same test bed; the product's code is the version's own."""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import table
from testbed.process import repo_root

KINDS = ("create", "revert", "delete")
# (section title in bench.overhead's output, row label) → the figure's name here
ROWS = {
    ("## CPU per operation", "**sum (temporal + worker + bridge + apiserver)**"): "CPU ms/op, sum",
    ("## CPU per operation", "temporal"): "CPU ms/op, temporal",
    ("## CPU per operation", "worker"): "CPU ms/op, worker",
    ("## CPU per operation", "kube-apiserver"): "CPU ms/op, kube-apiserver",
    ("## Requests per operation", "**kube: all**"): "kube requests/op",
    ("## Requests per operation", "**temporal: all**"): "Temporal RPCs/op",
}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def export(rev: str, into: Path) -> Path:
    """The product at `rev`, with this tree's harness (bench/, testbed/) over it."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo_root()), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for harness in ("bench", "testbed"):
        shutil.rmtree(into / harness, ignore_errors=True)
        shutil.copytree(repo_root() / harness, into / harness, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def figures(output: str) -> dict[str, float]:
    """The figures `ROWS` names, per kind, and the overhead p50, from one run's printed report."""
    found: dict[str, float] = {}
    section = ""
    for line in output.splitlines():
        if line.startswith("## "):
            section = line
            continue
        for (title, label), name in ROWS.items():
            if section.startswith(title) and line.startswith(label + " "):
                values = NUMBER.findall(line[len(label):])
                for kind, value in zip(KINDS, values, strict=False):
                    found[f"{kind}: {name}"] = float(value)
        match = re.match(r"(create|revert|delete) p50\s+(\d+)\s+(\d+)\s+(-?\d+)$", line.strip())
        if match:
            found[f"{match[1]}: overhead p50 ms"] = float(match[4])
    return found


def run_overhead(tree: Path, n: int, log: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.overhead", "--n", str(n)], cwd=tree,
                          capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"bench.overhead failed in {tree} (exit {done.returncode}); its output: {log}")
    found = figures(done.stdout)
    if not found:
        raise SystemExit(f"no figures in bench.overhead's output: {log}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="a git revision")
    parser.add_argument("after", nargs="?", help="a git revision (default: the working tree as it is)")
    parser.add_argument("--runs", type=int, default=4, help="runs of each version (default 4)")
    parser.add_argument("--n", type=int, default=30, help="operations of each kind per run (default 30)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="vmsnap-bench-compare-"))
    print(f"# logs and exports: {workdir}", flush=True)
    trees = {"before": export(args.before, workdir / "before"),
             "after": export(args.after, workdir / "after") if args.after else repo_root()}
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(args.runs):
        for version in ("before", "after") if i % 2 == 0 else ("after", "before"):
            print(f"# run {i + 1} of {args.runs}: {version}", flush=True)
            results[version].append(run_overhead(trees[version], args.n, workdir / f"{version}-{i + 1}.txt"))

    names = [name for name in results["before"][0] if name in results["after"][0]]
    rows = []
    for name in sorted(names, key=lambda k: (KINDS.index(k.split(":")[0]), k)):
        before = [r[name] for r in results["before"] if name in r]
        after = [r[name] for r in results["after"] if name in r]
        b, a = statistics.median(before), statistics.median(after)
        change = f"{100 * (a - b) / b:+.0f} %" if b else ""
        rows.append([name, " / ".join(f"{v:g}" for v in before), " / ".join(f"{v:g}" for v in after),
                     f"{b:g}", f"{a:g}", change])
    print(table(["figure", "before, each run", "after, each run", "before, median", "after, median", "change"],
                rows, f"## {args.before} → {args.after or 'working tree'}: bench.overhead --n {args.n}, "
                      f"{args.runs} runs each, interleaved"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
