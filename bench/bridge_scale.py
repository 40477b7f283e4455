"""Bridge scale: K VirtualMachineSnapshot objects over V VirtualMachines already in the apiserver, no worker (so no
vCenter work); a bridge starts cold. Measured: cold start → caught up, steady CPU and RSS, and the latency from a
new object to its operation reaching the VM's queue workflow under a burst of B new objects. Side by side, the
same work without the bridge in the same run: a bare list of the objects, a bare process with the bridge's
imports, and the same signal-with-start calls made directly.

    .venv/bin/python -m bench.bridge_scale [--snapshots 2000] [--vms 500] [--burst 200]

Two populations, each in its own namespace, each with a bridge of its own (started one after the other):
  ready    the objects as a finished create leaves them (finalizer, label, status Created/CSISynced/Ready True,
           CSI annotation completed): the bridge lists them and decides there is nothing to do.
  pending  the objects as just applied (no status): the bridge enqueues a create for every one (K signal-with-
           starts into V queue workflows; with no worker they stay queued).
Caught up: the bridge's own log line "bridge caught up" (written once every change of its first lists is
handled; its dispatcher handles different VMs in parallel, so no single object is handled last). Cross-checked by
polling the bridge's vmsnap_bridge_events counter until it reaches K+V+1. A sentinel VirtualMachine (name sorting
last, created last, spec.currentSnapshotName set) is still the last object the lists hand over; the time Temporal
records its revert is a lower bound.
Change → start: the burst's objects are created (16 threads) while the `ready` bridge is caught up; latency is
from the create call's return to the WorkflowExecutionSignaled event of that operation in the VM's queue workflow
(the operation is in Temporal; with a worker the queue would start it right away). Server event times; same host
clock. Targets (issue #8): caught up < 30 s, RSS < 100 MB, p99 change → start < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from api.names import (
    CSI_VOLUME_SYNC_ANNOTATION,
    GROUP,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_PLURAL,
    VERSION,
    VM_NAME_LABEL,
    VM_PLURAL,
)
from bench import harness as h
from contract.payloads import Operation, OperationKind, VMRef, vm_queue_workflow_id
from testbed.vms import STORAGE_CLASS, snapshot_manifest

TARGET_CAUGHT_UP, TARGET_RSS_MB, TARGET_P99 = 30.0, 100.0, 1.0
SENTINEL_VM = "zz-sentinel"
BURST_END = "zz-burst-end"
SENTINEL_GENERATION: dict[str, int] = {}
CAUGHT_UP = "spawn → caught up (bridge log)"


def vm_manifest(name: str, i: int, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"powerState": "PoweredOn", "storageClass": STORAGE_CLASS, "className": "best-effort-small",
                     "imageName": "photon-5", **spec}}


def vm_status(i: int) -> dict:
    return {"status": {"uniqueID": f"vm-{1000 + i}", "instanceUUID": f"00000000-0000-4000-8000-{i:012d}",
                       "biosUUID": f"00000000-0000-4000-9000-{i:012d}", "powerState": "PoweredOn",
                       "hardware": {"memory": {"total": "32Mi"}},
                       "volumes": [{"name": "disk-0", "type": "Classic", "requested": "10Gi"}]}}


def ready_status(i: int) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = lambda t: {"type": t, "status": "True", "reason": "True", "message": "",  # noqa: E731
                      "lastTransitionTime": now, "observedGeneration": 1}
    return {"status": {"uniqueID": f"snapshot-{i}", "powerState": "PoweredOff", "quiesced": False,
                       "storage": {"requested": [{"storageClass": STORAGE_CLASS, "total": "10Gi"}], "used": "16809984"},
                       "observedGeneration": 1,
                       "conditions": [cond("VirtualMachineSnapshotCSISynced"), cond("VirtualMachineSnapshotCreated"),
                                      cond("VirtualMachineSnapshotReady")]}}


def populate(api, ns: str, k: int, v: int, ready: bool) -> float:
    """V VMs, K snapshots round robin over them, then the sentinel VM (last, so last in the bridge's list)."""
    custom = h.custom(api)
    t = time.monotonic()
    vms = [f"vm-{i:04d}" for i in range(v)]

    def make_vm(i: int) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, VM_PLURAL, vm_manifest(vms[i], i))
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, VM_PLURAL, vms[i], vm_status(i))

    def make_snapshot(i: int) -> None:
        vm = vms[i % v]
        body = snapshot_manifest(f"snap-{i:05d}", vm)
        if ready:
            body["metadata"] |= {"finalizers": [SNAPSHOT_FINALIZER], "labels": {VM_NAME_LABEL: vm},
                                 "annotations": {CSI_VOLUME_SYNC_ANNOTATION: "completed"}}
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, SNAPSHOT_PLURAL, body)
        if ready:
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, SNAPSHOT_PLURAL, f"snap-{i:05d}",
                                                         ready_status(i))

    h.parallel(make_vm, range(v), 16)
    h.parallel(make_snapshot, range(k), 16)
    time.sleep(1.1)  # creationTimestamp has whole seconds: the sentinel's is then later than every other object's
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, VM_PLURAL, vm_manifest(SENTINEL_VM, v))
    # (the CRD refuses a VM created with currentSnapshotName: set it afterwards)
    patched = h.patch_vm(api, ns, SENTINEL_VM, {"spec": {"currentSnapshotName": "sentinel"}})
    SENTINEL_GENERATION[ns] = patched["metadata"]["generation"]
    return time.monotonic() - t


