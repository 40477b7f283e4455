"""What the benchmarks share: the test bed (the real servers, started the way `make dev` and the product fixture
start them), the product's worker and bridge as processes, CPU and memory sampled from /proc, Kubernetes objects
timed by watch events (the moment a change arrived, not the moment a poll noticed it), what Temporal recorded,
percentiles and tables.

Every script runs its parts inside `BenchStack` (a context manager): everything it started is stopped on exit,
on an error and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL
from runtime.search_attributes import DEV_SERVER_SEARCH_ATTRIBUTES
from testbed.csi_driver import CSIDriverStandIn
from testbed.kube import ControlPlane, install_crds, product_crd_files
from testbed.process import PartFailed, repo_root
from testbed.product import Product
from testbed.temporal import TemporalDevServer
from testbed.temporal_cluster import TemporalCluster
from testbed.vcsim import VCSim

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the test bed -------------------------------------------------------------------------------------------------

class BenchStack:
    """Temporal dev server, kube-apiserver (+ etcd, controller-manager) with our CRDs, optionally the vCenter
    simulator and the CSI driver stand-in; the product's worker(s) and bridge(s) through tests' `Product`."""

    def __init__(self, workdir: Path, *, vms_per_pool: int | None = None, csi: bool = True,
                 temporal_on_disk: bool = True, namespaces: Sequence[str] = ("bench",),
                 temporal_cluster: bool = False):
        self.dir = workdir
        self.vms_per_pool = vms_per_pool
        self.with_csi = csi
        self.temporal_on_disk = temporal_on_disk
        self.temporal_cluster = temporal_cluster  # the four-service cluster on PostgreSQL instead of the dev server
        self.namespaces = list(namespaces)
        self.temporal: TemporalDevServer | TemporalCluster | None = None
        self.kube: ControlPlane | None = None
        self.vcsim: VCSim | None = None
        self.csi: CSIDriverStandIn | None = None
        self.api: client.ApiClient | None = None
        self.products: list[Product] = []
        self.task_queue = f"vmsnap-bench-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> "BenchStack":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """The servers start side by side (kube-apiserver is the slow one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.temporal = TemporalCluster(self.dir / "temporal-cluster", search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES) \
            if self.temporal_cluster else TemporalDevServer(
                self.dir / "temporal", db_file=self.dir / "temporal.db" if self.temporal_on_disk else None,
                search_attributes=DEV_SERVER_SEARCH_ATTRIBUTES)
        self.kube = ControlPlane(self.dir / "kube")
        parts: list[Callable[[], object]] = [self.temporal.start, self.kube.start]
        if self.vms_per_pool:
            self.vcsim = VCSim(self.dir / "vcsim", vms_per_pool=self.vms_per_pool)
            parts.append(self.vcsim.start)
        with ThreadPoolExecutor(len(parts)) as pool:
            for future in [pool.submit(p) for p in parts]:
                future.result()
        self.api = config.new_client_from_config(str(self.kube.kubeconfig))
        self.api.configuration.connection_pool_maxsize = 32
        install_crds(self.api, product_crd_files())
        core = client.CoreV1Api(self.api)
        for ns in self.namespaces:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        if self.with_csi:
            self.csi = CSIDriverStandIn(self.api).start()

    def product_env(self, namespace: str, **extra: str) -> dict[str, str]:
        """The product fixture's environment (tests/fixtures/product.py `product_env`), for this stack."""
        assert self.kube and self.temporal
        env = {"KUBECONFIG": str(self.kube.kubeconfig), "TEMPORAL_ADDRESS": self.temporal.address,
               "VMSNAP_WATCH_NAMESPACE": namespace, "VMSNAP_TASK_QUEUE": self.task_queue,
               "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS": "5", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(repo_root()), os.environ.get("PYTHONPATH", "")])}
        if self.vcsim is not None:
            env |= {"VSPHERE_URL": self.vcsim.url, "VSPHERE_INSECURE": "true"}
        return env | extra

    def product(self, namespace: str, **extra: str) -> Product:
        """A `Product` (tests/fixtures/product.py): start_worker() / start_bridge() as real processes."""
        running = Product(self.dir / f"product-{len(self.products)}", self.product_env(namespace, **extra))
        self.products.append(running)
        return running

    def temporal_metrics_url(self) -> str | None:
        """The dev server's Prometheus endpoint (the cluster's services are not read)."""
        if isinstance(self.temporal, TemporalDevServer):
            return f"http://127.0.0.1:{self.temporal.metrics_port}/metrics"
        return None

    def server_pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if isinstance(self.temporal, TemporalCluster):  # "temporal" = the frontend; the others by service
            for svc, p in self.temporal.processes.items():
                if p.alive():
                    pids["temporal" if svc == "frontend" else f"temporal-{svc}"] = p.pid
            if self.temporal.postgres.process and self.temporal.postgres.process.alive():
                pids["postgres"] = self.temporal.postgres.process.pid
        elif self.temporal and self.temporal.process and self.temporal.process.alive():
            pids["temporal"] = self.temporal.process.pid
        for p in self.kube.processes if self.kube else []:
            if p.alive():
                pids[p.part] = p.pid
        if self.vcsim and self.vcsim.process and self.vcsim.process.alive():
            pids["vcsim"] = self.vcsim.process.pid
        return pids

    def stop(self) -> None:
        """Stop everything that was started, each part on its own (one failing to stop does not keep the others
        running); Ctrl-C is ignored meanwhile, so a second one cannot leave processes behind."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for product in self.products:
                _quietly(product.stop)
            if self.csi is not None:
                _quietly(self.csi.stop)
            for part in (self.vcsim, self.kube, self.temporal):
                if part is not None:
                    _quietly(part.stop)
        finally:
            signal.signal(signal.SIGINT, previous)


def _quietly(stop: Callable[[], None]) -> None:
    try:
        stop()
    except Exception as e:  # noqa: BLE001 - keep stopping the rest
        print(f"  (while stopping: {e})", file=sys.stderr)


def bench_main(run: Callable[[argparse.Namespace, Path], None], parser: argparse.ArgumentParser,
               argv: list[str] | None = None) -> int:
    """Parse flags, make the work directory, run; SIGTERM acts as Ctrl-C. Exit status 0 unless the test bed
    itself broke (a missed target is reported, never an error)."""
    parser.add_argument("--dir", type=Path, help="work directory for logs and state (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory after a successful run")
    parser.add_argument("--temporal-in-memory", action="store_true",
                        help="dev server without its SQLite file (default: on disk, as `make dev`)")
    parser.add_argument("--temporal-cluster", action="store_true",
                        help="Temporal as four services on PostgreSQL (testbed/temporal_cluster.py) instead of the "
                             "dev server")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix=f"vmsnap-{parser.prog.replace('.', '-')}-"))

    def terminate(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)
    print(f"# logs and state: {workdir}", flush=True)
    try:
        run(args, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    except PartFailed as e:
        print(f"the test bed failed: {e}", file=sys.stderr)
        return 2
    if not args.keep and not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


# --- /proc sampling -------------------------------------------------------------------------------------------

class ProcSampler:
    """Samples CPU time and memory of named processes (and the machine's CPU) every `interval` seconds."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, float, int, int, int]]] = defaultdict(list)  # t, cpu_s, rss,anon,file
        self.machine: list[tuple[float, int, int]] = []  # t, busy ticks, total ticks
        self._pending: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def watch_child(self, name: str, needle: str) -> None:
        """Bind `name` to the next child process of ours whose command line contains `needle`, as soon as it
        exists (so its start-up is sampled too)."""
        self._pending[name] = needle

    def _discover(self) -> None:
        me, bound = os.getpid(), set(self.pids.values())
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in bound:
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if ppid != me:
                continue
            for name, needle in list(self._pending.items()):
                if needle in cmdline:
                    self.pids[name] = int(entry.name)
                    del self._pending[name]
                    break

    def start(self) -> "ProcSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._pending:
                self._discover()
            t = time.monotonic()
            for name, pid in list(self.pids.items()):
                sample = read_proc(pid)
                if sample is not None:
                    self.samples[name].append((t, *sample))
            with contextlib.suppress(OSError):
                fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
                total, idle = sum(fields[:8]), fields[3] + fields[4]
                self.machine.append((t, total - idle, total))
            self._stop.wait(self.interval)

    def stats(self, name: str, t0: float = 0.0, t1: float = float("inf")) -> dict[str, float] | None:
        """cpu_s (CPU seconds used), cpu_mean (% of one core), cpu_peak (% of one core, best 1 s window),
        rss_peak / rss_last / anon_peak / file_peak (MB) within [t0, t1]."""
        s = [x for x in self.samples.get(name, []) if t0 <= x[0] <= t1]
        if len(s) < 2:
            return None
        peak, j = 0.0, 0
        for i in range(len(s)):
            while j < len(s) and s[j][0] - s[i][0] < 1.0:
                j += 1
            if j >= len(s):
                break
            peak = max(peak, (s[j][1] - s[i][1]) / (s[j][0] - s[i][0]))
        span = s[-1][0] - s[0][0]
        mb = 1 / 1024
        return {"cpu_s": s[-1][1] - s[0][1], "cpu_mean": 100 * (s[-1][1] - s[0][1]) / span if span else 0.0,
                "cpu_peak": 100 * peak, "rss_peak": max(x[2] for x in s) * mb, "rss_last": s[-1][2] * mb,
                "anon_peak": max(x[3] for x in s) * mb, "file_peak": max(x[4] for x in s) * mb}

    def machine_busy(self, t0: float = 0.0, t1: float = float("inf")) -> float | None:
        """Share of all cores busy in [t0, t1], in %."""
        m = [x for x in self.machine if t0 <= x[0] <= t1]
        if len(m) < 2 or m[-1][2] == m[0][2]:
            return None
        return 100 * (m[-1][1] - m[0][1]) / (m[-1][2] - m[0][2])

    def load_line(self, t0: float = 0.0, t1: float = float("inf")) -> str:
        """How busy the machine was, and how much of that was not the processes sampled here (other users)."""
        m = [x for x in self.machine if t0 <= x[0] <= t1]
        if len(m) < 2 or m[-1][2] == m[0][2]:
            return "machine load: n/a"
        cores = os.cpu_count() or 1
        wall = m[-1][0] - m[0][0]
        busy_core_s = (m[-1][1] - m[0][1]) / CLK_TCK
        ours = sum((st or {}).get("cpu_s", 0.0) for st in (self.stats(n, t0, t1) for n in self.pids))
        pct = lambda core_s: 100 * core_s / (wall * cores)  # noqa: E731
        return (f"machine: {pct(busy_core_s):.0f}% of {cores} cores busy over {wall:.0f} s; the processes above "
                f"{pct(ours):.0f}%, everything else (other users of the machine) "
                f"{pct(max(0.0, busy_core_s - ours)):.0f}%")

    def table(self, names: Iterable[str], t0: float = 0.0, t1: float = float("inf")) -> list[list[str]]:
        rows = []
        for name in names:
            st = self.stats(name, t0, t1)
            if st is None:
                continue
            rows.append([name, f"{st['cpu_s']:.1f}", f"{st['cpu_mean']:.0f}", f"{st['cpu_peak']:.0f}",
                         f"{st['rss_peak']:.0f}", f"{st['anon_peak']:.0f}", f"{st['file_peak']:.0f}"])
        return rows

    TABLE_HEADERS = ["process", "CPU s", "mean %core", "peak %core (1 s)", "peak RSS MB", "anon MB", "file MB"]


def read_proc(pid: int) -> tuple[float, int, int, int] | None:
    """(CPU seconds user+system, RSS kB, RssAnon kB, RssFile kB) of a live process, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)
    mem = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            mem[key] = int(value.split()[0])
    return cpu, mem.get("VmRSS", 0), mem.get("RssAnon", 0), mem.get("RssFile", 0)


class CpuMeter:
    """CPU seconds (user + system, /proc/<pid>/stat) of named processes, read at chosen moments: the exact CPU
    a phase cost each process, far less noisy on a shared machine than wall-clock figures."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)

    def read(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            sample = read_proc(pid)
            if sample is not None:
                out[name] = sample[0]
        return out

    def cpu(self, name: str) -> float:
        sample = read_proc(self.pids[name]) if name in self.pids else None
        return sample[0] if sample is not None else 0.0


class RequestMeter:
    """Requests served, from the servers' own counters: the kube-apiserver's `apiserver_request_total` (by verb
    and resource) and Temporal's `service_requests` (by RPC; the frontend's are the clients' calls, the rest
    the server's calls between its own services). Unlike CPU, these counts do not move with the machine's load.
    The apiserver's include the benchmark's own requests (the user's change, the CSI stand-in's answer)."""

    def __init__(self, api: client.ApiClient, temporal_metrics_url: str | None):
        self.api = api
        self.temporal_metrics_url = temporal_metrics_url

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        response = self.api.call_api(*self.api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"]))
        response.read()
        for labels, value in prometheus_counter(response.data.decode(), "apiserver_request_total"):
            if labels.get("verb") in ("WATCH", "CONNECT"):
                continue  # long-running: counted when they start, not per operation
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            code = labels.get("code", "")
            key = f"kube {labels.get('verb')} {labels.get('resource')}{sub}"
            key += "" if code.startswith("2") else f" → {code}"
            out[key] = out.get(key, 0.0) + value
        if self.temporal_metrics_url:
            import urllib.request
            with urllib.request.urlopen(self.temporal_metrics_url, timeout=10) as r:
                text = r.read().decode()
            for labels, value in prometheus_counter(text, "service_requests"):
                service = labels.get("service_name", "")
                key = f"temporal {labels.get('operation')}" if service == "frontend" else "temporal (internal, all)"
                out[key] = out.get(key, 0.0) + value
        return out


def prometheus_counter(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of one counter in Prometheus' text format."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head))
        yield labels, float(value)


def requests_per_op_table(phases: dict[str, tuple[dict[str, float], dict[str, float], int]],
                          minimum: float = 0.2) -> str:
    """Requests per operation by kind of request, per phase (rows under `minimum` in every phase left out)."""
    names = list(phases)
    delta = {p: {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after} for p, (before, after, _) in phases.items()}
    keys = sorted({k for d in delta.values() for k in d})
    rows = []
    for system in ("kube", "temporal"):
        shown = [k for k in keys if k.startswith(system + " ")
                 and any(delta[p].get(k, 0.0) / max(1, phases[p][2]) >= minimum for p in names)]
        for k in shown:
            rows.append([k] + [f"{delta[p].get(k, 0.0) / max(1, phases[p][2]):.1f}" for p in names])
        rows.append([f"**{system}: all**"] + [
            f"{sum(v for k, v in delta[p].items() if k.startswith(system + ' ')) / max(1, phases[p][2]):.1f}"
            for p in names])
    return table(["requests per operation"] + names, rows,
                 "## Requests per operation (the servers' own counters; kube includes the user's change and the "
                 "CSI stand-in)")


# the processes whose CPU is the product's cost of an operation (summed); the others are shown apart
PRODUCT_PROCESSES = ("temporal", "worker", "bridge", "kube-apiserver")
APART_PROCESSES = ("etcd", "kube-controller-manager", "vcsim", "bench (this process, CSI stand-in)")


def cpu_per_op_table(phases: dict[str, tuple[dict[str, float], dict[str, float], int]],
                     direct: dict[str, tuple[float, float, int]]) -> str:
    """Headline table: CPU ms per operation by process, and their sum, per phase; `phases` maps a phase to (CPU
    at its start, at its end, operations); `direct` maps it to (client CPU s, vcsim CPU s, calls) of the direct
    pyVmomi baseline in the same run. The vcsim row of the product is the phase's vcsim CPU less the direct
    calls' share."""
    names = list(phases)
    delta = {p: {n: after.get(n, 0.0) - before.get(n, 0.0) for n in after} for p, (before, after, _) in phases.items()}
    per_op = lambda p, seconds: 1000 * seconds / max(1, phases[p][2])  # noqa: E731
    rows = []
    for name in PRODUCT_PROCESSES:
        rows.append([name] + [f"{per_op(p, delta[p].get(name, 0.0)):.0f}" for p in names])
    rows.append(["**sum (temporal + worker + bridge + apiserver)**"]
                + [f"{per_op(p, sum(delta[p].get(n, 0.0) for n in PRODUCT_PROCESSES)):.0f}" for p in names])
    for name in APART_PROCESSES:
        values = []
        for p in names:
            seconds = delta[p].get(name, 0.0)
            if name == "vcsim" and p in direct:
                seconds -= direct[p][1]
            values.append(f"{per_op(p, seconds):.0f}")
        rows.append([f"{name}{' (product share)' if name == 'vcsim' else ''}"] + values)
    rows.append(["direct pyVmomi: client"] + [f"{1000 * direct[p][0] / max(1, direct[p][2]):.0f}" if p in direct
                                              else "" for p in names])
    rows.append(["direct pyVmomi: vcsim"] + [f"{1000 * direct[p][1] / max(1, direct[p][2]):.0f}" if p in direct
                                             else "" for p in names])
    return table(["CPU ms per operation"] + names, rows,
                 "## CPU per operation (/proc/<pid>/stat before and after each phase; 10 ms ticks, summed)")


# --- Kubernetes objects, timed by watch ---------------------------------------------------------------------------

class ObjectWatch:
    """List + watch of one custom resource in one namespace, in a thread. Every event is kept with the monotonic
    time it arrived, so `wait` returns when a condition first became true, independent of any poll interval."""

    def __init__(self, api: client.ApiClient, plural: str, namespace: str):
        self.custom = client.CustomObjectsApi(api)
        self.plural, self.namespace = plural, namespace
        self.events: dict[str, list[tuple[float, str, dict]]] = defaultdict(list)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{plural}", daemon=True)

    def start(self) -> "ObjectWatch":
        self._thread.start()
        if not self._listed.wait(30):
            raise RuntimeError(f"could not list {self.plural}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _record(self, kind: str, obj: dict) -> None:
        t = time.monotonic()
        with self._cond:
            self.events[obj["metadata"]["name"]].append((t, kind, obj))
            self._cond.notify_all()

    def _run(self) -> None:
        rv: str | None = None
        args = (GROUP, VERSION, self.namespace, self.plural)
        while not self._stop.is_set():
            try:
                if rv is None:
                    listing = self.custom.list_namespaced_custom_object(*args)
                    present = {o["metadata"]["name"] for o in listing["items"]}
                    with self._cond:
                        gone = [n for n, evs in self.events.items() if evs[-1][1] != "DELETED" and n not in present]
                    for name in gone:  # deleted while we were re-listing
                        self._record("DELETED", {"metadata": {"name": name}})
                    for obj in listing["items"]:
                        self._record("SYNC", obj)
                    rv = listing["metadata"]["resourceVersion"]
                    self._listed.set()
                self._watch = watch.Watch()
                for event in self._watch.stream(self.custom.list_namespaced_custom_object, *args, resource_version=rv,
                                                allow_watch_bookmarks=True, timeout_seconds=240):
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = None if obj.get("code") == 410 else rv
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._record(event["type"], obj)
            except ApiException as e:
                if e.status == 410:
                    rv = None
                else:
                    self._stop.wait(0.2)
            except Exception:  # noqa: BLE001 - connection reset: resume from rv
                self._stop.wait(0.2)

    def wait(self, name: str, predicate: Callable[[str, dict], bool], since: float, timeout: float = 300,
             what: str = "") -> tuple[float, dict]:
        """(arrival time, object) of the first event of `name` that arrived at or after `since` and satisfies
        `predicate(kind, obj)` (kind: SYNC, ADDED, MODIFIED, DELETED)."""
        deadline, seen = time.monotonic() + timeout, 0
        with self._cond:
            while True:
                evs = self.events.get(name, [])
                for t, kind, obj in evs[seen:]:
                    if t >= since and predicate(kind, obj):
                        return t, obj
                seen = len(evs)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = evs[-1][2] if evs else None
                    raise TimeoutError(f"{self.plural}/{name}: {what or 'condition'} not reached in {timeout:.0f}s; "
                                       f"last seen: {json.dumps(last, default=str)[:1500]}")
                self._cond.wait(remaining)


def condition_true(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


# --- Temporal histories -----------------------------------------------------------------------------------------

def event_seconds(event) -> float:
    return event.event_time.ToNanoseconds() / 1e9


def payload_json(payloads) -> Any:
    """The first payload of a Temporal input (the pydantic data converter writes JSON)."""
    items = list(payloads.payloads) if payloads is not None else []
    return json.loads(items[0].data) if items else None


class Timeline:
    """One workflow run as Temporal recorded it (server times, epoch seconds)."""

    def __init__(self, history):
        from temporalio.api.enums.v1 import EventType as E

        self.started = self.closed = None
        self.activities: list[dict[str, Any]] = []   # type, scheduled, started, completed, local
        self.signals: list[tuple[float, str, Any]] = []  # time, name, first argument
        self.workflow_tasks: list[dict[str, Any]] = []   # scheduled, started, completed
        by_id: dict[int, dict[str, Any]] = {}
        la_cursor = 0.0  # where the next local activity's share of its workflow task starts
        for e in history.events:
            t = event_seconds(e)
            if e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                self.started = t
            elif e.event_type in (E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                                  E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                                  E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED):
                self.closed = t
            elif e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                a = {"type": e.activity_task_scheduled_event_attributes.activity_type.name, "scheduled": t,
                     "started": None, "completed": None, "local": False}
                by_id[e.event_id] = a
                self.activities.append(a)
            elif e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                by_id[e.activity_task_started_event_attributes.scheduled_event_id]["started"] = t
            elif e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                by_id[e.activity_task_completed_event_attributes.scheduled_event_id]["completed"] = t
            elif e.event_type == E.EVENT_TYPE_MARKER_RECORDED and \
                    e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER:
                la = local_activity(e.marker_recorded_event_attributes, la_cursor)
                la_cursor = la["completed"]
                self.activities.append(la)
            elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                wft = {"scheduled": t, "started": None, "completed": None}
                by_id[e.event_id] = wft
                self.workflow_tasks.append(wft)
            elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                by_id[e.workflow_task_started_event_attributes.scheduled_event_id]["started"] = t
                la_cursor = t
            elif e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                by_id[e.workflow_task_completed_event_attributes.scheduled_event_id]["completed"] = t
            elif e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                attrs = e.workflow_execution_signaled_event_attributes
                self.signals.append((t, attrs.signal_name, payload_json(attrs.input)))


# a local activity leaves no activity events, only this marker (written by the SDK's core) with its times
LOCAL_ACTIVITY_MARKER = "core_local_activity"


def local_activity(marker, since: float) -> dict[str, Any]:
    """A local activity's type and times from its marker. Core records its completion as the workflow task's
    start + the activity's run time; local activities of one workflow task are laid end to end from that start
    (`since`: the task's start or the previous one's completion), so steps run at once share the wall time
    rather than each counting it whole. They start in the worker as they are scheduled: started = scheduled."""
    data = payload_json(marker.details["data"])
    completed = data["complete_time"]["seconds"] + data["complete_time"].get("nanos", 0) / 1e9
    started = min(since, completed)
    return {"type": data["activity_type"], "scheduled": started, "started": started, "completed": completed,
            "local": True}


async def timelines(temporal, workflow_id: str) -> list[Timeline]:
    """Every run of a workflow ID (a queue may have continued as new or ended idle and started again)."""
    runs = [w async for w in temporal.list_workflows(f"WorkflowId = '{workflow_id}'")]
    out = []
    for run in runs or [None]:
        handle = temporal.get_workflow_handle(workflow_id, run_id=run.run_id if run else None)
        out.append(Timeline(await handle.fetch_history()))
    return out


async def enqueue_times(temporal, queue_workflow_id: str) -> dict[str, float]:
    """Operation workflow ID → when the VM's queue received it (the bridge's signal-with-start, server time)."""
    times: dict[str, float] = {}
    for tl in await timelines(temporal, queue_workflow_id):
        for t, name, op in tl.signals:
            if name == "enqueue" and isinstance(op, dict):
                wid = operation_workflow_id(op)
                times[wid] = min(t, times.get(wid, t))
    return times


def operation_workflow_id(op: dict) -> str:
    from contract.payloads import Operation
    return Operation.model_validate(op).workflow_id


# --- figures ----------------------------------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.0f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [title] if title else []
    out += [line([str(h) for h in headers]), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (f"{os.cpu_count()} × {cpu}, {mem_kb / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average at start {load}")


def parse_log_time(line: str) -> float | None:
    """Epoch seconds of a product log line (logging's asctime: `2025-11-27 23:45:22,123`, local time)."""
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 16) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


# --- objects ----------------------------------------------------------------------------------------------------

def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def delete_snapshot(api, namespace: str, name: str) -> None:
    custom(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL, name)


def patch_vm(api, namespace: str, name: str, patch: dict) -> dict:
    return custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, name, patch)


def vcenter_connect(vcsim):
    from testbed.vms import connect
    return connect(vcsim)


def snapshot_by_name(si, vm_moref: str, name: str):
    """The vim.vm.Snapshot of this name in the VM's tree (the bench's own direct-call baselines)."""
    from pyVmomi import vim

    from activities.vsphere.properties import retrieve, virtual_machine

    info = retrieve(si, virtual_machine(si, vm_moref), ["snapshot"]).get("snapshot")
    stack = list(info.rootSnapshotList or []) if info else []
    while stack:
        node = stack.pop()
        if node.name == name:
            return vim.vm.Snapshot(node.snapshot._moId, si._stub)
        stack.extend(node.childSnapshotList or [])
    raise LookupError(f"no snapshot {name} on {vm_moref}")


def api_exception_status(e: BaseException) -> int | None:
    return e.status if isinstance(e, ApiException) else None


def sample_processes(stack, **processes) -> "ProcSampler":
    """A started sampler of the given product processes (name=Process), this process and the stack's servers."""
    sampler = ProcSampler()
    for name, process in processes.items():
        sampler.watch(name, process.pid)
    sampler.watch("bench (this process, CSI stand-in)", os.getpid())
    for name, pid in stack.server_pids().items():
        sampler.watch(name, pid)
    sampler.start()
    return sampler

