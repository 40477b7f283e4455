"""One scheduled run over many VMs, through the product: a VirtualMachineSnapshotSchedule selecting V VMs, its
Temporal Schedule triggered once, the simulator holding each create task for a set time (modelling vCenter).
Prints the run's makespan (the ScheduledSnapshotRun workflow's start to close) and the peak number of vCenter
snapshot tasks at once (from the vsphere_create_snapshot activity windows of every CreateSnapshot workflow), for
each spread window asked, next to the worker's cap (VMSNAP_VCENTER_TASK_SLOTS).

    .venv/bin/python -m bench.schedule_run [--vms 100] [--spread 0 60] [--create-delay 2] [--slots 8]

Without a spread window the creates all arrive at once and the cap alone limits vCenter: the peak is the cap.
With one, creates arrive every window/V seconds, so the peak is about create time × V / window (bounded by the
cap), at the cost of a makespan of about the window plus one create.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from kubernetes import client
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_PLURAL, WORKFLOW_ID_ANNOTATION
from api.schedule_names import SCHEDULE_API_VERSION, SCHEDULE_GROUP, SCHEDULE_KIND, SCHEDULE_PLURAL, SCHEDULE_VERSION
from bench import harness as h
from contract.names import temporal_schedule_id
from runtime.settings import Settings
from testbed.temporal_views import activity_windows
from testbed.vms import create_vm

NAMESPACE = "bench"


def peak(windows: list[tuple[int, int]]) -> int:
    """The most windows open at one instant."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    open_now = best = 0
    for _, step in edges:
        open_now += step
        best = max(best, open_now)
    return best


async def one_run(stack: h.BenchStack, name: str, vms: int, spread: float, timeout: float) -> list[object]:
    custom = client.CustomObjectsApi(stack.api)
    spec = {"schedule": "@every 24h", "vmSelector": {"matchLabels": {"bench": "yes"}}, "retention": {"keepLast": 5}}
    if spread:
        spec["spreadWindow"] = f"{spread:g}s"
    custom.create_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, NAMESPACE, SCHEDULE_PLURAL, {
        "apiVersion": SCHEDULE_API_VERSION, "kind": SCHEDULE_KIND, "metadata": {"name": name}, "spec": spec})
    assert stack.temporal is not None
    temporal = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    handle = temporal.get_schedule_handle(temporal_schedule_id(NAMESPACE, name))
    deadline = time.monotonic() + 60
    while True:  # the bridge creates the Temporal Schedule
        try:
            await handle.describe()
            break
        except Exception:  # noqa: BLE001 - not there yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    await handle.trigger()
    deadline = time.monotonic() + 60
    while not (description := await handle.describe()).info.recent_actions:
        assert time.monotonic() < deadline, "the triggered run did not start"
        await asyncio.sleep(0.3)
    run_id = description.info.recent_actions[0].action.workflow_id
    await asyncio.wait_for(temporal.get_workflow_handle(run_id).result(), timeout)
    run = await temporal.get_workflow_handle(run_id).describe()
    await handle.delete()
    makespan = (run.close_time - run.start_time).total_seconds()
    snapshots = [s for s in custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, SNAPSHOT_PLURAL)["items"]
                 if s["metadata"].get("labels", {}).get("vmsnap.io/schedule") == name]
    windows = []
    for s in snapshots:
        windows += await activity_windows(temporal, s["metadata"]["annotations"][WORKFLOW_ID_ANNOTATION],
                                          "vsphere_create_snapshot")
    first = min(w[0] for w in windows) if windows else 0
    last = max(w[1] for w in windows) if windows else 0
    return [f"{spread:g}", len(snapshots), f"{makespan:.1f}", f"{(last - first) / 1e9:.1f}", peak(windows)]


def run(args: argparse.Namespace, workdir: Path) -> None:
    pools = (args.vms + 1) // 2  # the simulator's inventory has two resource pools
    with h.BenchStack(workdir, vms_per_pool=pools, namespaces=(NAMESPACE,),
                      temporal_on_disk=not args.temporal_in_memory) as stack:
        assert stack.vcsim is not None and stack.api is not None
        sims = sorted(stack.vcsim.control.vms())[:args.vms]
        for i, sim in enumerate(sims):
            create_vm(stack.api, stack.vcsim, NAMESPACE, f"vm-{i:03d}", sim)
            client.CustomObjectsApi(stack.api).patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, VM_PLURAL, f"vm-{i:03d}", {"metadata": {"labels": {"bench": "yes"}}})
        stack.vcsim.control.delay("CreateSnapshotEx_Task", "*", args.create_delay, count=0)
        product = stack.product(NAMESPACE, VMSNAP_VCENTER_TASK_SLOTS=str(args.slots))
        product.start_worker()
        product.start_bridge()
        rows = [asyncio.run(one_run(stack, f"run-{i}", len(sims), spread, args.timeout))
                for i, spread in enumerate(args.spread)]
        print(h.table(["spread window s", "snapshots", "run makespan s", "first→last vCenter task s",
                       "peak vCenter tasks"], rows,
                      f"## one scheduled run over {len(sims)} VMs; create task {args.create_delay:g} s; "
                      f"cap {args.slots} (one worker)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.schedule_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100, help="VMs the schedule selects (default 100)")
    parser.add_argument("--spread", type=float, nargs="+", default=[0, 60],
                        help="spread windows in seconds, one run each (default: 0 60)")
    parser.add_argument("--create-delay", type=float, default=2.0, help="seconds vCenter takes per create (2)")
    parser.add_argument("--slots", type=int, default=Settings.model_fields["vcenter_task_slots"].default,
                        help="the worker's VMSNAP_VCENTER_TASK_SLOTS (default: the product's, %(default)s)")
    parser.add_argument("--timeout", type=float, default=900, help="hang guard per run (default 900 s)")
    return h.bench_main(run, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
