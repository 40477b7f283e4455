"""Upgrading the workers while operations are in flight, and rolling back, as deploy/README.md ("Upgrading") tells
an operator to: `kubectl set image` to an image whose create and revert issue other commands than the running one
(tests/pods/upgrade/v2.patch: a step added before the create's vCenter task, the revert's InProgress write moved
after its snapshot lookup), with 10 quiesced creates and 2 reverts held in their vCenter tasks meanwhile; then
deploy/rollback-check.sh refusing the way back while operations started on v2 run, and allowing it once they end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contract.payloads import Operation, OperationKind, VMRef
from testbed.image import ensure_docker
from testbed.kubelet import kubectl_binary
from testbed.process import repo_root
from testbed.temporal import temporal_cli
from testbed.vms import create_vm, eventually, get_vm, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import created_workflow_id
from tests.e2e.test_durability import wait_for_pending
from tests.e2e.test_revert_delete import patch_vm
from tests.fixtures.product import take_sim_vm
from tests.pods.cluster import BRIDGES, NAMESPACE, WORKERS, PodCluster
from tests.pods.conftest import IMAGE as V1
from tests.pods.upgrade.image import build_v2

CREATE_TASK, REVERT_TASK = "CreateSnapshotEx_Task", "RevertToSnapshot_Task"
# a cap, never reached: the test releases each hold once its scenario is in place (vcsim.control.release)
HELD_AT_MOST_SECONDS = 600
# v2's create: this read (a local activity) before the task; its revert: the lookup before the InProgress write
V2_STEP, TASK = "vsphere_read_snapshot_tree", "vsphere_create_snapshot"
FIND, CONDITION = "vsphere_find_snapshot", "kube_set_revert_condition"
DONE_SECONDS = 300
ROLLBACK_CHECK = repo_root() / "deploy" / "rollback-check.sh"


@dataclass
class Steps:
    """What one workflow's history records: its steps in order (activity types, local ones by their markers),
    the plan its prepare step returned, the identities of the workers that completed its workflow tasks, and its
    failed workflow tasks (cause, message)."""
    steps: list[str]
    plan: dict
    workers: list[str]
    failed_tasks: list[tuple[str, str]]

    def nondeterministic(self) -> list[tuple[str, str]]:
        return [(cause, message) for cause, message in self.failed_tasks
                if cause == "WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR" or "nondetermin" in message.lower()]


async def steps_of(temporal_client: Client, workflow_id: str) -> Steps:
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    steps, plan, workers, failed = [], {}, [], []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            steps.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = e.marker_recorded_event_attributes.details
            if "data" not in details:
                continue
            kind = json.loads(details["data"].payloads[0].data).get("activity_type", "")
            if kind:
                steps.append(kind)
            if kind.startswith("kube_prepare_") and "result" in details:
                plan = json.loads(details["result"].payloads[0].data) or {}
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            workers.append(e.workflow_task_completed_event_attributes.identity)
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = e.workflow_task_failed_event_attributes
            failed.append((WorkflowTaskFailedCause.Name(attrs.cause), attrs.failure.message))
    return Steps(steps, plan, workers, failed)


def took_v2_create_step(steps: Steps) -> bool:
    """The create read the VM's tree between its ExtraConfig and its vCenter task (v2's added step); and asked
    for it, as its plan says."""
    before_task = steps.steps[:steps.steps.index(TASK)]
    return V2_STEP in before_task and steps.plan["snapshot"].get("reads_tree_before_task") is True


def took_v2_revert_order(steps: Steps) -> bool:
    """The revert looked the snapshot up before writing InProgress (v2's order), as its plan says it asked."""
    order = [s for s in steps.steps if s in (FIND, CONDITION)]
    return order[:2] == [FIND, CONDITION] and steps.plan["vm"].get("finds_snapshot_before_in_progress") is True


def took_v1_steps(steps: Steps, kind: OperationKind) -> bool:
    if kind is OperationKind.CREATE:
        return V2_STEP not in steps.steps[:steps.steps.index(TASK)] and "reads_tree_before_task" not in \
            steps.plan["snapshot"]
    return "finds_snapshot_before_in_progress" not in steps.plan["vm"]


def set_image(cluster: PodCluster, image: str) -> None:
    """deploy/README.md, "Upgrading": both Deployments to the new tag, and their rollouts awaited."""
    for deployment, container in (("vmsnap-worker", "worker"), ("vmsnap-bridge", "bridge")):
        cluster.kubectl("-n", NAMESPACE, "set", "image", f"deployment/{deployment}", f"{container}={image}")
    for deployment in ("vmsnap-worker", "vmsnap-bridge"):
        cluster.rollout_status(deployment)


def images_running(cluster: PodCluster, selector: str) -> set[str]:
    return {c["image"].removeprefix("docker.io/library/") for p in cluster.pods(selector)
            if p["metadata"].get("deletionTimestamp") is None for c in p["spec"]["containers"]}


def rollback_check(cluster: PodCluster, temporal_address: str, *image: str) -> subprocess.CompletedProcess:
    """deploy/rollback-check.sh, with kubectl and the temporal CLI as an operator has them."""
    tools = {str(Path(kubectl_binary()).parent), str(Path(temporal_cli()).parent)}
    env = {**os.environ, "PATH": os.pathsep.join([*tools, os.environ.get("PATH", "")]),
           "KUBECONFIG": str(cluster.plane.kubeconfig), "TEMPORAL_ADDRESS": temporal_address,
           "TEMPORAL_NAMESPACE": os.environ.get("TEMPORAL_NAMESPACE", "default")}
    done = subprocess.run(["bash", str(ROLLBACK_CHECK), *image], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode in (0, 1), f"rollback-check failed: {done.stdout}{done.stderr}"
    return done


async def start_create(pod_cluster: PodCluster, pods_api, namespace: str, name: str, vm: str,
                       quiesced: bool = True) -> str:
    quiesce = {"quiesce": {"timeout": "10m"}} if quiesced else {}
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(
        snapshot_manifest(name, vm, memory=True, **quiesce)))
    return await asyncio.to_thread(eventually, lambda: created_workflow_id(pods_api, namespace, name))


def start_revert(pods_api, namespace: str, vm: str, snapshot: str) -> str:
    patch_vm(pods_api, namespace, vm, {"spec": {"currentSnapshotName": snapshot}})
    generation = get_vm(pods_api, namespace, vm).metadata.generation
    return Operation(kind=OperationKind.REVERT, vm=VMRef(namespace=namespace, name=vm), snapshot_name=snapshot,
                     vm_generation=generation).workflow_id


async def result_of(temporal_client: Client, workflow_id: str) -> str:
    """The workflow's result, once the bridge has started it (an ID names an operation before it runs)."""
    handle = temporal_client.get_workflow_handle(workflow_id)
    while True:
        try:
            await handle.describe()
            break
        except RPCError as e:
            if e.status is not RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.2)
    return await handle.result()