async def enqueued(temporal, ns: str, vm: str) -> dict[str, float]:
    return await h.enqueue_times(temporal, vm_queue_workflow_id(VMRef(namespace=ns, name=vm)))


async def wait_enqueued(temporal, ns: str, vm: str, workflow_id: str, timeout: float) -> float:
    """Server time at which the VM's queue received this operation (polls until it has)."""
    from temporalio.service import RPCError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            times = await enqueued(temporal, ns, vm)
            if workflow_id in times:
                return times[workflow_id]
        except RPCError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{workflow_id} not enqueued in {timeout:.0f}s")


def sentinel_op(ns: str) -> str:
    return Operation(kind=OperationKind.REVERT, vm=VMRef(namespace=ns, name=SENTINEL_VM), snapshot_name="sentinel",
                     vm_generation=SENTINEL_GENERATION[ns]).workflow_id


def scrape_events(port: str) -> float | None:
    """Sum of the bridge's vmsnap_bridge_events counter (changes handled), or None if not served."""
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = None
    for line in text.splitlines():
        if line.startswith("vmsnap_bridge_events_total{"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


class ColdStart:
    def __init__(self, mode: str):
        self.mode = mode
        self.figures: dict[str, float] = {}
        self.resources: dict[str, dict] = {}


def cold_start(stack: h.BenchStack, loop, temporal, sampler: h.ProcSampler, ns: str, mode: str, k: int, v: int,
               args) -> tuple[ColdStart, object]:
    out = ColdStart(mode)
    product = stack.product(ns)
    sampler.watch_child(f"bridge ({mode})", "bridge.main")
    t_spawn_wall, t_spawn = time.time(), time.monotonic()
    bridge = product.start_bridge()  # returns when the bridge prints "bridge running" (its lists are handed over)
    t_running = time.monotonic()
    port = (bridge.env or {}).get("VMSNAP_METRICS_PORT")
    expected = k + v + 1  # SYNC events of the two lists
    metric_t = None
    while time.monotonic() - t_spawn < args.timeout:
        handled = scrape_events(port) if port else None
        if handled is None or handled >= expected:
            metric_t = time.monotonic() if handled is not None else None
            break
        time.sleep(0.05)
    t_sentinel = loop.run_until_complete(wait_enqueued(temporal, ns, SENTINEL_VM, sentinel_op(ns), args.timeout))
    caught = None
    while caught is None and time.monotonic() - t_spawn < args.timeout:
        caught = next((h.parse_log_time(line) for line in bridge.log.read_text(errors="replace").splitlines()
                       if "bridge caught up" in line), None)
        if caught is None:
            time.sleep(0.05)
    listed = next((h.parse_log_time(line) for line in bridge.log.read_text(errors="replace").splitlines()
                   if "bridge watching" in line), None)
    out.figures["spawn → lists handed over (log line)"] = (listed - t_spawn_wall) if listed else float("nan")
    out.figures["spawn → 'bridge running' seen"] = t_running - t_spawn
    if metric_t is not None:
        out.figures[f"spawn → {expected} changes handled (metrics poll)"] = metric_t - t_spawn
    out.figures["spawn → sentinel's revert in Temporal"] = t_sentinel - t_spawn_wall
    out.figures[CAUGHT_UP] = (caught - t_spawn_wall) if caught else float("nan")
    t_caught = t_spawn + ((caught or t_sentinel) - t_spawn_wall)
    out.resources["cold start"] = sampler.stats(f"bridge ({mode})", t_spawn, max(t_caught, t_spawn + 0.5)) or {}
    time.sleep(args.steady_seconds)
    out.resources["steady"] = sampler.stats(f"bridge ({mode})", time.monotonic() - args.steady_seconds,
                                            time.monotonic()) or {}
    if mode == "pending":
        async def count() -> tuple[int, float, float]:
            times: dict[str, float] = {}
            for i in range(v):
                times |= await enqueued(temporal, ns, f"vm-{i:04d}")
            return len(times), min(times.values(), default=0.0), max(times.values(), default=0.0)
        n, first, last = loop.run_until_complete(count())
        out.figures["creates enqueued (of K)"] = n
        out.figures["first → last enqueue"] = last - first
        out.figures["enqueue rate (/s)"] = n / (last - first) if last > first else float("nan")
    return out, product


def burst(stack: h.BenchStack, loop, temporal, ns: str, b: int, v: int, timeout: float) -> list[float]:
    """B new (un-Ready) objects at once; returns each one's change → enqueued latency in seconds."""
    custom = h.custom(stack.api)
    created: dict[str, tuple[str, float]] = {}

    def make(i: int) -> None:
        name, vm = f"burst-{i:05d}", f"vm-{i % v:04d}"
        obj = custom.create_namespaced_custom_object(GROUP, VERSION, ns, SNAPSHOT_PLURAL, snapshot_manifest(name, vm))
        created[name] = (obj["metadata"]["uid"], time.time())

    h.parallel(make, range(b), 16)
    end = custom.create_namespaced_custom_object(GROUP, VERSION, ns, SNAPSHOT_PLURAL,
                                                 snapshot_manifest(BURST_END, "vm-0000"))
    end_op = Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=ns, name="vm-0000"), snapshot_name=BURST_END,
                       snapshot_uid=end["metadata"]["uid"]).workflow_id
    loop.run_until_complete(wait_enqueued(temporal, ns, "vm-0000", end_op, timeout))

    wids = {i: Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=ns, name=f"vm-{i % v:04d}"),
                         snapshot_name=f"burst-{i:05d}", snapshot_uid=created[f"burst-{i:05d}"][0]).workflow_id
            for i in range(b)}

    async def collect() -> dict[str, float]:
        # the end marker's VM is handled in parallel with the others: read until every operation is there
        times: dict[str, float] = {}
        missing, deadline = set(range(b)), time.monotonic() + timeout
        while missing and time.monotonic() < deadline:
            for vm_i in sorted({i % v for i in missing}):
                times |= await enqueued(temporal, ns, f"vm-{vm_i:04d}")
            missing = {i for i in missing if wids[i] not in times}
            if missing:
                await asyncio.sleep(0.5)
        return times
    times = loop.run_until_complete(collect())
    latencies = []
    for i in range(b):
        t_created = created[f"burst-{i:05d}"][1]
        latencies.append(times[wids[i]] - t_created if wids[i] in times else float("inf"))
    return latencies


