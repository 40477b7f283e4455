"""Per-operation overhead: create, revert and delete, N times each, one at a time, through the product
(Kubernetes object change → final condition) next to the same vCenter calls made directly with pyvmomi
against the same simulator in the same run, interleaved (direct call i, then product operation i).

    .venv/bin/python -m bench.overhead [--n 50] [--vms 10]

Product, from the moment the change is sent to the apiserver until the watch delivers the final state:
  create   create the VirtualMachineSnapshot            → its VirtualMachineSnapshotReady condition is True
  revert   set VirtualMachine spec.currentSnapshotName  → the field is gone and status.currentSnapshot names it
  delete   delete the VirtualMachineSnapshot            → the object is gone
Direct: CreateSnapshotEx_Task / RevertToSnapshot_Task / RemoveSnapshot_Task + pyVim.task.WaitForTask (vCenter
pushes the task's end through the PropertyCollector), on VMs of their own with the same snapshot chains.
Overhead = product − direct, per percentile. Target (issue #8): ≤ 150 ms at p50 and ≤ 500 ms at p99.
Where the product's time goes is read back from Temporal's histories (server timestamps).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyVim.connect import Disconnect
from pyVim.task import WaitForTask

from activities.vsphere.properties import virtual_machine
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL, SnapshotConditionType
from bench import harness as h
from contract.payloads import Operation, OperationKind, VMRef, vm_queue_workflow_id
from testbed.vms import create_vm, snapshot_manifest

NAMESPACE = "bench"
TARGET_P50, TARGET_P99 = 0.150, 0.500
KINDS = ("create", "revert", "delete")


@dataclass
class Op:
    kind: str
    vm: str            # VirtualMachine object name
    snapshot: str
    product_s: float = math.nan
    direct_s: float = math.nan
    t0_wall: float = 0.0
    end_wall: float = 0.0
    workflow_id: str = ""
    extra: dict = field(default_factory=dict)


class Direct:
    """The baseline: the same vCenter calls, made directly with pyvmomi on VMs of its own."""

    def __init__(self, vcsim, sim_vms: list[str], vcsim_cpu=lambda: 0.0):
        self.si = h.vcenter_connect(vcsim)
        morefs = vcsim.control.vms()
        self.vms = [virtual_machine(self.si, morefs[v]) for v in sim_vms]
        self.morefs = [morefs[v] for v in sim_vms]
        self.vcsim_cpu = vcsim_cpu
        # kind → [client CPU s (this thread: pyVmomi), vcsim CPU s, calls], lookups included
        self.cpu: dict[str, list[float]] = {k: [0.0, 0.0, 0] for k in KINDS}

    def _costed(self, kind: str, call) -> float:
        c0, v0 = time.thread_time(), self.vcsim_cpu()
        elapsed = call()
        cost = self.cpu[kind]
        cost[0] += time.thread_time() - c0
        cost[1] += self.vcsim_cpu() - v0
        cost[2] += 1
        return elapsed

    def create(self, i: int, name: str) -> float:
        def call() -> float:
            t = time.perf_counter()
            WaitForTask(self.vms[i].CreateSnapshotEx_Task(name=name, description="", memory=False, quiesceSpec=None),
                        si=self.si)
            return time.perf_counter() - t
        return self._costed("create", call)

    def revert(self, i: int, name: str) -> float:
        def call() -> float:
            snap = h.snapshot_by_name(self.si, self.morefs[i], name)
            t = time.perf_counter()
            WaitForTask(snap.RevertToSnapshot_Task(suppressPowerOn=False), si=self.si)
            return time.perf_counter() - t
        return self._costed("revert", call)

    def delete(self, i: int, name: str) -> float:
        def call() -> float:
            snap = h.snapshot_by_name(self.si, self.morefs[i], name)
            t = time.perf_counter()
            WaitForTask(snap.RemoveSnapshot_Task(removeChildren=False, consolidate=True), si=self.si)
            return time.perf_counter() - t
        return self._costed("delete", call)

    def close(self) -> None:
        Disconnect(self.si)


class Product:
    """The same operations through the Kubernetes API, timed by watch events."""

    def __init__(self, api, snapshots: h.ObjectWatch, vms: h.ObjectWatch, timeout: float):
        self.api, self.snapshots, self.vms, self.timeout = api, snapshots, vms, timeout
        self.custom = h.custom(api)

    def create(self, op: Op) -> None:
        t0, op.t0_wall = time.monotonic(), time.time()
        obj = self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, SNAPSHOT_PLURAL,
                                                          snapshot_manifest(op.snapshot, op.vm))
        t1, _ = self.snapshots.wait(op.snapshot, lambda k, o: h.condition_true(o, SnapshotConditionType.READY),
                                    since=t0, timeout=self.timeout, what="Ready")
        op.product_s, op.end_wall = t1 - t0, op.t0_wall + (t1 - t0)
        op.extra["uid"] = obj["metadata"]["uid"]
        op.workflow_id = Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=NAMESPACE, name=op.vm),
                                   snapshot_name=op.snapshot, snapshot_uid=obj["metadata"]["uid"]).workflow_id

    def revert(self, op: Op) -> None:
        t0, op.t0_wall = time.monotonic(), time.time()
        vm = h.patch_vm(self.api, NAMESPACE, op.vm, {"spec": {"currentSnapshotName": op.snapshot}})
        generation = vm["metadata"]["generation"]

        def reverted(kind: str, o: dict) -> bool:
            status = o.get("status") or {}
            return (o["metadata"].get("generation", 0) >= generation
                    and not (o.get("spec") or {}).get("currentSnapshotName")
                    and (status.get("currentSnapshot") or {}).get("name") == op.snapshot)
        t1, _ = self.vms.wait(op.vm, reverted, since=t0, timeout=self.timeout, what=f"reverted to {op.snapshot}")
        op.product_s, op.end_wall = t1 - t0, op.t0_wall + (t1 - t0)
        op.workflow_id = Operation(kind=OperationKind.REVERT, vm=VMRef(namespace=NAMESPACE, name=op.vm),
                                   snapshot_name=op.snapshot, vm_generation=generation).workflow_id

    def delete(self, op: Op, uid: str) -> None:
        t0, op.t0_wall = time.monotonic(), time.time()
        h.delete_snapshot(self.api, NAMESPACE, op.snapshot)
        t1, _ = self.snapshots.wait(op.snapshot, lambda k, o: k == "DELETED", since=t0, timeout=self.timeout,
                                    what="deleted")
        op.product_s, op.end_wall = t1 - t0, op.t0_wall + (t1 - t0)
        op.workflow_id = Operation(kind=OperationKind.DELETE, vm=VMRef(namespace=NAMESPACE, name=op.vm),
                                   snapshot_name=op.snapshot, snapshot_uid=uid).workflow_id


def plan(n: int, vms: int) -> list[tuple[int, int]]:
    """(VM index, position in that VM's chain) of operation i: round robin over the VMs."""
    return [(i % vms, i // vms) for i in range(n)]


def run(args: argparse.Namespace, workdir: Path) -> None:
    print(f"# overhead: {args.n} creates, reverts and deletes, one at a time, over {args.vms} VMs "
          f"(+ {args.vms} VMs for the direct baseline)\n# machine: {h.machine()}", flush=True)
    sim_needed = 2 * args.vms + 2  # product, direct, one warm-up VM each
    with h.BenchStack(workdir, vms_per_pool=math.ceil(sim_needed / 2), namespaces=[NAMESPACE],
                      temporal_on_disk=not args.temporal_in_memory, temporal_cluster=args.temporal_cluster) as stack:
        sims = sorted(stack.vcsim.control.vms())
        product_sims, direct_sims = sims[:args.vms + 1], sims[args.vms + 1:2 * args.vms + 2]
        names = [f"vm-{i:02d}" for i in range(args.vms)] + ["vm-warm"]
        h.parallel(lambda p: create_vm(stack.api, stack.vcsim, NAMESPACE, p[0], p[1]), zip(names, product_sims), 8)
        snapshots = h.ObjectWatch(stack.api, SNAPSHOT_PLURAL, NAMESPACE).start()
        vm_watch = h.ObjectWatch(stack.api, VM_PLURAL, NAMESPACE).start()
        product = stack.product(NAMESPACE)
        profile = {}
        if args.profile:
            profile = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "profile"),
                                                      product.env["PYTHONPATH"]]),
                       "VMSNAP_PROFILE_OUT": str(args.profile)}
        worker, bridge = product.start_worker(**profile), product.start_bridge()
        sampler = h.sample_processes(stack, worker=worker, bridge=bridge)
        meter = h.CpuMeter(sampler.pids)
        requests = h.RequestMeter(stack.api, stack.temporal_metrics_url())
        direct = Direct(stack.vcsim, direct_sims, vcsim_cpu=lambda: meter.cpu("vcsim"))
        through = Product(stack.api, snapshots, vm_watch, timeout=args.timeout)
        profilers = start_py_spy(args.py_spy, worker=worker.pid, bridge=bridge.pid) if args.py_spy else []
        try:
            ops, phases, request_phases = measure(args, direct, through, meter, requests)
        finally:
            stop_py_spy(profilers)
            direct.close()
            sampler.stop()
            snapshots.stop()
            vm_watch.stop()
        probe = recent_task_probe(stack.vcsim, product_sims[0])
        breakdown = asyncio.run(read_breakdown(stack, ops))
        if args.save_histories:
            asyncio.run(save_histories(stack, ops, args.save_histories))
        report(args, ops, breakdown, sampler, probe)
        print()
        print(h.cpu_per_op_table(phases, {k: tuple(v) for k, v in direct.cpu.items()}))  # type: ignore[misc]
        print()
        print(h.requests_per_op_table(request_phases))