async def finished(temporal_client: Client, workflow_ids: list[str]) -> list[str]:
    return await asyncio.wait_for(asyncio.gather(*(result_of(temporal_client, w) for w in workflow_ids)),
                                  DONE_SECONDS)


@pytest.mark.timeout(1500)
async def test_upgrade_with_operations_in_flight_then_a_rollback_refused_until_they_end(
        pod_cluster: PodCluster, pods_api, namespace, vcsim, temporal_client, temporal_address, tmp_path):
    docker = ensure_docker()
    building = asyncio.create_task(asyncio.to_thread(build_v2, tmp_path))  # meanwhile, the VMs
    try:
        creating = {f"vm-{i}": take_sim_vm(vcsim) for i in range(10)}
        reverting = {f"rvm-{i}": take_sim_vm(vcsim) for i in range(2)}
        for name, sim_vm in {**creating, **reverting}.items():
            create_vm(pods_api, vcsim, namespace, name, sim_vm)
        for sim_vm in creating.values():
            vcsim.control.set_tools_running(sim_vm, True)
        bases = [await start_create(pod_cluster, pods_api, namespace, f"base-{vm}", vm, quiesced=False)
                 for vm in reverting]
        assert await finished(temporal_client, bases) == ["Ready"] * len(bases)
    finally:
        v2 = await building
    pod_cluster.node.import_images(docker, [v2])

    # on v1: 10 quiesced creates and 2 reverts, each held in its vCenter task
    for sim_vm in creating.values():
        vcsim.control.delay(CREATE_TASK, sim_vm, HELD_AT_MOST_SECONDS, count=1)
    for sim_vm in reverting.values():
        vcsim.control.delay(REVERT_TASK, sim_vm, HELD_AT_MOST_SECONDS, count=1)
    held = {await start_create(pod_cluster, pods_api, namespace, f"snap-{vm}", vm): OperationKind.CREATE
            for vm in creating}
    held |= {start_revert(pods_api, namespace, vm, f"base-{vm}"): OperationKind.REVERT for vm in reverting}
    await asyncio.wait_for(asyncio.gather(*(
        wait_for_pending(temporal_client, w, TASK if kind is OperationKind.CREATE else "vsphere_revert_snapshot")
        for w, kind in held.items())), 180)

    try:
        set_image(pod_cluster, v2)
        assert images_running(pod_cluster, WORKERS) == {v2} and images_running(pod_cluster, BRIDGES) == {v2}
        v2_workers = set(pod_cluster.ready_pods(WORKERS))
        # every operation was still in its vCenter task through the whole rollout
        assert vcsim.control.release(CREATE_TASK, "*") == len(creating)
        assert vcsim.control.release(REVERT_TASK, "*") == len(reverting)
        results = dict(zip(held, await finished(temporal_client, list(held)), strict=True))
        assert results == {w: "Ready" if kind is OperationKind.CREATE else f"reverted to base-{w.split('/')[2]}"
                           for w, kind in held.items()}
        for workflow_id, kind in held.items():
            steps = await steps_of(temporal_client, workflow_id)
            assert not steps.nondeterministic(), (workflow_id, steps.nondeterministic())
            assert took_v1_steps(steps, kind), (workflow_id, steps)
            assert steps.workers[-1] in v2_workers, f"{workflow_id} ended on {steps.workers[-1]}, not on v2"
        for vm, sim_vm in creating.items():
            assert vsphere_snapshot_names(vcsim, sim_vm) == [f"snap-{vm}"], "each snapshot once in vCenter"
        for vm, sim_vm in reverting.items():
            assert vsphere_snapshot_names(vcsim, sim_vm) == [f"base-{vm}"]

        # on v2: a create and a revert run v2's steps; held in their tasks, they keep the rollback refused
        vcsim.control.delay(CREATE_TASK, creating["vm-0"], HELD_AT_MOST_SECONDS, count=1)
        vcsim.control.delay(REVERT_TASK, reverting["rvm-0"], HELD_AT_MOST_SECONDS, count=1)
        on_v2 = [await start_create(pod_cluster, pods_api, namespace, "on-v2", "vm-0"),
                 start_revert(pods_api, namespace, "rvm-0", "base-rvm-0")]
        await asyncio.wait_for(asyncio.gather(wait_for_pending(temporal_client, on_v2[0], TASK),
                                              wait_for_pending(temporal_client, on_v2[1], "vsphere_revert_snapshot")),
                               180)
        refused = rollback_check(pod_cluster, temporal_address)
        assert refused.returncode == 1 and refused.stdout.startswith(f"rollback-check: {len(on_v2)} operations"), \
            refused.stdout
        assert vcsim.control.release(CREATE_TASK, "*") == 1 and vcsim.control.release(REVERT_TASK, "*") == 1
        assert await finished(temporal_client, on_v2) == ["Ready", "reverted to base-rvm-0"]
        create_v2, revert_v2 = [await steps_of(temporal_client, w) for w in on_v2]
        assert took_v2_create_step(create_v2), create_v2
        assert took_v2_revert_order(revert_v2), revert_v2
        allowed = rollback_check(pod_cluster, temporal_address)
        assert allowed.returncode == 0, allowed.stdout

        set_image(pod_cluster, V1)
        # nothing started on a v2 pod while they were being replaced
        assert rollback_check(pod_cluster, temporal_address, v2).returncode == 0
    finally:
        if images_running(pod_cluster, WORKERS) != {V1} or images_running(pod_cluster, BRIDGES) != {V1}:
            set_image(pod_cluster, V1)  # the pod tier's other tests run on v1
        vcsim.control.release(CREATE_TASK, "*")
        vcsim.control.release(REVERT_TASK, "*")

    # back on v1: new operations run v1's steps
    on_v1 = [await start_create(pod_cluster, pods_api, namespace, "on-v1", "vm-1"),
             start_revert(pods_api, namespace, "rvm-1", "base-rvm-1")]
    assert await finished(temporal_client, on_v1) == ["Ready", "reverted to base-rvm-1"]
    for workflow_id, kind in zip(on_v1, (OperationKind.CREATE, OperationKind.REVERT), strict=True):
        steps = await steps_of(temporal_client, workflow_id)
        assert took_v1_steps(steps, kind) and not steps.nondeterministic(), (workflow_id, steps)
    for vm, on in (("vm-0", "on-v2"), ("vm-1", "on-v1")):
        assert sorted(vsphere_snapshot_names(vcsim, creating[vm])) == sorted([f"snap-{vm}", on])
    assert images_running(pod_cluster, WORKERS) == {V1} and len(pod_cluster.ready_pods(WORKERS)) == 3
