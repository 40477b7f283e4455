"""`vmsnap-dev` (the README's `make dev`): the whole stack on loopback, until Ctrl-C.

Temporal with its UI, kube-apiserver + etcd + controller-manager with our CRDs, the vCenter simulator with a
few VMs imported as VirtualMachine objects, the worker and the bridge. It writes `.dev/env` so plain
`kubectl` and `temporal` work against it from another shell (`source .dev/env`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from testbed.process import PartFailed, repo_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=repo_root() / ".dev",
                        help="state, logs and the env file (default: .dev/ in the clone)")
    parser.add_argument("--vms", type=int, default=2, help="simulator VMs per resource pool (default 2)")
    args = parser.parse_args(argv)

    from testbed.stack import Stack  # imported late so --help works without the test bed installed

    stack = Stack(args.dir, vms_per_pool=args.vms)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stack.start()
        print(stack.describe(), flush=True)
        while not stopping.wait(1):
            stack.check_alive()
    except KeyboardInterrupt:
        pass
    except PartFailed as e:
        print(f"vmsnap-dev: {e}", file=sys.stderr)
        return 1
    finally:
        print("vmsnap-dev: stopping", file=sys.stderr)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