Phases = dict[str, tuple[dict[str, float], dict[str, float], int]]


def measure(args, direct: Direct, through: Product, meter: h.CpuMeter, requests: h.RequestMeter
            ) -> tuple[dict[str, list[Op]], Phases, Phases]:
    warm = args.vms  # the warm-up VM's index in both lists
    # warm-up: the first operations pay for imports, sessions and connection set-up on every side
    for i in range(2):
        direct.create(warm, f"w{i}")
        through.create(Op("create", "vm-warm", f"w{i}"))
    direct.revert(warm, "w0")
    through.revert(Op("revert", "vm-warm", "w0"))
    uids = {}
    # the leaf first: removing the current snapshot while it is a root and another root remains makes the
    # simulator fail the task (a test bed bug, see bench/README.md); the measured phases never do that either
    for i in (1, 0):
        direct.delete(warm, f"w{i}")
        op = Op("delete", "vm-warm", f"w{i}")
        uid = h.custom(through.api).get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, SNAPSHOT_PLURAL,
                                                                 f"w{i}")["metadata"]["uid"]
        through.delete(op, uid)
    print("# warm-up done", flush=True)

    ops: dict[str, list[Op]] = {k: [] for k in KINDS}
    phases: Phases = {}
    request_phases: Phases = {}
    layout = plan(args.n, args.vms)
    for kind in KINDS:
        t_phase, cpu_before, requests_before = time.monotonic(), meter.read(), requests.read()
        for i, (v, pos) in enumerate(layout):
            name = f"s{pos:02d}-{v:02d}"
            op = Op(kind, f"vm-{v:02d}", name)
            if kind == "create":
                op.direct_s = direct.create(v, name)
                through.create(op)
                uids[name] = op.extra["uid"]
            elif kind == "revert":
                op.direct_s = direct.revert(v, name)
                through.revert(op)
            else:
                op.direct_s = direct.delete(v, name)
                through.delete(op, uids[name])
            ops[kind].append(op)
            if args.gap:
                time.sleep(args.gap)
        if args.gap:  # the last operation's background work (tree watch) belongs to this phase
            time.sleep(1.0)
        phases[kind] = (cpu_before, meter.read(), len(layout))
        request_phases[kind] = (requests_before, requests.read(), len(layout))
        print(f"# {kind}: {len(layout)} done in {time.monotonic() - t_phase:.0f}s", flush=True)
    return ops, phases, request_phases


