"""`vmsnap-dev` (the README's `make dev`): the whole stack on loopback, until Ctrl-C.

    vmsnap-dev [--dir DIR] [--vms N] [--free-ports] [--temporal dev|cluster]
                                                         start a fresh stack and supervise it
    vmsnap-dev status                                    every part: pid, state, restarts, log
    vmsnap-dev kill PART [--no-wait]                     SIGKILL one part; the dev command starts it again
    vmsnap-dev restart PART                              SIGTERM one part and start it again at once
    vmsnap-dev vcsim hold|fail|tools|rules|clear|vms     steer the vCenter simulator (its control API)

Temporal with its UI, kube-apiserver + etcd + controller-manager with our CRDs, the vCenter simulator with a
few VMs imported as VirtualMachine objects, the CSI driver stand-in, the worker and the bridge: each a process of
its own, started again after a back-off when it dies (testbed/stack.py says which and why). It writes `.dev/env`
so plain `kubectl`, `temporal` and `vmsnap-dev` work against it from another shell (`source .dev/env`); the
other commands find the stack through VMSNAP_DEV_DIR (set by that file) or `--dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from testbed.process import PartFailed, repo_root

DEFAULT_DIR = repo_root() / ".dev"
# the simulator's methods by what the product does with them (any method of rules.go's list is accepted too)
TASKS = {"create": "CreateSnapshotEx_Task", "revert": "RevertToSnapshot_Task", "delete": "RemoveSnapshot_Task"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmsnap-dev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None,
                        help="state, logs, the env file and the control socket (default: .dev/ in the clone; "
                             "the other commands default to $VMSNAP_DEV_DIR, then .dev/)")
    parser.add_argument("--vms", type=int, default=2, help="simulator VMs per resource pool (default 2)")
    parser.add_argument("--free-ports", action="store_true",
                        help="pick free ports for the worker's and bridge's health and metrics endpoints instead "
                             "of 8080/8081 and 9464/9465 (to run it next to another stack)")
    parser.add_argument("--temporal", choices=("dev", "cluster"), default="dev",
                        help="dev: the Temporal dev server with its UI (default, starts in a second); cluster: the "
                             "four Temporal services on a private PostgreSQL, as in production (built once by "
                             "testbed/go/build-temporal.sh, ~7 min cold) with the Temporal UI server beside them "
                             "(testbed/go/build-ui-server.sh)")
    parser.set_defaults(run=up)
    commands = parser.add_subparsers(metavar="COMMAND", title="commands (against a running stack)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="the stack's directory")

    commands.add_parser("status", parents=[common], help="every part: pid, state, restarts, log").set_defaults(
        run=status)
    kill = commands.add_parser("kill", parents=[common],
                               help="SIGKILL one part (as a crash would); the dev command starts it again after "
                                    "its back-off; waits until it is up again unless --no-wait")
    kill.add_argument("part", help="worker, bridge, csi-driver, temporal, etcd, kube-apiserver, "
                                   "kube-controller-manager (--temporal cluster: temporal-frontend, "
                                   "temporal-history, temporal-matching, temporal-worker, temporal-ui, postgres)")
    kill.add_argument("--no-wait", dest="wait", action="store_false", help="return once it is killed")
    kill.set_defaults(run=control, command="kill")
    restart = commands.add_parser("restart", parents=[common],
                                  help="SIGTERM one part (the worker drains, Temporal stops cleanly) and start it "
                                       "again at once; waits until it is up again")
    restart.add_argument("part")
    restart.set_defaults(run=control, command="restart", wait=True)

    vcsim = commands.add_parser("vcsim", parents=[common], help="steer the vCenter simulator (its control API)",
                                description="Steer the dev stack's vCenter simulator through its control API "
                                            "(VCSIM_CONTROL_URL in the env file; docs/testbed.md lists the routes). "
                                            "VM: a vSphere name (DC0_H0_VM0), its VirtualMachine name (dc0-h0-vm0), "
                                            "a moref (vm-57) or * for every VM.")
    steer = vcsim.add_subparsers(metavar="ACTION", required=True)
    hold = steer.add_parser("hold", parents=[common], help="the next snapshot task(s) stay running for DURATION "
                                                           "(progress rising) before they do their work")
    hold.add_argument("duration", help="e.g. 60s, 2m, 1m30s")
    _rule_options(hold)
    hold.set_defaults(run=vcsim_hold)
    fail = steer.add_parser("fail", parents=[common], help="the next snapshot task(s) fail with a vSphere fault")
    fail.add_argument("fault", help="a vSphere fault type, e.g. GenericVmConfigFault, NotFound, InvalidPowerState")
    fail.add_argument("--message", help="the task's error message (default: one like vSphere's)")
    _rule_options(fail)
    fail.set_defaults(run=vcsim_fail)
    tools = steer.add_parser("tools", parents=[common], help="VMware Tools running or not (quiesce needs them)")
    tools.add_argument("running", choices=("on", "off"))
    tools.add_argument("--vm", default="*", help="VM (default: every VM)")
    tools.set_defaults(run=vcsim_tools)
    steer.add_parser("rules", parents=[common], help="the faults and delays waiting to apply").set_defaults(
        run=vcsim_rules)
    steer.add_parser("clear", parents=[common], help="drop every fault and delay").set_defaults(run=vcsim_clear)
    steer.add_parser("vms", parents=[common], help="the simulator's VMs: vSphere name, moref, VirtualMachine "
                                                   "name").set_defaults(run=vcsim_vms)
    return parser


def _rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="create",
                        help="create (CreateSnapshotEx_Task, the default), revert (RevertToSnapshot_Task), delete "
                             "(RemoveSnapshot_Task) or another method the simulator can intercept")
    parser.add_argument("--vm", default="*", help="VM (default: whichever VM runs the task first)")
    parser.add_argument("--count", type=int, default=1, help="how many tasks (default 1; 0: every one until "
                                                             "`vmsnap-dev vcsim clear`)")


def _stack_dir(args: argparse.Namespace) -> Path:
    return args.dir or Path(os.environ.get("VMSNAP_DEV_DIR") or DEFAULT_DIR)


# --- the stack ----------------------------------------------------------------------------------------------------


def up(args: argparse.Namespace) -> int:
    from testbed.devcontrol import ControlServer, running
    from testbed.stack import Stack  # imported late so --help and the other commands work without the test bed
    from testbed.supervisor import Supervisor, kill_leftovers

    directory = (args.dir or DEFAULT_DIR).absolute()
    if running(directory):
        print(f"vmsnap-dev: a dev stack is already running in {directory} (vmsnap-dev --dir {directory} status); "
              "stop it first (Ctrl-C in its terminal) or use another --dir", file=sys.stderr)
        return 1
    killed = kill_leftovers(directory / "parts.json")
    if killed:
        print(f"vmsnap-dev: killed what a dev command that died without stopping left running in {directory} "
              f"(pids {', '.join(map(str, killed))})", file=sys.stderr)
    stack = Stack(directory, vms_per_pool=args.vms, free_ports=args.free_ports, temporal=args.temporal)
    stopping = threading.Event()
    server: ControlServer | None = None

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    # while starting, Ctrl-C and SIGTERM abort (even if SIGINT came ignored, as in a script's background job)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    try:
        stack.start()
        supervisor = Supervisor(stack.parts(), announce=lambda line: print(line, flush=True),
                                state_file=directory / "parts.json")
        supervisor.tick()  # parts.json, before anyone can ask
        server = ControlServer(directory, supervisor.submit).start()
        for sig in (signal.SIGINT, signal.SIGTERM):  # from now on the loop ends between two ticks
            signal.signal(sig, lambda *_: stopping.set())
        print(stack.describe(), flush=True)
        supervisor.run(stopping)
    except KeyboardInterrupt:
        pass
    except PartFailed as e:
        print(f"vmsnap-dev: {e}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not leave parts running
            signal.signal(sig, signal.SIG_IGN)
        print("vmsnap-dev: stopping every part", file=sys.stderr, flush=True)
        if server is not None:
            server.stop()
        try:
            stack.stop()
        except PartFailed as e:
            print(f"vmsnap-dev: {e}", file=sys.stderr)
        print("vmsnap-dev: stopped", file=sys.stderr, flush=True)
    return 0


# --- commands against the running stack ---------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    return _ask(_stack_dir(args), {"command": "status"})


def control(args: argparse.Namespace) -> int:
    return _ask(_stack_dir(args), {"command": args.command, "part": args.part, "wait": args.wait})


def _ask(directory: Path, body: dict) -> int:
    from testbed.devcontrol import NotRunning, request

    try:
        ok = request(directory, body, lambda line: print(line, flush=True))
    except NotRunning as e:
        print(f"vmsnap-dev: {e}", file=sys.stderr)
        return 2
    except TimeoutError:
        print("vmsnap-dev: no answer from the dev command in time (see its output)", file=sys.stderr)
        return 1
    return 0 if ok else 1


def _simulator(args: argparse.Namespace):
    """The running stack's simulator control API, from its env file (or VCSIM_CONTROL_URL)."""
    import shlex

    from testbed.vcsim import Control

    env_file = _stack_dir(args) / "env"
    url = None
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and words[1].startswith("VCSIM_CONTROL_URL="):
                url = words[1].split("=", 1)[1]
    url = url or os.environ.get("VCSIM_CONTROL_URL")
    if not url:
        raise SystemExit(f"vmsnap-dev: no dev stack in {_stack_dir(args)} (no env file) and VCSIM_CONTROL_URL "
                         "unset; start one with `make dev`")
    return Control(url)


