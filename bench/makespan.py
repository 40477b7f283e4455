"""Batch makespan: M snapshot creates over V VMs, then reverts, then the M deletes, with the simulator holding each
vCenter task for a set time (modelling vCenter), through the product; next to the ideal makespan of the same work
and to the same work done directly with pyvmomi (one thread per VM, same cap) in the same run.

    .venv/bin/python -m bench.makespan [--ops 60] [--vms 15] [--create-delay 2] [--revert-delay 3]
                                       [--remove-delay 2] [--slots 8] [--cap N]

Phases (each starts when the previous one is finished):
  create   all M VirtualMachineSnapshots created at once (M/V per VM)          → all Ready
  revert   per VM, spec.currentSnapshotName set to each of its snapshots in turn (a VM has one such field, so a
           VM's reverts are requested one after the other, each when the previous one finished) → all reverted
  delete   all M deleted at once                                               → all gone
Ideal per phase = max over VMs of the sum of that VM's vCenter task durations (measured by the direct run); under a
global cap C on concurrent vCenter tasks, the lower bound max(that, total task time / C).
The product caps vCenter snapshot tasks deployment-wide at replicas × VMSNAP_VCENTER_TASK_SLOTS (default 8): here
one worker, so C = --slots unless --cap says otherwise. The ratio is against the capped bound (the product cannot
beat its own cap); the uncapped ideal is printed too. The direct baseline honours the same cap (a semaphore).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

from pyVim.connect import Disconnect
from pyVim.task import WaitForTask

from activities.vsphere.properties import virtual_machine
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL, SnapshotConditionType
from bench import harness as h
from contract.payloads import VMRef, vm_queue_workflow_id
from runtime.settings import Settings
from testbed.vms import create_vm, snapshot_manifest

NAMESPACE = "bench"
TARGET_RATIO = 1.10
PHASES = ("create", "revert", "delete")
METHODS = {"create": ("CreateSnapshotEx_Task", "CreateSnapshot_Task"), "revert": ("RevertToSnapshot_Task",),
           "delete": ("RemoveSnapshot_Task",)}


def layout(ops: int, vms: int) -> dict[int, list[str]]:
    """VM index → its snapshot names, round robin."""
    per_vm: dict[int, list[str]] = defaultdict(list)
    for i in range(ops):
        per_vm[i % vms].append(f"s{i // vms:02d}-{i % vms:03d}")
    return per_vm


# --- the baseline: the same work, directly --------------------------------------------------------------------

def direct_batch(vcsim, sims: list[str], per_vm: dict[int, list[str]], cap: int | None) -> dict[str, dict]:
    """Each VM's tasks in one thread of its own (its own session), phase by phase with a barrier between:
    per-VM serialised, concurrent across VMs up to `cap` tasks at once, no overhead beyond pyvmomi. Returns per
    phase the makespan and every task's duration by VM."""
    morefs = vcsim.control.vms()
    slots = threading.Semaphore(cap or len(per_vm))
    out = {p: {"makespan": 0.0, "durations": defaultdict(list)} for p in PHASES}
    barrier = threading.Barrier(len(per_vm) + 1)
    errors: list[BaseException] = []

    def one_vm(v: int) -> None:
        si = h.vcenter_connect(vcsim)
        try:
            vm = virtual_machine(si, morefs[sims[v]])
            names = per_vm[v]
            steps = {"create": [lambda n=n: vm.CreateSnapshotEx_Task(name=n, description="", memory=False,
                                                                     quiesceSpec=None) for n in names],
                     "revert": [lambda n=n: h.snapshot_by_name(si, morefs[sims[v]], n).RevertToSnapshot_Task(
                         suppressPowerOn=False) for n in revert_order(names, names[-1])],
                     "delete": [lambda n=n: h.snapshot_by_name(si, morefs[sims[v]], n).RemoveSnapshot_Task(
                         removeChildren=False, consolidate=True) for n in names]}
            for phase in PHASES:
                barrier.wait()
                for start_task in steps[phase]:
                    with slots:
                        t = time.perf_counter()
                        WaitForTask(start_task(), si=si)
                        out[phase]["durations"][v].append(time.perf_counter() - t)
                barrier.wait()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
            barrier.abort()
        finally:
            Disconnect(si)

    threads = [threading.Thread(target=one_vm, args=(v,), daemon=True) for v in per_vm]
    for t in threads:
        t.start()
    try:
        for phase in PHASES:
            barrier.wait()
            t0 = time.monotonic()
            barrier.wait()
            out[phase]["makespan"] = time.monotonic() - t0
    except threading.BrokenBarrierError:
        raise RuntimeError(f"direct baseline failed: {errors[0] if errors else '?'}") from None
    for t in threads:
        t.join()
    return out