def start_py_spy(out: Path, **pids: int) -> list:
    """`py-spy record` (sampling, non-blocking: the target is not paused) of each process over the measured
    phases, raw collapsed stacks into OUT/<name>.txt (summarise with `python -m bench.profile.pyspy_top`)."""
    import shutil
    import subprocess
    out.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking",
                              "--threads", "-o", str(out / f"{name}.txt")],
                             stdout=subprocess.DEVNULL, stderr=open(out / f"{name}.log", "w"))
            for name, pid in pids.items()]


def stop_py_spy(profilers: list) -> None:
    import signal
    for p in profilers:
        p.send_signal(signal.SIGINT)
    for p in profilers:
        try:
            p.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a stuck profiler must not keep the test bed up
            p.kill()


async def save_histories(stack: h.BenchStack, ops: dict[str, list[Op]], out: Path) -> None:
    """The first measured operation of each kind and its VM's queue, as Temporal's JSON histories (for the
    replay test: tests/workflows/histories/)."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    out.mkdir(parents=True, exist_ok=True)
    temporal = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    first = {kind: kind_ops[0] for kind, kind_ops in ops.items() if kind_ops}
    wanted = {f"{kind}.json": op.workflow_id for kind, op in first.items()}
    wanted["queue.json"] = vm_queue_workflow_id(VMRef(namespace=NAMESPACE, name=first["create"].vm))
    for file, workflow_id in wanted.items():
        history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        (out / file).write_text(history.to_json())
        print(f"# history of {workflow_id} → {out / file}")


def recent_task_probe(vcsim, sim_vm: str) -> tuple[int, float, int]:
    """How long the product's `running_snapshot_tasks` (run before every vCenter snapshot task) takes on a VM
    that has had the benchmark's tasks: (len(recentTask), seconds, SOAP round trips)."""
    from activities.vsphere.properties import retrieve
    from activities.vsphere.tasks import running_snapshot_tasks

    si = h.vcenter_connect(vcsim)
    try:
        vm = virtual_machine(si, vcsim.control.vms()[sim_vm])
        recent = len(retrieve(si, vm, ["recentTask"]).get("recentTask", []))
        calls, invoke = [0], si._stub.InvokeMethod

        def counted(*a, **kw):
            calls[0] += 1
            return invoke(*a, **kw)
        si._stub.InvokeMethod = counted
        t = time.perf_counter()
        running_snapshot_tasks(si, vm)
        elapsed = time.perf_counter() - t
        si._stub.InvokeMethod = invoke
        return recent, elapsed, calls[0]
    finally:
        Disconnect(si)