def _vm(control, given: str) -> tuple[str, str]:
    """(the simulator's id for it, a readable name) of a VM named as vSphere, Kubernetes or a moref names it."""
    if given == "*":
        return "*", "any VM"
    from worker.vm_importer import kubernetes_name

    for name, moref in control.vms().items():
        if given in (name, moref, kubernetes_name(name)):
            return moref, f"{name} ({moref}, VirtualMachine {kubernetes_name(name)})"
    raise SystemExit(f"vmsnap-dev: the simulator has no VM {given!r} (vmsnap-dev vcsim vms lists them)")


def _task(given: str) -> str:
    return TASKS.get(given, given)


def _which(count: int, task: str) -> str:
    return f"every {task}" if count == 0 else f"the next {task}" if count == 1 else f"the next {count} {task}s"


def _steer(action):
    """Run one control call; the simulator's refusal (HTTP 4xx with its reason) is the command's error."""
    def run(args: argparse.Namespace) -> int:
        import urllib.error

        control = _simulator(args)
        try:
            print(action(args, control))
        except urllib.error.URLError as e:
            print(f"vmsnap-dev: the simulator's control API at {control.url} does not answer ({e.reason}): is the "
                  "dev stack running?", file=sys.stderr)
            return 1
        except (RuntimeError, OSError) as e:
            print(f"vmsnap-dev: {e}", file=sys.stderr)
            return 1
        return 0
    return run


