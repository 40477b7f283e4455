"""The top entries of a `py-spy record --format raw` file (collapsed stacks, `frame;frame;... count`): by own
samples (the frame on top of the stack) and by inclusive samples (the frame anywhere in the stack), idle
threads (waiting in select/epoll/locks) apart.

    .venv/bin/python -m bench.profile.pyspy_top DIR/worker.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# leaf frames that are a thread waiting, not working
IDLE = re.compile(r"^(select|poll|epoll|_worker|wait|acquire|_wait_for_tstate_lock|accept|recv_into|readinto|"
                  r"run_forever|_run_once|sleep|get|_poll|read)\b|\((threading|selectors|queue)\.py")


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        if IDLE.search(frames[-1]):
            idle += n
            continue
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    busy = max(1, total - idle)
    out = [f"{path}: {total} samples, {idle} idle (waiting), {total - idle} busy",
           f"-- top {top} by own samples (% of busy)"]
    out += [f"{100 * n / busy:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += [f"-- top {top} by inclusive samples (% of busy)"]
    out += [f"{100 * n / busy:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.profile.pyspy_top", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for f in args.files:
        print(summarise(f, args.top))
        print()


if __name__ == "__main__":
    main()