# --- where the time goes, from Temporal's histories -------------------------------------------------------------

async def read_breakdown(stack: h.BenchStack, ops: dict[str, list[Op]]) -> dict[str, dict[str, list[float]]]:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    temporal = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    vms = {op.vm for kind in ops.values() for op in kind}
    enqueued: dict[str, float] = {}
    for vm in vms:
        enqueued |= await h.enqueue_times(temporal, vm_queue_workflow_id(VMRef(namespace=NAMESPACE, name=vm)))
    out: dict[str, dict[str, list[float]]] = {}
    for kind, kind_ops in ops.items():
        seg: dict[str, list[float]] = {}
        for op in kind_ops:
            runs = await h.timelines(temporal, op.workflow_id)
            tl = next((r for r in runs if r.started), None)
            if tl is None or op.workflow_id not in enqueued:
                continue
            add = lambda k, v: seg.setdefault(k, []).append(v)  # noqa: E731
            t_enq = enqueued[op.workflow_id]
            add("bridge: change sent → op enqueued (signal-with-start)", t_enq - op.t0_wall)
            add("queue: enqueued → operation workflow started", tl.started - t_enq)
            done = [a for a in tl.activities if a["completed"] and a["started"] and a["started"] <= op.end_wall]
            wfts = [w for w in tl.workflow_tasks if w["completed"] and w["started"] <= op.end_wall]
            regular = [a for a in done if not a["local"]]
            v_exec = sum(a["completed"] - a["started"] for a in regular if a["type"].startswith("vsphere_"))
            k_exec = sum(a["completed"] - a["started"] for a in regular if a["type"].startswith("kube_"))
            dispatch = sum(a["started"] - a["scheduled"] for a in regular)
            wft_wait = sum(w["started"] - w["scheduled"] for w in wfts)
            wft_run = sum(w["completed"] - w["started"] for w in wfts)
            csi = 0.0
            request = next((a for a in done if a["type"] == "kube_request_csi_sync"), None)
            answer = next((t for t, name, _ in tl.signals if name == "csi_sync_completed"), None)
            if request and answer:
                csi = max(0.0, answer - request["completed"])
                add("CSI handshake: annotation written → bridge signals the answer", csi)
            add("vCenter activities (regular): run time (sum)", v_exec)
            add("Kubernetes activities (regular): run time (sum)", k_exec)
            add("regular activities: schedule → start (sum)", dispatch)
            add("workflow tasks: schedule → start (sum)", wft_wait)
            add("workflow tasks: start → complete, with their local activities (sum)", wft_run)
            add("count: regular activities", len(regular) / 1000)
            add("count: local activities", (len(done) - len(regular)) / 1000)
            add("count: workflow tasks", len(wfts) / 1000)
            rest = (op.product_s - (t_enq - op.t0_wall) - (tl.started - t_enq) - v_exec - k_exec - dispatch - csi
                    - wft_wait - wft_run)
            add("rest: between recorded steps, watch delivery", rest)
            for a in done:
                # a local activity's share of its workflow task (see harness.local_activity)
                add(f"  {a['type']}{' (local)' if a['local'] else ''}", a["completed"] - a["started"])
        out[kind] = seg
    return out