@_steer
def vcsim_hold(args: argparse.Namespace, control) -> str:
    from api.duration import parse_duration_seconds

    try:
        seconds = float(parse_duration_seconds(args.duration, field="the duration"))
    except ValueError as e:
        raise SystemExit(f"vmsnap-dev: {e}") from None
    vm, which_vm = _vm(control, args.vm)
    task = _task(args.task)
    control.delay(task, vm, seconds, count=args.count)
    return (f"the simulator holds {_which(args.count, task)} on {which_vm} for {seconds:g}s (running, progress "
            "rising) before it does its work; `vmsnap-dev vcsim clear` drops the rule")


@_steer
def vcsim_fail(args: argparse.Namespace, control) -> str:
    vm, which_vm = _vm(control, args.vm)
    task = _task(args.task)
    control.inject_fault(task, vm, args.fault, args.message, count=args.count)
    return f"{_which(args.count, task)} on {which_vm} fails with {args.fault}"


@_steer
def vcsim_tools(args: argparse.Namespace, control) -> str:
    vm, which_vm = _vm(control, args.vm)
    control.set_tools_running(vm, args.running == "on")
    return f"VMware Tools {'running' if args.running == 'on' else 'not running'} on {which_vm.replace('any', 'every')}"


@_steer
def vcsim_rules(args: argparse.Namespace, control) -> str:
    return json.dumps(control.rules(), indent=1)


@_steer
def vcsim_clear(args: argparse.Namespace, control) -> str:
    control.clear()
    return "no faults or delays left"


@_steer
def vcsim_vms(args: argparse.Namespace, control) -> str:
    from worker.vm_importer import kubernetes_name

    rows = [("VSPHERE NAME", "MOREF", "VIRTUALMACHINE")]
    rows += [(name, moref, kubernetes_name(name)) for name, moref in sorted(control.vms().items())]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows)


if __name__ == "__main__":
    sys.exit(main())
