"""`vmsnap-worker`: runs the snapshot workflows and their activities.

One vCenter session and one Kubernetes client per process; blocking pyvmomi and kubernetes calls run in a
thread pool (sync activities), so the event loop that drives workflows never stalls. SIGTERM drains: new
tasks stop, running activities get `graceful_shutdown_seconds` to finish or heartbeat their checkpoint, and
whatever is left resumes on another worker from that checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.kube.bound_vms import BoundVMs
from activities.kube.events import EventRecorder
from activities.kube_group_snapshot import KubeGroupSnapshotActivities
from activities.kube_schedule import KubeScheduleActivities
from activities.kube_snapshot import DeleteRetry, KubeSnapshotActivities
from activities.kube_vm import KubeVMActivities, KubeVMRevertActivities
from activities.temporal_queue import VMQueueActivities
from activities.temporal_schedule import ScheduleTemporalActivities
from activities.vsphere.change_feed import SnapshotChangeFeed
from activities.vsphere_group import VSphereGroupActivities
from activities.vsphere_snapshot import VSphereSnapshotActivities
from activities.vsphere_tree_watch import VSphereTreeWatchActivities
from api.operation_policy import OperationDefaults
from contract.names import tree_watch_workflow_id
from contract.payloads import TreeWatchState
from runtime import last_written
from runtime.coexistence import Coexistence
from runtime.gates import Gates
from runtime.health import HealthServer
from runtime.kube import Kube, api_client
from runtime.namespace_check import SearchAttributesCheck
from runtime.settings import Settings
from runtime.telemetry import WorkflowLinks, setup_logging, setup_tracing
from runtime.temporal import temporal_runtime, unavailable
from runtime.temporal_connection import TemporalConnection
from runtime.vsphere import VSphereSession
from runtime.vsphere_privileges import VCenterPrivileges
from workflows.create_snapshot import CreateSnapshot
from workflows.delete_snapshot import DeleteSnapshot
from workflows.group_revert import GroupRevert
from workflows.group_snapshot import GroupSnapshot
from workflows.options import vcenter_task_queue
from workflows.revert_snapshot import RevertSnapshot
from workflows.scheduled_run import ScheduledSnapshotRun
from workflows.snapshot_tree_watch import SnapshotTreeWatch
from workflows.vm_snapshot_queue import VirtualMachineSnapshotQueue

log = logging.getLogger("vmsnap.worker")

WORKFLOWS = [VirtualMachineSnapshotQueue, CreateSnapshot, RevertSnapshot, DeleteSnapshot, SnapshotTreeWatch,
             ScheduledSnapshotRun, GroupSnapshot, GroupRevert]
MAX_CONCURRENT_ACTIVITIES = 32
# the operations' short Kubernetes and vCenter calls (local activities share the activity thread pool)
MAX_CONCURRENT_LOCAL_ACTIVITIES = 32


def activity_methods(*implementations: object) -> list[Callable[..., Any]]:
    """Every @activity.defn method of these objects: activities are registered by class, so a new one cannot be
    forgotten (a missing registration would only show end to end)."""
    return [method for implementation in implementations for name in dir(type(implementation))
            if not name.startswith("_")
            and hasattr(method := getattr(implementation, name), "__temporal_activity_definition")]


# how often a vCenter task's heartbeat reaches the server (its wait heartbeats every 2 s)
VCENTER_TASK_HEARTBEAT_THROTTLE = timedelta(seconds=3)


def vcenter_task_activities(vsphere: VSphereSnapshotActivities) -> list[Callable[..., Any]]:
    """The activities that run vCenter snapshot tasks: served on their own capped task queue."""
    return [vsphere.create_snapshot, vsphere.revert_snapshot, vsphere.remove_snapshot, vsphere.cancel_task]


def workflow_links(settings: Settings) -> WorkflowLinks:
    return WorkflowLinks(settings.temporal_ui_url, settings.temporal_namespace)


def temporal_activities(settings: Settings, client: Client) -> tuple[VMQueueActivities, ScheduleTemporalActivities]:
    """The activity objects that call Temporal through the client they hold (each given a new one on reconnect)."""
    return VMQueueActivities(client, settings.task_queue), ScheduleTemporalActivities(client)


def activities(settings: Settings, temporal: tuple[VMQueueActivities, ScheduleTemporalActivities],
               vsphere: VSphereSnapshotActivities, kube: Kube, events: EventRecorder, feed: SnapshotChangeFeed,
               bound_vms: BoundVMs | None = None) -> list[Callable[..., Any]]:
    """The activities of the main task queue: every one of every activity class, but the vCenter tasks. Those that
    call Temporal (`temporal`, from `temporal_activities`) are made by the caller, which hands them a new client when
    it connects anew."""
    links = workflow_links(settings)
    defaults = OperationDefaults(settings.failure_deadline_default, settings.quiesce_fallback)
    every = activity_methods(
        vsphere, VSphereTreeWatchActivities(feed, bound_vms),
        KubeSnapshotActivities(kube, events, settings.csi_sync, links,
                               DeleteRetry(settings.delete_retry_seconds, settings.delete_retry_max_seconds),
                               defaults),
        KubeVMActivities(kube, settings.watch_namespace, feed.written, bound_vms),
        KubeVMRevertActivities(kube, events, links, defaults),
        KubeScheduleActivities(kube, events), KubeGroupSnapshotActivities(kube, events),
        VSphereGroupActivities(vsphere.session), *temporal)
    capped = {m.__name__ for m in vcenter_task_activities(vsphere)}
    return [m for m in every if not (getattr(m, "__self__", None) is vsphere and m.__name__ in capped)]


async def start_tree_watch(client: Client, settings: Settings) -> None:
    """Every worker makes sure the deployment's one SnapshotTreeWatch runs (the first one starts it)."""
    await client.start_workflow(
        SnapshotTreeWatch.run, TreeWatchState(), id=tree_watch_workflow_id(settings.task_queue),
        task_queue=settings.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="keeps VM snapshot status equal to vCenter's trees")