def revert_order(names: list[str], current: str) -> list[str]:
    """Every snapshot once, the current one last: no revert is to the snapshot the VM is already on, and the VM
    ends on its newest snapshot (the chain's leaf), so the deletes never remove a current root while other roots
    remain (which the simulator fails: see bench/README.md)."""
    return [n for n in names if n != current] + [current]


def ideal(durations: dict[int, list[float]], cap: int | None) -> float:
    per_vm = max((sum(d) for d in durations.values()), default=0.0)
    if not cap:
        return per_vm
    return max(per_vm, sum(sum(d) for d in durations.values()) / cap)


# --- the product ----------------------------------------------------------------------------------------------

def product_batch(api, snapshots: h.ObjectWatch, vm_watch: h.ObjectWatch, per_vm: dict[int, list[str]],
                  timeout: float, marks: dict[str, tuple[float, float]]) -> dict[str, float]:
    custom = h.custom(api)
    makespan: dict[str, float] = {}
    names = [(v, n) for pos in range(max(len(x) for x in per_vm.values()))
             for v, x in sorted(per_vm.items()) if pos < len(x) for n in [x[pos]]]

    def ready(kind, o):
        return h.condition_true(o, SnapshotConditionType.READY)

    # create: all at once; round by round (every VM's first, then every VM's second...), so that each VM's
    # creates reach the apiserver, and so the VM's queue, in chain order
    t0 = time.monotonic()
    for pos in range(max(len(x) for x in per_vm.values())):
        h.parallel(lambda vn: custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, SNAPSHOT_PLURAL, snapshot_manifest(vn[1], f"vm-{vn[0]:03d}")),
            [(v, x[pos]) for v, x in sorted(per_vm.items()) if pos < len(x)], 8)
    ends = h.parallel(lambda vn: snapshots.wait(vn[1], ready, since=t0, timeout=timeout, what="Ready")[0], names, 64)
    makespan["create"] = max(ends) - t0
    marks["create"] = (t0, max(ends))
    print(f"# product create: {makespan['create']:.1f}s", flush=True)

    # revert: each VM walks through its snapshots, one request after the other
    def revert_vm(v: int) -> float:
        vm_name = f"vm-{v:03d}"
        current = ((vm_watch.events[vm_name][-1][2].get("status") or {}).get("currentSnapshot") or {}).get("name")
        end = time.monotonic()
        for target in revert_order(per_vm[v], current or per_vm[v][-1]):
            sent = time.monotonic()
            patched = h.patch_vm(api, NAMESPACE, vm_name, {"spec": {"currentSnapshotName": target}})
            gen = patched["metadata"]["generation"]

            def reverted(kind, o, target=target, gen=gen):
                return (o["metadata"].get("generation", 0) >= gen
                        and not (o.get("spec") or {}).get("currentSnapshotName")
                        and ((o.get("status") or {}).get("currentSnapshot") or {}).get("name") == target)
            end, _ = vm_watch.wait(vm_name, reverted, since=sent, timeout=timeout, what=f"reverted to {target}")
        return end

    # the tree watch writes status.currentSnapshot shortly after the creates: wait until every VM shows its leaf
    for v, x in per_vm.items():
        vm_watch.wait(f"vm-{v:03d}", lambda k, o, leaf=x[-1]: ((o.get("status") or {}).get("currentSnapshot") or {})
                      .get("name") == leaf, since=0, timeout=timeout, what="current snapshot = newest")
    t0 = time.monotonic()
    ends = h.parallel(revert_vm, sorted(per_vm), len(per_vm))
    makespan["revert"] = max(ends) - t0
    marks["revert"] = (t0, max(ends))
    print(f"# product revert: {makespan['revert']:.1f}s", flush=True)

    # delete: all at once, each VM's in chain order
    t0 = time.monotonic()
    h.parallel(lambda vn: h.delete_snapshot(api, NAMESPACE, vn[1]), names, 8)
    ends = h.parallel(lambda vn: snapshots.wait(vn[1], lambda k, o: k == "DELETED", since=t0, timeout=timeout,
                                                what="deleted")[0], names, 64)
    makespan["delete"] = max(ends) - t0
    marks["delete"] = (t0, max(ends))
    print(f"# product delete: {makespan['delete']:.1f}s", flush=True)
    return makespan


