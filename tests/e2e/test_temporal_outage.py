"""Losing a Temporal service mid-burst loses nothing, on the production-shaped cluster (four services on
PostgreSQL): 3 workers and 2 bridges, snapshots over 25 VMs with a slow quiesced create among them; one service is
SIGKILLed while the burst runs (a quarter of the objects and a few deletes arrive while it is down) and started
again after the outage. Every snapshot ends Ready, each name is in vCenter once, each vCenter task ran once, every
delete finished (no stuck finalizer). Meanwhile the workers and bridges keep running, /readyz says they are not
ready and why, the bridges hold what they could not deliver and deliver it afterwards (resync is set beyond the
test, so nothing else can), and the logs say so in a line, not a stack trace per retry.

The long history outage (35 s) outlasts the 30 s heartbeat timeout of the vCenter task activities and the 30 s
start-to-close timeout of the Kubernetes steps: the slow create completes while history is down, the worker's
report of it is lost, and Temporal runs the activity again after its timeout. That is safe because every activity
is idempotent: the re-run finds its snapshot (or re-attaches to its task) and vCenter still has one snapshot made
by one task.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api import VirtualMachineSnapshot
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
from testbed.process import Process
from testbed.product import Product
from testbed.temporal_cluster import SERVICES, TemporalCluster
from testbed.temporal_views import activity_attempts
from testbed.vcsim import VCSim
from testbed.vms import connect, create_vm, eventually, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import create, created_workflow_id
from tests.fixtures.health import watch

pytestmark = pytest.mark.cluster

VMS = 25
SLOW_SECONDS = 20     # the slow quiesced create's vCenter task
DELETES = 5           # snapshots deleted while the service is down
WORKERS, BRIDGES = 3, 2
HANG_GUARD = 900      # seconds for a burst to finish: a bound for a broken build, not a performance figure
# the SDK client retries a failed call for about this long before it raises (temporalio's default RetryConfig)
SDK_CALL_RETRY_SECONDS = 10
OUTAGE_LINES_MAX = 40  # log lines about the outage per process
OUTAGE_WORDS = re.compile(r"Unavailable|UNAVAILABLE|tcp connect error|Not enough hosts|Connection refused|"
                          r"Temporal unreachable")


@dataclass(frozen=True)
class Scenario:
    service: str
    outage: float
    snapshots: int

    def __str__(self) -> str:
        return f"{self.service}-{self.outage:g}s-{self.snapshots}"


# 200 snapshots for the first (VMSNAP_OUTAGE_BURST sets another size); 50, two per VM, for the others keep the
# four within minutes on 2 cores
SCENARIOS = [Scenario("history", 5, int(os.environ.get("VMSNAP_OUTAGE_BURST", "200"))),
             Scenario("history", 35, 50), Scenario("matching", 5, 50), Scenario("frontend", 5, 50)]


@dataclass
class Bed:
    cluster: TemporalCluster
    vcsim: VCSim
    kube_api: client.ApiClient
    namespace: str
    product: Product
    temporal: Client
    free_vms: list[str]
    results: list[dict] = field(default_factory=list)


@pytest.fixture(scope="module")
def outage_vcsim(testbed_dir: Path, request: pytest.FixtureRequest):
    """A simulator of its own: the scenarios take 25 fresh VMs each, more than the shared one spares."""
    sim = VCSim(testbed_dir / "vcsim-outage", vms_per_pool=(VMS * len(SCENARIOS)) // 2 + 1).start()
    watch(request, sim.watched())
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
async def bed(temporal_cluster: TemporalCluster, outage_vcsim: VCSim, kube_api, kubeconfig: Path, csi_driver,
        testbed_dir: Path):
    namespace = "outage-" + uuid.uuid4().hex[:8]
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    workdir = testbed_dir / f"outage-{namespace}"
    product = Product(workdir, {
        "KUBECONFIG": str(kubeconfig), "TEMPORAL_ADDRESS": temporal_cluster.address,
        "VSPHERE_URL": outage_vcsim.url, "VSPHERE_INSECURE": "true", "VMSNAP_WATCH_NAMESPACE": namespace,
        "VMSNAP_TASK_QUEUE": f"vmsnap-{uuid.uuid4().hex[:8]}", "VMSNAP_GRACEFUL_SHUTDOWN_SECONDS": "5",
        # beyond the test: what a bridge could not deliver during the outage can only come from its own retry
        "VMSNAP_RESYNC_SECONDS": "3600", "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        for _ in range(WORKERS):
            product.start_worker()
        for _ in range(BRIDGES):
            product.start_bridge()
        temporal = await Client.connect(temporal_cluster.address, data_converter=pydantic_data_converter)
        b = Bed(temporal_cluster, outage_vcsim, kube_api, namespace, product, temporal,
                sorted(outage_vcsim.control.vms()))
        yield b
        print("\n" + outage_table(b.results))
    finally:
        product.stop()
        core.delete_namespace(namespace)


@pytest.mark.timeout(1500)  # a hang guard: the 200-snapshot burst with its set-up takes minutes on a busy machine
@pytest.mark.takes_down(*(f"temporal-{service}" for service in SERVICES))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
async def test_a_service_outage_mid_burst_loses_and_doubles_nothing(bed: Bed, scenario: Scenario):
    tag = f"{scenario.service[0]}{scenario.outage:g}"
    sims = [bed.free_vms.pop() for _ in range(VMS)]
    vms = [f"{tag}-vm-{i:02d}" for i in range(VMS)]
    await asyncio.to_thread(parallel, lambda a: create_vm(bed.kube_api, bed.vcsim, bed.namespace, a[0], a[1]),
                            list(zip(vms, sims)))
    # the slow quiesced create: first on its VM, so it runs while the service goes down
    slow_vm, slow_sim = vms[0], sims[0]
    bed.vcsim.control.set_tools_running(slow_sim, True)
    bed.vcsim.control.delay("CreateSnapshotEx_Task", slow_sim, SLOW_SECONDS, count=1)
    names = {vm: [f"{vm}-s{j}" for j in range(scenario.snapshots // VMS)] for vm in vms}
    ordered = [(vm, names[vm][j]) for j in range(scenario.snapshots // VMS) for vm in vms]  # round-robin
    slow_name = names[slow_vm][0]
    before, during = ordered[:3 * len(ordered) // 4], ordered[3 * len(ordered) // 4:]
    logs = LogMarks(bed.product.processes)

    def manifest(vm: str, name: str) -> dict:
        return snapshot_manifest(name, vm, memory=True, quiesce={"timeout": "10m"}) if name == slow_name \
            else snapshot_manifest(name, vm)

    started = time.monotonic()
    await asyncio.to_thread(parallel, lambda a: create(bed.kube_api, bed.namespace, manifest(*a)), before)
    slow_workflow = await asyncio.to_thread(eventually, lambda: created_workflow_id(bed.kube_api, bed.namespace,
                                                                                    slow_name))
    # mid-burst: the slow task has just started (it ends while the service is down), some snapshots are done
    await asyncio.wait_for(heartbeating(bed.temporal, slow_workflow), timeout=300)
    deleted = sorted(ready_names(bed, tag) - {slow_name})[:DELETES]

    readiness = ReadinessWatch(bed.product.processes).start()
    bed.cluster.kill(scenario.service)
    killed_at = time.monotonic()
    await asyncio.to_thread(parallel, lambda a: create(bed.kube_api, bed.namespace, manifest(*a)), during)
    await asyncio.to_thread(parallel, lambda n: delete(bed.kube_api, bed.namespace, n), deleted)
    await asyncio.sleep(max(0.0, scenario.outage - (time.monotonic() - killed_at)))
    for process in bed.product.processes:
        assert process.alive(), f"{process.part} exited while Temporal was down"
    await asyncio.to_thread(bed.cluster.start_service, scenario.service)
    restarted_at = time.monotonic()

    expected = {name for _, name in ordered} - set(deleted)
    await asyncio.to_thread(eventually, lambda: tolerant(lambda: ready_names(bed, tag) == expected
                                                          and not present(bed, deleted)),
                            HANG_GUARD, f"{len(expected)} snapshots Ready and {len(deleted)} deleted")
    batch_seconds = time.monotonic() - started
    await asyncio.to_thread(readiness.wait_all_ready, 120)
    readiness.stop()

    # nothing lost, nothing doubled: vCenter has each name once, made by one task, and the deletes removed theirs
    for vm, sim in zip(vms, sims):
        want = [n for n in names[vm] if n not in deleted]
        assert sorted(vsphere_snapshot_names(bed.vcsim, sim)) == sorted(want), vm
    tasks = await asyncio.to_thread(snapshot_tasks, bed.vcsim, sims)
    doubled = {sim: t for sim, t in tasks.items()
               if t["create"] != len(names[vms[sims.index(sim)]])
               or t["remove"] != sum(1 for n in deleted if n.startswith(vms[sims.index(sim)] + "-"))}
    assert not doubled, f"vCenter task counts differ from one per operation: {doubled}"

    # every product process rode it out: still the first process, told /readyz why it was not ready, and logged
    # the outage in a line rather than a stack trace per failed call
    for process in bed.product.processes:
        assert process.alive(), f"{process.part} exited"
        why = readiness.unready.get(process.part, [])
        assert any("temporal unreachable" in text for text in why), \
            f"{process.part}: /readyz never said Temporal was unreachable (saw {why[:3]})"
    new_lines = logs.new_lines()
    traces = {p: outage_tracebacks(lines) for p, lines in new_lines.items()}
    assert not any(traces.values()), f"stack traces for the outage in the product's logs: {traces}"
    said = {p: [line for line in lines if OUTAGE_WORDS.search(line)] for p, lines in new_lines.items()}
    # one line per kind of failed call and minute: without that, hundreds (every poll, heartbeat and report)
    assert all(len(lines) <= OUTAGE_LINES_MAX for lines in said.values()), \
        {p: len(lines) for p, lines in said.items()}
    bridge_lines = [line for p, lines in new_lines.items() if p.startswith("bridge") for line in lines]
    if scenario.outage > SDK_CALL_RETRY_SECONDS:  # a shorter outage is ridden out inside the client's own retries
        assert any("Temporal unreachable" in line for line in bridge_lines), "no bridge said it held changes"
        assert any("Temporal reachable again" in line for line in bridge_lines), "no bridge said it delivered them"

    reruns = await rerun_activities(bed, {name for _, name in ordered} - set(deleted))
    slow_attempts = await activity_attempts(bed.temporal, slow_workflow, "vsphere_create_snapshot")
    if scenario.outage > 30:  # longer than the activity's timeouts: its lost completion made Temporal run it again
        assert max(slow_attempts) >= 2, "the slow create's activity was not run again after the long outage"
    bed.results.append({"service": scenario.service, "outage": scenario.outage, "snapshots": scenario.snapshots,
                        "deleted": len(deleted), "batch_s": round(batch_seconds, 1),
                        "down_s": round(restarted_at - killed_at, 1), "ready": len(ready_names(bed, tag)),
                        "duplicates": len(doubled), "reruns": reruns, "slow_attempts": max(slow_attempts),
                        "outage_log_lines": {p: len(lines) for p, lines in said.items()}})
    print(json.dumps(bed.results[-1]))


# --- helpers -------------------------------------------------------------------------------------------------------

def parallel(fn, items, workers: int = 16) -> list:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def tolerant(check) -> bool:
    """A poll that a dropped apiserver connection (a busy machine) only makes "not yet"."""
    try:
        return bool(check())
    except (urllib3.exceptions.HTTPError, client.ApiException, OSError):
        return False


def listed(bed: Bed) -> list[dict]:
    return client.CustomObjectsApi(bed.kube_api).list_namespaced_custom_object(
        GROUP, VERSION, bed.namespace, SNAPSHOT_PLURAL)["items"]


def ready_names(bed: Bed, tag: str) -> set[str]:
    return {o["metadata"]["name"] for o in listed(bed) if o["metadata"]["name"].startswith(tag + "-")
            and VirtualMachineSnapshot.model_validate(o).is_ready}


def present(bed: Bed, names: list[str]) -> bool:
    return bool({o["metadata"]["name"] for o in listed(bed)} & set(names))


def delete(kube_api, namespace: str, name: str) -> None:
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                                      name)


async def heartbeating(temporal: Client, workflow_id: str) -> None:
    """Until the create activity has heartbeated the vCenter task it started."""
    while True:
        try:
            desc = await temporal.get_workflow_handle(workflow_id).describe()
            if any(p.activity_type.name == "vsphere_create_snapshot" and p.heartbeat_details.payloads
                   for p in desc.raw_description.pending_activities):
                return
        except Exception:  # noqa: BLE001 - not started yet
            pass
        await asyncio.sleep(0.2)


async def rerun_activities(bed: Bed, names: set[str]) -> int:
    """Attempts beyond the first of the vCenter task activities, over the operations' histories."""
    from temporalio.api.enums.v1 import EventType
    total = 0
    for name in names:
        history = await bed.temporal.get_workflow_handle(
            created_workflow_id(bed.kube_api, bed.namespace, name)).fetch_history()
        total += sum(e.activity_task_started_event_attributes.attempt - 1 for e in history.events
                     if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    return total


def snapshot_tasks(vcsim: VCSim, sims: list[str]) -> dict[str, dict[str, int]]:
    """Per simulator VM: how many create and remove snapshot tasks vCenter lists among its recent tasks."""
    from pyVim.connect import Disconnect

    from activities.vsphere.properties import retrieve, virtual_machine
    si = connect(vcsim)
    morefs = vcsim.control.vms()
    try:
        counts = {}
        for sim in sims:
            tasks = retrieve(si, virtual_machine(si, morefs[sim]), ["recentTask"]).get("recentTask", [])
            kinds = [str(retrieve(si, t, ["info.descriptionId"]).get("info.descriptionId", "")).lower()
                     for t in tasks]
            counts[sim] = {"create": sum("createsnapshot" in k for k in kinds),
                           "remove": sum("removesnapshot" in k for k in kinds)}
        return counts
    finally:
        Disconnect(si)


def outage_tracebacks(lines: list[str]) -> list[str]:
    """The last line of each stack trace in the log that was about Temporal being unreachable."""
    found, in_trace = [], False
    for line in lines:
        if line.startswith("Traceback"):
            in_trace = True
        elif in_trace and line and not line.startswith((" ", "During handling", "The above exception")):
            in_trace = False
            if OUTAGE_WORDS.search(line):
                found.append(line[:200])
    return found


class LogMarks:
    """The product's log lines written after this point."""

    def __init__(self, processes: list[Process]):
        self.offsets = {p.part: (p.log, p.log.stat().st_size) for p in processes}

    def new_lines(self) -> dict[str, list[str]]:
        out = {}
        for part, (log, offset) in self.offsets.items():
            with open(log, "rb") as f:
                f.seek(offset)
                out[part] = f.read().decode(errors="replace").splitlines()
        return out


class ReadinessWatch:
    """Polls every product process's /readyz in the background; keeps each 503's text."""

    def __init__(self, processes: list[Process]):
        self.urls = {p.part: f"http://127.0.0.1:{p.env['VMSNAP_HEALTH_PORT']}/readyz" for p in processes}
        self.unready: dict[str, list[str]] = {}
        self.last: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, args=(part, url), daemon=True)
                         for part, url in self.urls.items()]

    def start(self) -> "ReadinessWatch":
        for t in self._threads:
            t.start()
        return self

    def _poll(self, part: str, url: str) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=10) as answer:
                    self.last[part] = answer.status
            except urllib.error.HTTPError as e:
                self.last[part] = e.code
                self.unready.setdefault(part, []).append(e.read().decode(errors="replace"))
            except OSError as e:
                self.last[part] = 0
                self.unready.setdefault(part, []).append(f"no answer: {e}")
            self._stop.wait(0.3)

    def wait_all_ready(self, timeout: float) -> None:
        eventually(lambda: all(self.last.get(p) == 200 for p in self.urls), timeout, "every /readyz 200 again")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def outage_table(results: list[dict]) -> str:
    rows = ["| service | outage | down (s) | batch (s) | snapshots Ready | deleted | duplicates | activities re-run |",
            "|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['service']} | {r['outage']:g} s | {r['down_s']} | {r['batch_s']} | {r['ready']}/"
             f"{r['snapshots'] - r['deleted']} | {r['deleted']} | {r['duplicates']} | {r['reruns']} |"
             for r in results]
    return "\n".join(rows)