def temporal_workers(settings: Settings, client: Client, vsphere: VSphereSnapshotActivities,
                     main_activities: list[Callable[..., Any]], pool: ThreadPoolExecutor) -> tuple[Worker, Worker]:
    """The two Temporal workers: the main task queue, and the vCenter tasks' capped one. Made anew each time the
    process starts polling (a Worker runs once)."""
    drain = timedelta(seconds=settings.graceful_shutdown_seconds)
    worker = Worker(client, task_queue=settings.task_queue, workflows=WORKFLOWS, activities=main_activities,
                    activity_executor=pool,
                    max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
                    max_concurrent_local_activities=MAX_CONCURRENT_LOCAL_ACTIVITIES,
                    graceful_shutdown_timeout=drain)
    vcenter_tasks = Worker(client, task_queue=vcenter_task_queue(settings.task_queue),
                           activities=vcenter_task_activities(vsphere), activity_executor=pool,
                           max_concurrent_activities=settings.vcenter_task_slots, graceful_shutdown_timeout=drain,
                           # a workflow's cancel (a deadline, a delete) reaches a held vCenter task within
                           # this, rather than at most 0.8 × its 30 s heartbeat timeout
                           max_heartbeat_throttle_interval=VCENTER_TASK_HEARTBEAT_THROTTLE)
    return worker, vcenter_tasks


async def first(*awaitables: Awaitable[object]) -> None:
    """Wait for the first of these to finish; the others are cancelled if they are tasks made here."""
    tasks = [a if isinstance(a, asyncio.Future) else asyncio.ensure_future(a) for a in awaitables]
    made = [t for t, a in zip(tasks, awaitables, strict=True) if t is not a]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in made:
            task.cancel()