# --- baselines: the same work without the bridge ---------------------------------------------------------------

def bare_list(stack: h.BenchStack, ns: str) -> tuple[float, int, float]:
    """A plain list of the snapshots with the same client: seconds, objects, mean JSON bytes per object."""
    import json

    t = time.monotonic()
    items = h.custom(stack.api).list_namespaced_custom_object(GROUP, VERSION, ns, SNAPSHOT_PLURAL)["items"]
    took = time.monotonic() - t
    return took, len(items), sum(len(json.dumps(o)) for o in items) / max(1, len(items))


def bare_process_rss() -> tuple[float, float]:
    """RSS (MB) of a Python process that imports what the bridge imports and connects nowhere; and its start time."""
    code = ("import time; t=time.monotonic(); import bridge.main, kubernetes, temporalio.client; "
            "print(time.monotonic() - t, flush=True); time.sleep(3)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(Path(__file__).parent.parent))
    out = p.stdout.readline()  # noqa: F841 - wait until imported
    time.sleep(0.5)
    sample = h.read_proc(p.pid)
    p.wait()
    return (sample[1] / 1024 if sample else float("nan")), float(out or "nan")


async def direct_signal_with_start(temporal, b: int, concurrency: int) -> tuple[list[float], float]:
    """The bridge's call (signal-with-start of a VM queue) made directly, b times over distinct VMs; on a task queue
    nobody polls. Returns per-call latencies and the wall time for all."""
    from contract.payloads import QueueState

    sem = asyncio.Semaphore(concurrency)
    tag = f"direct-{concurrency}"
    latencies: list[float] = []

    async def one(i: int) -> None:
        vm = VMRef(namespace=tag, name=f"vm-{i:05d}")
        op = Operation(kind=OperationKind.CREATE, vm=vm, snapshot_name=f"s-{i}", snapshot_uid=f"uid-{i}")
        async with sem:
            t = time.perf_counter()
            await temporal.start_workflow("VirtualMachineSnapshotQueue", QueueState(vm=vm),
                                          id=vm_queue_workflow_id(vm), task_queue="vmsnap-bench-nobody",
                                          start_signal="enqueue", start_signal_args=[op])
            latencies.append(time.perf_counter() - t)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(b)))
    return latencies, time.perf_counter() - t