def run(args: argparse.Namespace, workdir: Path) -> None:
    per_vm = layout(args.ops, args.vms)
    delays = {"create": args.create_delay, "revert": args.revert_delay, "delete": args.remove_delay}
    args.cap = args.cap or args.slots  # one worker
    print(f"# makespan: {args.ops} creates, {args.ops} reverts and {args.ops} deletes over {args.vms} VMs; vCenter "
          f"task times create {delays['create']}s, revert {delays['revert']}s, remove {delays['delete']}s; one "
          f"worker with VMSNAP_VCENTER_TASK_SLOTS={args.slots}, cap {args.cap}\n# machine: {h.machine()}", flush=True)
    with h.BenchStack(workdir, vms_per_pool=math.ceil((2 * args.vms + 1) / 2), namespaces=[NAMESPACE],
                      temporal_on_disk=not args.temporal_in_memory) as stack:
        sims = sorted(stack.vcsim.control.vms())
        product_sims, direct_sims, warm_sim = sims[:args.vms], sims[args.vms:2 * args.vms], sims[2 * args.vms]
        vm_names = [f"vm-{v:03d}" for v in range(args.vms)]
        h.parallel(lambda p: create_vm(stack.api, stack.vcsim, NAMESPACE, p[0], p[1]),
                   list(zip(vm_names, product_sims)) + [("vm-warm", warm_sim)], 8)
        snapshots = h.ObjectWatch(stack.api, SNAPSHOT_PLURAL, NAMESPACE).start()
        vm_watch = h.ObjectWatch(stack.api, VM_PLURAL, NAMESPACE).start()
        product = stack.product(NAMESPACE, VMSNAP_VCENTER_TASK_SLOTS=str(args.slots))
        worker, bridge = product.start_worker(), product.start_bridge()
        sampler = h.sample_processes(stack, worker=worker, bridge=bridge)
        try:
            # warm-up (no delays): imports, sessions, connections
            custom = h.custom(stack.api)
            t = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, SNAPSHOT_PLURAL,
                                                   snapshot_manifest("warm", "vm-warm"))
            snapshots.wait("warm", lambda k, o: h.condition_true(o, SnapshotConditionType.READY), since=t)
            h.delete_snapshot(stack.api, NAMESPACE, "warm")
            snapshots.wait("warm", lambda k, o: k == "DELETED", since=t)

            control = stack.vcsim.control
            for sim in product_sims + direct_sims:
                for phase, methods in METHODS.items():
                    for method in methods:
                        control.delay(method, sim, delays[phase], count=0)
            t_direct = time.monotonic()
            direct = direct_batch(stack.vcsim, direct_sims, per_vm, args.cap)
            print("# direct: " + ", ".join(f"{p} {direct[p]['makespan']:.1f}s" for p in PHASES), flush=True)
            direct_span = (t_direct, time.monotonic())
            marks: dict[str, tuple[float, float]] = {}
            product_span = product_batch(stack.api, snapshots, vm_watch, per_vm, args.timeout, marks)
        finally:
            sampler.stop()
            snapshots.stop()
            vm_watch.stop()
        critical, steps = asyncio.run(critical_path(stack, per_vm, marks))
        report(args, per_vm, direct, product_span, marks, direct_span, sampler, critical, steps)


TASK_ACTIVITY = {"create": "vsphere_create_snapshot", "revert": "vsphere_revert_snapshot",
                 "delete": "vsphere_remove_snapshot"}


