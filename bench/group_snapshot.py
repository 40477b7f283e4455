"""Group snapshots through the product: a VirtualMachineGroupSnapshot of N VMs for each size asked, the simulator
holding each create task for a set time (modelling vCenter). Prints, per group, the measured skew (status.skew:
vCenter's create times, first to last member) and the makespan (the GroupSnapshot saga's start to close), next to
the capped ideal under the deployment's vCenter task cap: with S slots and a task of D seconds, N members start
in ceil(N/S) turns, so the best skew is (ceil(N/S) - 1) × D and the best vCenter time ceil(N/S) × D.

    .venv/bin/python -m bench.group_snapshot [--sizes 5 20 64] [--create-delay 2] [--slots 8]

The groups are given a maxSkew large enough for the cap (--max-skew, default 10m) so that every size completes
and its skew is measured rather than refused.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from pathlib import Path

from kubernetes import client
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.group_snapshot import VirtualMachineGroupSnapshot
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_API_VERSION,
    GROUP_SNAPSHOT_GROUP,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_VERSION,
)
from bench import harness as h
from runtime.settings import Settings
from testbed.vms import create_vm

NAMESPACE = "bench"


def group(api: client.ApiClient, name: str) -> VirtualMachineGroupSnapshot:
    return VirtualMachineGroupSnapshot.model_validate(client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, NAMESPACE, GROUP_SNAPSHOT_PLURAL, name))


async def one_group(stack: h.BenchStack, name: str, vms: list[str], args: argparse.Namespace) -> list[object]:
    assert stack.api is not None and stack.temporal is not None
    client.CustomObjectsApi(stack.api).create_namespaced_custom_object(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, NAMESPACE, GROUP_SNAPSHOT_PLURAL,
        {"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND, "metadata": {"name": name},
         "spec": {"vmNames": vms, "maxSkew": args.max_skew, "deadline": "1h"}})
    deadline = time.monotonic() + args.timeout
    while not (made := group(stack.api, name)).finished:
        assert time.monotonic() < deadline, f"{name} did not finish"
        await asyncio.sleep(0.5)
    temporal = await Client.connect(stack.temporal.address, data_converter=pydantic_data_converter)
    saga = await temporal.get_workflow_handle(made.status.workflow_id or "").describe()
    assert saga.close_time is not None
    makespan = (saga.close_time - saga.start_time).total_seconds()
    turns = math.ceil(len(vms) / args.slots)
    ready = made.condition("Ready")
    return [len(vms), ready.status if ready else "?", made.status.skew or "-", f"{(turns - 1) * args.create_delay:g}",
            f"{makespan:.1f}", f"{turns * args.create_delay:g}"]


def run(args: argparse.Namespace, workdir: Path) -> None:
    biggest = max(args.sizes)
    pools = (biggest + 1) // 2  # the simulator's inventory has two resource pools
    with h.BenchStack(workdir, vms_per_pool=pools, namespaces=(NAMESPACE,),
                      temporal_on_disk=not args.temporal_in_memory) as stack:
        assert stack.vcsim is not None and stack.api is not None
        sims = sorted(stack.vcsim.control.vms())[:biggest]
        names = [f"vm-{i:03d}" for i in range(len(sims))]
        h.parallel(lambda pair: create_vm(stack.api, stack.vcsim, NAMESPACE, pair[0], pair[1]), zip(names, sims,
                                                                                                   strict=True))
        stack.vcsim.control.delay("CreateSnapshotEx_Task", "*", args.create_delay, count=0)
        product = stack.product(NAMESPACE, VMSNAP_VCENTER_TASK_SLOTS=str(args.slots))
        product.start_worker()
        product.start_bridge()
        rows = [asyncio.run(one_group(stack, f"group-{size}", names[:size], args)) for size in args.sizes]
        print(h.table(["members", "Ready", "skew (measured)", "skew ideal s", "makespan s", "vCenter ideal s"], rows,
                      f"## group snapshots; create task {args.create_delay:g} s; cap {args.slots} (one worker); "
                      f"ideal = ceil(members / cap) turns of one task"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.group_snapshot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 64], help="members per group (5 20 64)")
    parser.add_argument("--create-delay", type=float, default=2.0, help="seconds vCenter takes per create (2)")
    parser.add_argument("--slots", type=int, default=Settings.model_fields["vcenter_task_slots"].default,
                        help="the worker's VMSNAP_VCENTER_TASK_SLOTS (default: the product's, %(default)s)")
    parser.add_argument("--max-skew", default="10m", help="the groups' spec.maxSkew (10m: every size completes)")
    parser.add_argument("--timeout", type=float, default=900, help="hang guard per group (default 900 s)")
    return h.bench_main(run, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