# --- the run ------------------------------------------------------------------------------------------------------

def run(args: argparse.Namespace, workdir: Path) -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    modes = ["ready", "pending"] if args.mode == "both" else [args.mode]
    print(f"# bridge scale: {args.snapshots} snapshots over {args.vms} VMs per population ({', '.join(modes)}), "
          f"burst {args.burst}\n# machine: {h.machine()}", flush=True)
    namespaces = {m: f"scale-{m}" for m in modes}
    with h.BenchStack(workdir, vms_per_pool=None, csi=False, namespaces=list(namespaces.values()),
                      temporal_on_disk=not args.temporal_in_memory, temporal_cluster=args.temporal_cluster) as stack:
        loop = asyncio.new_event_loop()
        sampler = h.ProcSampler()
        for name, pid in stack.server_pids().items():
            sampler.watch(name, pid)
        sampler.start()
        try:
            temporal = loop.run_until_complete(Client.connect(stack.temporal.address,
                                                              data_converter=pydantic_data_converter))
            for mode, ns in namespaces.items():
                took = populate(stack.api, ns, args.snapshots, args.vms, ready=mode == "ready")
                print(f"# {mode}: {args.snapshots} snapshots + {args.vms} VMs created in {took:.0f}s", flush=True)
            results, burst_latencies, burst_resources = [], None, None
            for mode, ns in namespaces.items():
                cold, product = cold_start(stack, loop, temporal, sampler, ns, mode, args.snapshots, args.vms, args)
                results.append(cold)
                print(f"# {mode}: caught up in {cold.figures[CAUGHT_UP]:.1f}s",
                      flush=True)
                if mode == "ready" and args.burst:
                    t = time.monotonic()
                    burst_latencies = burst(stack, loop, temporal, ns, args.burst, args.vms, args.timeout)
                    burst_resources = sampler.stats("bridge (ready)", t, time.monotonic())
                product.stop()
            bare_list_fig = bare_list(stack, namespaces[modes[0]])
            bare_rss, bare_import_s = bare_process_rss()
            direct_seq, direct_seq_wall = loop.run_until_complete(
                direct_signal_with_start(temporal, args.burst or 200, 1))
            direct_par, direct_par_wall = loop.run_until_complete(
                direct_signal_with_start(temporal, args.burst or 200, 16))
        finally:
            sampler.stop()
            loop.close()
        report(args, results, burst_latencies, burst_resources, bare_list_fig, (bare_rss, bare_import_s),
               (direct_seq, direct_seq_wall), (direct_par, direct_par_wall), sampler)


def verdict(ok: bool, how: str) -> str:
    return "met" if ok else f"NOT MET ({how})"