# --- report -------------------------------------------------------------------------------------------------------

def report(args, ops: dict[str, list[Op]], breakdown, sampler: h.ProcSampler, probe: tuple[int, float, int]) -> None:
    rows, verdicts = [], []
    for kind in KINDS:
        p = [o.product_s for o in ops[kind]]
        d = [o.direct_s for o in ops[kind]]
        for q in (50, 95, 99):
            prod, base = h.percentile(p, q), h.percentile(d, q)
            rows.append([f"{kind} p{q}", h.ms(prod), h.ms(base), h.ms(prod - base)])
        o50 = h.percentile(p, 50) - h.percentile(d, 50)
        o99 = h.percentile(p, 99) - h.percentile(d, 99)
        ok = o50 <= TARGET_P50 and o99 <= TARGET_P99
        verdicts.append(f"{kind:<7} overhead p50 {h.ms(o50)} ms (target ≤ {h.ms(TARGET_P50)}: "
                        f"{'met' if o50 <= TARGET_P50 else f'missed by {h.ms(o50 - TARGET_P50)} ms'}), "
                        f"p99 {h.ms(o99)} ms (target ≤ {h.ms(TARGET_P99)}: "
                        f"{'met' if o99 <= TARGET_P99 else f'missed by {h.ms(o99 - TARGET_P99)} ms'})"
                        f"{'' if ok else '  → NOT MET'}")
    print()
    print(h.table(["operation (n=%d)" % args.n, "product ms", "direct pyvmomi ms", "overhead ms"], rows,
                  "## CR change → final condition, vs the same vCenter task called directly"))
    print("\n## target (issue #8): overhead ≤ 150 ms at p50 and ≤ 500 ms at p99 (overhead = product − direct, "
          "per percentile)")
    for v in verdicts:
        print("  " + v)
    for kind in KINDS:
        seg = breakdown.get(kind) or {}
        brows = [[k, h.ms(statistics.median(v)), h.ms(h.percentile(v, 95))] if not k.startswith("count")
                 else [k, f"{statistics.median(v) * 1000:.0f}", f"{h.percentile(v, 95) * 1000:.0f}"]
                 for k, v in seg.items()]
        print()
        print(h.table([f"{kind}: where the time goes (Temporal history)", "median ms", "p95 ms"], brows))
    print()
    print(h.table(h.ProcSampler.TABLE_HEADERS,
                  sampler.table(["worker", "bridge", "bench (this process, CSI stand-in)", "temporal", "kube-apiserver",
                                 "etcd", "kube-controller-manager", "vcsim",
                                 "temporal-history", "temporal-matching", "temporal-worker", "postgres"]),
                  "## processes over the measured run (/proc)"))
    print(sampler.load_line())
    print(f"\nrunning_snapshot_tasks() (before every vCenter snapshot task) on a VM with {probe[0]} tasks in "
          f"recentTask: {h.ms(probe[1])} ms ({probe[2]} round trip{'s' if probe[2] != 1 else ''})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="operations of each kind (default 50)")
    parser.add_argument("--vms", type=int, default=10,
                        help="VMs the operations are spread over, round robin (default 10: chains of n/vms)")
    parser.add_argument("--gap", type=float, default=0.25,
                        help="pause between operations, so background work of one does not land in the next "
                             "(default 0.25 s; not measured)")
    parser.add_argument("--timeout", type=float, default=120, help="hang guard per operation (default 120 s)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="profile the worker's main thread (workflow tasks, SDK) with pyinstrument into FILE "
                             "(needs `.venv/bin/pip install pyinstrument`)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample the worker and the bridge with py-spy over the measured phases (raw stacks "
                             "into DIR; py-spy is in the test extra)")
    parser.add_argument("--save-histories", type=Path, metavar="DIR",
                        help="write the first create/revert/delete and its VM's queue as JSON histories into DIR")
    return h.bench_main(run, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