async def critical_path(stack: h.BenchStack, per_vm, marks) -> tuple[dict, dict]:
    """Per VM and phase, from Temporal's histories: when its vCenter snapshot tasks ran (the activity that waits for
    the task), so the makespan splits into: phase start → first task, each task, the gaps between a VM's tasks
    (its queue is held by non-vCenter steps), last task → phase end."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    temporal = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    wall = time.time() - time.monotonic()  # monotonic → epoch
    out: dict[str, dict[str, list[float]]] = {p: defaultdict(list) for p in PHASES}
    steps: dict[str, dict[str, list[float]]] = {p: defaultdict(list) for p in PHASES}  # inside the operations
    for v in per_vm:
        vm = VMRef(namespace=NAMESPACE, name=f"vm-{v:03d}")
        order = sorted((t, wid) for wid, t in (await h.enqueue_times(temporal, vm_queue_workflow_id(vm))).items())
        windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for _, wid in order:
            kind = {"create-snapshot": "create", "revert-snapshot": "revert", "delete-snapshot": "delete"}[
                wid.split("/", 1)[0]]
            for tl in await h.timelines(temporal, wid):
                add = steps[kind]
                if tl.started and tl.closed:
                    add["operation workflow: start → close"].append(tl.closed - tl.started)
                add["workflow tasks: schedule → start (sum per operation)"].append(
                    sum(w["started"] - w["scheduled"] for w in tl.workflow_tasks if w["started"]))
                add["workflow tasks: start → complete, with their local activities (sum per operation)"].append(
                    sum(w["completed"] - w["started"] for w in tl.workflow_tasks if w["completed"]))
                for a in tl.activities:
                    if a["local"]:  # its share of its workflow task (see harness.local_activity)
                        add[f"{a['type']} (local): run"].append(a["completed"] - a["started"])
                    elif a["started"] and a["completed"]:
                        add[f"{a['type']}: schedule → start"].append(a["started"] - a["scheduled"])
                        add[f"{a['type']}: run"].append(a["completed"] - a["started"])
                for a in tl.activities:
                    if a["type"] == TASK_ACTIVITY[kind] and a["started"] and a["completed"]:
                        windows[kind].append((a["scheduled"], a["started"], a["completed"]))
        for phase in PHASES:
            w = sorted(windows[phase])
            if not w:
                continue
            t0, t1 = (m + wall for m in marks[phase])
            seg = out[phase]
            seg["phase start → VM's first task asked for"].append(w[0][0] - t0)
            seg["waiting for a vCenter task slot"].extend(b - a for a, b, _ in w)
            seg["task activity (task + wait for it)"].extend(c - b for _, b, c in w)
            seg["a VM's task done → its next one asked for"].extend(b[0] - a[2] for a, b in zip(w, w[1:]))
            seg["VM's last task → phase end"].append(t1 - w[-1][2])
    return out, steps


def report(args, per_vm, direct, product, marks, direct_span, sampler: h.ProcSampler, critical, steps) -> None:
    rows = []
    totals = defaultdict(float)
    for phase in PHASES:
        durations = direct[phase]["durations"]
        uncapped, capped = ideal(durations, None), ideal(durations, args.cap)
        n = sum(len(d) for d in durations.values())
        rows.append([phase, n, f"{uncapped:.1f}", f"{capped:.1f}", f"{direct[phase]['makespan']:.1f}",
                     f"{product[phase]:.1f}", f"{product[phase] / capped:.2f}×", f"{product[phase] / uncapped:.2f}×"])
        for k, v in (("uncapped", uncapped), ("capped", capped), ("direct", direct[phase]["makespan"]),
                     ("product", product[phase])):
            totals[k] += v
    rows.append(["total", sum(len(d) for p in PHASES for d in direct[p]["durations"].values()),
                 f"{totals['uncapped']:.1f}", f"{totals['capped']:.1f}", f"{totals['direct']:.1f}",
                 f"{totals['product']:.1f}", f"{totals['product'] / totals['capped']:.2f}×",
                 f"{totals['product'] / totals['uncapped']:.2f}×"])
    print()
    print(h.table(["phase", "vCenter tasks", "ideal s (per-VM serial, no cap)", f"ideal s (cap {args.cap})",
                   f"direct pyvmomi s (cap {args.cap})", "product s", "product / ideal (cap)",
                   "product / ideal (no cap)"], rows,
                  "## makespan: the product vs the ideal and vs the same work done directly"))
    ratio = totals["product"] / totals["capped"]
    print(f"\n## target (issue #8): makespan ≤ {TARGET_RATIO:.2f}× ideal (under the cap of {args.cap}): "
          + ("met" if ratio <= TARGET_RATIO else f"NOT MET ({ratio:.2f}×, {100 * (ratio - TARGET_RATIO):.0f} points "
                                                   f"over; {totals['product'] - TARGET_RATIO * totals['capped']:.1f} s "
                                                   "longer than allowed)"))
    per_vm_n = {p: max(len(d) for d in direct[p]['durations'].values()) for p in PHASES}
    print(f"   (per VM: {per_vm_n['create']} creates, {per_vm_n['revert']} reverts, {per_vm_n['delete']} deletes; "
          f"direct task time medians: " + ", ".join(
              f"{p} {h.ms(h.percentile([x for d in direct[p]['durations'].values() for x in d], 50))} ms"
              for p in PHASES) + ")")
    rows = []
    for phase in PHASES:
        for key, values in critical[phase].items():
            if values:
                rows.append([f"{phase}: {key}", h.ms(h.percentile(values, 50)), h.ms(h.percentile(values, 95)),
                             h.ms(max(values)), len(values)])
    print()
    print(h.table(["where a VM's time goes (Temporal histories)", "median ms", "p95 ms", "max ms", "n"], rows,
                  "## the per-VM critical path in the product"))
    rows = []
    for phase in PHASES:
        for key, values in sorted(steps[phase].items(), key=lambda kv: (not kv[0].startswith(("operation", "workflow")),
                                                                         -h.percentile(kv[1], 50))):
            rows.append([f"{phase}: {key}", h.ms(h.percentile(values, 50)), h.ms(h.percentile(values, 95)),
                         h.ms(max(values)), len(values)])
    print()
    print(h.table(["inside the operation workflows (Temporal histories)", "median ms", "p95 ms", "max ms", "n"],
                  rows, "## steps of the operations, by activity"))
    names = ["worker", "bridge", "bench (this process, CSI stand-in)", "temporal", "kube-apiserver", "etcd", "vcsim"]
    rows, floors, busy = [], [], []
    for name in names:
        row = [name]
        for phase in PHASES:
            st = sampler.stats(name, *marks[phase])
            n = sum(len(d) for d in direct[phase]["durations"].values())
            row.append(f"{1000 * st['cpu_s'] / n:.0f}" if st else "")
            row.append(f"{st['cpu_mean']:.0f}" if st else "")
        st = sampler.stats(name, *direct_span) if name in ("vcsim", "bench (this process, CSI stand-in)") else None
        row.append(f"{1000 * st['cpu_s'] / sum(len(d) for p in PHASES for d in direct[p]['durations'].values()):.0f}"
                   if st else "")
        rows.append(row)
    cores = os.cpu_count() or 1
    for phase in PHASES:
        ours = sum((sampler.stats(n, *marks[phase]) or {}).get("cpu_s", 0.0) for n in names)
        floors.append(ours / cores)
        busy.append(sampler.machine_busy(*marks[phase]) or float("nan"))
    rows.append(["CPU floor s (all of the above / cores)"] + [x for f in floors for x in (f"{f:.0f}", "")] + [""])
    rows.append(["measured makespan s"] + [x for p in PHASES for x in (f"{product[p]:.0f}", "")] + [""])
    rows.append(["machine busy % (all users)"] + [x for b in busy for x in (f"{b:.0f}", "")] + [""])
    headers = ["process"] + [x for p in PHASES for x in (f"{p}: CPU ms/op", "mean %core")] + ["direct run: CPU ms/task"]
    print()
    print(h.table(headers, rows, "## CPU per operation, by process (/proc); the machine has "
                                 f"{cores} cores"))
    for phase in PHASES:
        print(f"{phase}: " + sampler.load_line(*marks[phase]))
    first = min(m[0] for m in marks.values())
    last = max(m[1] for m in marks.values())
    print()
    for name in ("worker", "bridge"):
        st = sampler.stats(name, first, last)
        if st:
            print(f"{name}: peak CPU {st['cpu_peak']:.0f}% of a core (1 s window), mean {st['cpu_mean']:.0f}%, "
                  f"peak RSS {st['rss_peak']:.0f} MB over the product phases")
    print(f"direct baseline run: {sampler.load_line(*direct_span)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.makespan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=60,
                        help="snapshots created (and reverted to, and deleted); default 60, about 5 minutes on 2 "
                             "cores (issue's example: 120; its large run: 1000)")
    parser.add_argument("--vms", type=int, default=15, help="VMs they are spread over (default 15; 30; large: 250)")
    parser.add_argument("--create-delay", type=float, default=2.0, help="seconds vCenter takes per create (2)")
    parser.add_argument("--revert-delay", type=float, default=3.0, help="seconds per revert (3)")
    parser.add_argument("--remove-delay", type=float, default=2.0, help="seconds per remove (2)")
    parser.add_argument("--slots", type=int, default=Settings.model_fields["vcenter_task_slots"].default,
                        help="the worker's VMSNAP_VCENTER_TASK_SLOTS (default: the product's default, %(default)s)")
    parser.add_argument("--cap", type=int, default=None,
                        help="global cap on concurrent vCenter tasks for the ideal and the direct baseline "
                             "(default: --slots, as one worker enforces it)")
    parser.add_argument("--timeout", type=float, default=900, help="hang guard per operation (default 900 s)")
    return h.bench_main(run, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