def report(args, results: list[ColdStart], burst_latencies, burst_resources, bare_list_fig, bare_proc, direct_seq,
           direct_par, sampler) -> None:
    print()
    rows = []
    keys = list(dict.fromkeys(k for r in results for k in r.figures))
    for key in keys:
        row = [key]
        for r in results:
            v = r.figures.get(key)
            row.append("" if v is None else (f"{v:.0f}" if "enqueued (of" in key or "rate" in key else f"{v:.2f}"))
        rows.append(row)
    for phase, label in (("cold start", "cold start"), ("steady", f"steady ({args.steady_seconds:.0f} s idle)")):
        rows.append([f"{label}: peak RSS MB (anon + file)"] + [
            f"{r.resources[phase].get('rss_peak', 0):.0f} ({r.resources[phase].get('anon_peak', 0):.0f} + "
            f"{r.resources[phase].get('file_peak', 0):.0f})" for r in results])
        rows.append([f"{label}: CPU s / mean % of a core"] + [
            f"{r.resources[phase].get('cpu_s', 0):.1f} / {r.resources[phase].get('cpu_mean', 0):.0f}%"
            for r in results])
    print(h.table(["bridge, cold start (s unless noted)"] + [f"{r.mode}: K={args.snapshots}, V={args.vms}"
                                                            for r in results], rows,
                  "## cold start → caught up, then steady"))
    bare_rss, bare_import = bare_proc
    rows = [[f"list of {bare_list_fig[1]} snapshots ({args.mode if args.mode != 'both' else 'ready'}), python "
             f"client", f"{bare_list_fig[0]:.2f} s"],
            ["  mean JSON size of one of them", f"{bare_list_fig[2] / 1024:.1f} KB"],
            ["python process with the bridge's imports: import time", f"{bare_import:.2f} s"],
            ["python process with the bridge's imports: RSS", f"{bare_rss:.0f} MB"]]
    for r in results:
        cached = args.snapshots + args.vms + 1
        extra = r.resources["steady"].get("rss_last", float("nan")) - bare_rss
        rows.append([f"{r.mode}: steady RSS above that, per cached object ({cached})",
                     f"{extra:.0f} MB, {extra * 1024 / cached:.1f} KB each"])
    print()
    print(h.table(["baseline (same run, no bridge)", "value"], rows))
    if burst_latencies:
        lat = burst_latencies
        ds, ds_wall = direct_seq
        dp, dp_wall = direct_par
        rows = [[f"p{q}", h.ms(h.percentile(lat, q)), h.ms(h.percentile(ds, q)), h.ms(h.percentile(dp, q))]
                for q in (50, 95, 99)]
        rows.append(["max", h.ms(max(lat)), h.ms(max(ds)), h.ms(max(dp))])
        span = max(lat)  # the last one is enqueued after the whole burst
        rows.append(["all B done (s)", f"{span:.2f}", f"{ds_wall:.2f}", f"{dp_wall:.2f}"])
        rows.append(["throughput (/s)", f"{len(lat) / span:.0f}" if span > 0 else "n/a", f"{len(ds) / ds_wall:.0f}",
                     f"{len(dp) / dp_wall:.0f}"])
        print()
        print(h.table([f"burst of {len(lat)} new objects", "bridge: change → enqueued ms",
                       "direct signal-with-start ms (1 at a time)", "direct, 16 at a time ms"], rows,
                      "## change → operation in Temporal, under a burst (ready population, bridge caught up)"))
        if burst_resources:
            print(f"bridge during the burst: peak CPU {burst_resources['cpu_peak']:.0f}% of a core, "
                  f"peak RSS {burst_resources['rss_peak']:.0f} MB")
    print("\n## targets (issue #8)")
    for r in results:
        cu = r.figures[CAUGHT_UP]
        rss = r.resources["steady"].get("rss_last", float("nan"))
        print(f"  {r.mode:<8} caught up {cu:.1f} s (< {TARGET_CAUGHT_UP:.0f} s: "
              f"{verdict(cu < TARGET_CAUGHT_UP, f'{cu - TARGET_CAUGHT_UP:.1f} s over')}); steady RSS {rss:.0f} MB "
              f"(< {TARGET_RSS_MB:.0f} MB: {verdict(rss < TARGET_RSS_MB, f'{rss - TARGET_RSS_MB:.0f} MB over')})")
    if burst_latencies:
        p99 = h.percentile(burst_latencies, 99)
        print(f"  burst    p99 change → start {h.ms(p99)} ms (< {h.ms(TARGET_P99)} ms: "
              f"{verdict(p99 < TARGET_P99, f'{h.ms(p99 - TARGET_P99)} ms over')})")
    print()
    print(h.table(h.ProcSampler.TABLE_HEADERS, sampler.table(
        [f"bridge ({r.mode})" for r in results] + ["temporal", "kube-apiserver", "etcd"]),
        "## processes over the whole run (/proc; includes populating the apiserver)"))
    print(sampler.load_line())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bridge_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=2000, help="K objects per population (default 2000; "
                                                                    "issue's large run: 10000)")
    parser.add_argument("--vms", type=int, default=500, help="V VMs they are spread over (default 500; large: 2500)")
    parser.add_argument("--burst", type=int, default=200, help="B new objects at once (default 200; large: 1000)")
    parser.add_argument("--mode", choices=("both", "ready", "pending"), default="both",
                        help="which populations (default both; the burst runs on `ready`)")
    parser.add_argument("--steady-seconds", type=float, default=10, help="idle window for steady CPU/RSS (10)")
    parser.add_argument("--timeout", type=float, default=600, help="hang guard (default 600 s)")
    return h.bench_main(run, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