async def run(settings: Settings) -> None:
    runtime = temporal_runtime(f"0.0.0.0:{settings.metrics_port}" if settings.metrics_port else None)
    last_written.count_through(runtime.metric_meter)  # served with Temporal's metrics, on the same port
    # the one connection: every use of Temporal below is one of its users, moved to a new client when the TLS files
    # change (runtime/temporal_connection.py)
    connection = TemporalConnection(settings, runtime, setup_tracing(settings, "vmsnap-worker"),
                                    period=settings.prerequisites_check_seconds,
                                    check_every=settings.temporal_certificate_check_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failed = False
    gates: Gates | None = None

    async def not_ready() -> str | None:
        if connection.client is None:
            return connection.not_ready()
        if gates is None:
            return "starting"
        return gates.not_ready() or await unavailable(connection.client, settings.task_queue)

    health = HealthServer(settings.health_port, live=lambda: not (failed or stop.is_set()),
                          not_ready=not_ready, port_file=settings.health_port_file)
    await health.start()  # before connecting: live, and not ready saying what it is waiting for
    stopped = asyncio.ensure_future(stop.wait())
    connecting = asyncio.ensure_future(connection.connected())
    await first(connecting, stopped)
    if not connecting.done():  # stopped before Temporal could be reached
        connecting.cancel()
        await health.stop()
        return
    client = connecting.result()
    connection.start()
    session = VSphereSession(settings)
    kube = Kube(api_client(settings))  # the process's one client, shared by the activities, gates and BoundVMs
    # it polls only while every gate says so (runtime/gates.py), each checked at start and again periodically: VM
    # Operator's own snapshot controller is off, the namespace has the search attributes, the vCenter user holds the
    # privileges
    search_attributes = SearchAttributesCheck(client, period=settings.prerequisites_check_seconds)
    gates = Gates(Coexistence(kube, allow=settings.allow_beside_vm_operator_snapshots,
                              period=settings.vm_operator_check_seconds),
                  search_attributes,
                  VCenterPrivileges(session, on=settings.vcenter_privileges_on,
                                    period=settings.prerequisites_check_seconds))
    feed = SnapshotChangeFeed(session)
    bound_vms = BoundVMs(kube, settings.watch_namespace)
    bound_vms.start()
    events = EventRecorder(kube, links=workflow_links(settings))

    vsphere = VSphereSnapshotActivities(session)
    calling_temporal = temporal_activities(settings, client)
    connection.users.extend((search_attributes, *calling_temporal))
    pool_size = MAX_CONCURRENT_ACTIVITIES + MAX_CONCURRENT_LOCAL_ACTIVITIES + settings.vcenter_task_slots

    with ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="activity") as pool:
        main_activities = activities(settings, calling_temporal, vsphere, kube, events, feed, bound_vms)
        await gates.check()
        gates.start()
        print("worker running", flush=True)
        while not stop.is_set():
            if not gates.acting:  # the reason is logged by its gate, once
                log.info("not polling task queue %s while standing aside", settings.task_queue)
                await first(stopped, gates.until(acting=True))
                continue
            client = connection.client or client
            worker, vcenter_tasks = temporal_workers(settings, client, vsphere, main_activities, pool)
            connection.users.extend((worker, vcenter_tasks))
            run_task = asyncio.ensure_future(asyncio.gather(worker.run(), vcenter_tasks.run()))
            await start_tree_watch(client, settings)
            log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
            await first(run_task, stopped, gates.until(acting=False))
            if run_task.done():  # the workers ended by themselves: a fatal error (raised here) or none
                failed = True
                await run_task
                break
            log.info("%s: draining for up to %ss", "shutting down" if stop.is_set() else "standing aside",
                     settings.graceful_shutdown_seconds)
            await asyncio.gather(worker.shutdown(), vcenter_tasks.shutdown())
            await run_task
            connection.users.remove(worker)
            connection.users.remove(vcenter_tasks)
        stopped.cancel()
        await gates.stop()
        await connection.stop()
        await health.stop()
    events.close()
    feed.stop()
    bound_vms.stop()
    session.close()


def main() -> None:
    settings = Settings()
    setup_logging(settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
