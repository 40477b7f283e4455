"""What worker and bridge pods must survive: `kubectl delete pod` of the worker running a slow quiesced create,
rolling restarts during a burst of creates, and a drain (the kubelet's SIGTERM) within the grace period."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from kubernetes import client
from temporalio.client import Client

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
from testbed.temporal_views import activity_attempts
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import created_workflow_id
from tests.e2e.test_durability import wait_for_running_task
from tests.fixtures.product import take_sim_vm
from tests.pods.cluster import BRIDGES, NAMESPACE, WORKERS, PodCluster

HELD_SECONDS = 60  # the simulator holds the create task this long


async def pending_worker(temporal_client: Client, workflow_id: str, activity: str) -> str:
    """The identity (the pod's name: tests/pods/overlay) of the worker running the activity."""
    desc = await temporal_client.get_workflow_handle(workflow_id).describe()
    (pending,) = [p for p in desc.raw_description.pending_activities if p.activity_type.name == activity]
    return pending.last_worker_identity


def no_stuck_finalizer(pods_api, namespace: str) -> None:
    items = client.CustomObjectsApi(pods_api).list_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                            SNAPSHOT_PLURAL)["items"]
    assert all(not i["metadata"].get("deletionTimestamp") for i in items), "an object stuck in deletion"


async def test_deleting_the_pod_running_a_slow_quiesced_create(pod_cluster: PodCluster, pods_api, namespace,
                                                               vcsim, temporal_client):
    sim_vm = take_sim_vm(vcsim)
    create_vm(pods_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, HELD_SECONDS, count=1)
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(
        snapshot_manifest("slow", "my-vm", memory=True, quiesce={"timeout": "10m"})))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(pods_api, namespace, "slow"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=180)
    pod = await pending_worker(temporal_client, workflow_id, "vsphere_create_snapshot")
    assert pod in {p["metadata"]["name"] for p in pod_cluster.pods(WORKERS)}, pod

    pod_cluster.kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=true", timeout=180)
    await asyncio.to_thread(eventually, lambda: get_snapshot(pods_api, namespace, "slow").is_ready, 400,
                            "slow Ready")
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["slow"], "exactly one vSphere snapshot"
    desc = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert desc.status is not None
    pod_cluster.rollout_status("vmsnap-worker")
    assert len(pod_cluster.ready_pods(WORKERS)) == 3
    no_stuck_finalizer(pods_api, namespace)


def test_rolling_restarts_during_a_burst_of_creates(pod_cluster: PodCluster, pods_api, namespace, vcsim):
    vms = {f"vm-{i}": take_sim_vm(vcsim) for i in range(10)}
    for name, sim_vm in vms.items():
        create_vm(pods_api, vcsim, namespace, name, sim_vm)
    names = {f"burst-{i:02d}": f"vm-{i % 10}" for i in range(50)}
    refused: list[str] = []
    stop = threading.Event()

    def burst() -> None:
        for name, vm in names.items():
            if stop.is_set():
                return
            manifest = json.dumps(snapshot_manifest(name, vm))
            for _ in range(30):  # a review refused while no bridge answers (failurePolicy Fail) is sent again
                done = pod_cluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest, check=False)
                if done.returncode == 0 or "AlreadyExists" in done.stderr:
                    break
                refused.append(done.stderr.strip())
                time.sleep(1)
            time.sleep(0.2)

    creating = threading.Thread(target=burst, daemon=True)
    creating.start()
    try:
        for deployment in ("vmsnap-worker", "vmsnap-bridge"):
            pod_cluster.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{deployment}")
            pod_cluster.rollout_status(deployment)
    except BaseException:
        stop.set()  # the rollout failed: end the burst too, so the failure is reported at once
        raise
    creating.join(900)
    assert not creating.is_alive(), "the burst did not end"
    for name in names:
        eventually(lambda name=name: get_snapshot(pods_api, namespace, name).is_ready, 600, f"{name} Ready")
    for i, sim_vm in enumerate(vms.values()):
        expected = sorted(n for n, vm in names.items() if vm == f"vm-{i}")
        assert sorted(vsphere_snapshot_names(vcsim, sim_vm)) == expected, "each name once in vCenter"
    assert len(pod_cluster.ready_pods(WORKERS)) == 3 and len(pod_cluster.ready_pods(BRIDGES)) == 2
    no_stuck_finalizer(pods_api, namespace)
    print(f"\nburst: {len(refused)} creates refused during the restarts and sent again: {refused[:3]}")


DRAIN_HELD_SECONDS = 20  # inside the worker's graceful shutdown (30 s), itself inside terminationGracePeriodSeconds


async def test_drain_lets_the_running_create_finish_within_the_grace_period(pod_cluster: PodCluster, pods_api,
                                                                           namespace, vcsim, temporal_client):
    sim_vm = take_sim_vm(vcsim)
    create_vm(pods_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, DRAIN_HELD_SECONDS, count=1)
    pod_cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(
        snapshot_manifest("drained", "my-vm")))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(pods_api, namespace, "drained"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=180)
    running_on = await pending_worker(temporal_client, workflow_id, "vsphere_create_snapshot")

    terminated: dict[str, dict] = {}
    watching = threading.Event()

    def watch_terminations() -> None:  # each worker container's end, as the kubelet reports it
        from kubernetes import watch
        stream = watch.Watch()
        watching.set()
        for event in stream.stream(client.CoreV1Api(pods_api).list_namespaced_pod, NAMESPACE,
                                   label_selector=WORKERS, timeout_seconds=240):
            pod = event["object"]
            for status in pod.status.container_statuses or []:
                if status.state.terminated is not None:
                    terminated[pod.metadata.name] = {"exit": status.state.terminated.exit_code,
                                                     "reason": status.state.terminated.reason}
            if running_on in terminated or event["type"] == "DELETED" and pod.metadata.name == running_on:
                stream.stop()

    watcher = threading.Thread(target=watch_terminations, daemon=True)
    watcher.start()
    watching.wait(10)
    node = pod_cluster.node.name
    try:
        # without eviction: the PodDisruptionBudget would hold the second worker back forever on a cordoned node
        # of one; the kubelet sends SIGTERM and waits terminationGracePeriodSeconds all the same
        pod_cluster.kubectl("drain", node, f"--pod-selector={WORKERS}", "--disable-eviction", "--ignore-daemonsets",
                            "--delete-emptydir-data", "--timeout=180s", timeout=240)
    finally:
        pod_cluster.kubectl("uncordon", node)
    watcher.join(60)
    assert terminated.get(running_on) == {"exit": 0, "reason": "Completed"}, \
        f"{running_on} did not exit on its own within the grace period: {terminated}"
    await asyncio.to_thread(eventually, lambda: get_snapshot(pods_api, namespace, "drained").is_ready, 300,
                            "drained Ready")
    # the task finished on the draining pod: one attempt, one snapshot
    assert await activity_attempts(temporal_client, workflow_id, "vsphere_create_snapshot") == [1]
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["drained"]
    pod_cluster.rollout_status("vmsnap-worker")
    no_stuck_finalizer(pods_api, namespace)
