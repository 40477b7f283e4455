"""`vmsnap-bridge`: watches VirtualMachineSnapshot (and VirtualMachine) objects and turns their changes into
Temporal workflow starts and signals. It serves the admission webhook and never talks to vCenter."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable

import prometheus_client

from api.group_snapshot_names import GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_PLURAL, GROUP_SNAPSHOT_VERSION
from api.names import SNAPSHOT_PLURAL, VM_PLURAL
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_PLURAL, SCHEDULE_VERSION
from bridge.decisions import snapshot_fields, vm_fields
from bridge.dispatcher import Dispatcher, log_when_caught_up
from bridge.group_snapshots import GroupSnapshotSync
from bridge.metrics import RELISTS
from bridge.schedules import ScheduleSync
from runtime.coexistence import Coexistence
from runtime.gates import Gates
from runtime.health import HealthServer
from runtime.informer import Event, Informer, start_informer
from runtime.kube import Kube, api_client
from runtime.namespace_check import SearchAttributesCheck
from runtime.settings import Settings
from runtime.telemetry import setup_logging, setup_tracing
from runtime.temporal import temporal_runtime, unavailable
from runtime.temporal_connection import TemporalConnection

log = logging.getLogger("vmsnap.bridge")


async def run(settings: Settings) -> None:
    started = time.monotonic()
    # the one connection: the dispatcher, the schedules and the gate that read Temporal are its users, moved to a new
    # client when the TLS files change (runtime/temporal_connection.py)
    connection = TemporalConnection(settings, temporal_runtime(), setup_tracing(settings, "vmsnap-bridge"),
                                    period=settings.prerequisites_check_seconds,
                                    check_every=settings.temporal_certificate_check_seconds)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running: Callable[[], Awaitable[str | None]] | None = None  # what readiness checks once set up
    dispatching: asyncio.Task[None] | None = None

    async def not_ready() -> str | None:
        if connection.client is None:
            return connection.not_ready()
        return await running() if running is not None else "starting"

    health = HealthServer(settings.health_port, live=lambda: dispatching is None or not dispatching.done(),
                          not_ready=not_ready, port_file=settings.health_port_file)
    await health.start()  # before connecting: live, and not ready saying what it is waiting for
    connecting = asyncio.ensure_future(connection.connected())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait((connecting, stopped), return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():  # stopped before Temporal could be reached
        connecting.cancel()
        await health.stop()
        return
    stopped.cancel()
    client = connecting.result()
    connection.start()
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    kube = Kube(api_client(settings))  # the process's one client, shared by its informers, schedules and webhook
    # The bridge acts only while every gate says so (runtime/gates.py): VM Operator's own snapshot controller is off
    # (runtime/coexistence.py), the namespace has the search attributes (runtime/namespace_check.py). Standing aside,
    # its informers keep watching (reads only), but nothing they see reaches Temporal: the changes are dropped at
    # delivery and again before a held one goes out; once it acts again, the informers' resync hands everything over.
    coexistence = Coexistence(kube, allow=settings.allow_beside_vm_operator_snapshots,
                              period=settings.vm_operator_check_seconds)
    search_attributes = SearchAttributesCheck(client, period=settings.prerequisites_check_seconds)
    gates = Gates(coexistence, search_attributes)
    await gates.check()
    dispatcher = Dispatcher(client, settings.task_queue, concurrency=settings.bridge_dispatch_concurrency,
                            acting=lambda: gates.acting)
    connection.users.extend((search_attributes, dispatcher))

    # the cache and the events hold only what the decisions read
    def relisted(plural: str, lists: int) -> None:
        RELISTS.labels(plural).set(lists)

    def gated(deliver: Callable[[Event], None]) -> Callable[[Event], None]:
        return lambda event: deliver(event) if gates.acting else None

    informers = [Informer(kube, plural, gated(dispatcher.deliver_threadsafe(loop)),
                          resync_seconds=settings.resync_seconds, namespace=settings.watch_namespace,
                          transform=fields, on_list=relisted)
                 for plural, fields in ((SNAPSHOT_PLURAL, snapshot_fields), (VM_PLURAL, vm_fields))]
    # VirtualMachineSnapshotSchedules, where deploy/components/schedules installed the kind and its grants: each
    # followed by its Temporal Schedule (bridge/schedules.py). Looked for once, at start.
    schedules: ScheduleSync | None = None
    if (off := await asyncio.to_thread(kube.schedules_unavailable, settings.watch_namespace)) is not None:
        log.info("not following VirtualMachineSnapshotSchedules: %s", off)
    else:
        schedules = ScheduleSync(client, settings.task_queue, kube)
        connection.users.append(schedules)
        informers.append(Informer(kube, SCHEDULE_PLURAL, gated(schedules.deliver_threadsafe(loop)),
                                  resync_seconds=settings.resync_seconds, namespace=settings.watch_namespace,
                                  on_list=relisted, group=SCHEDULE_GROUP, version=SCHEDULE_VERSION))
    # VirtualMachineGroupSnapshots, where deploy/components/group-snapshots installed the kind and its grants: each
    # taken by its saga (bridge/group_snapshots.py). Looked for once, at start.
    groups: GroupSnapshotSync | None = None
    if (off := await asyncio.to_thread(kube.group_snapshots_unavailable, settings.watch_namespace)) is not None:
        log.info("not following VirtualMachineGroupSnapshots: %s", off)
    else:
        groups = GroupSnapshotSync(client, settings.task_queue)
        connection.users.append(groups)
        informers.append(Informer(kube, GROUP_SNAPSHOT_PLURAL, gated(groups.deliver_threadsafe(loop)),
                                  resync_seconds=settings.resync_seconds, namespace=settings.watch_namespace,
                                  on_list=relisted, group=GROUP_SNAPSHOT_GROUP, version=GROUP_SNAPSHOT_VERSION))
    admission = None
    if settings.webhook_cert_file and settings.webhook_key_file:
        # imported only here: aiohttp and the webhook cost ~11 MB a watch-only bridge does not need
        from bridge.admission.server import AdmissionServer
        # served before the informers catch up: admission reads what it needs from the apiserver itself.
        # Standing aside for VM Operator's controller, it fails open: it admits every review unchanged (no finalizer,
        # no label, no refusal), as if it were not registered. Its configurations' failurePolicy is Fail and they
        # cover every VirtualMachine write, so a webhook that refused (or went unready) would block users' and VM
        # Operator's own writes cluster-wide; and its rules are this product's, while VM Operator's own webhooks
        # judge the snapshots its controller takes. Its /readyz stays 200 for the same reason: the Service must keep
        # it. Standing aside for another gate (missing search attributes), it admits as usual: this product is still
        # the controller, and the snapshots admitted meanwhile are handed over once it acts.
        admission = AdmissionServer(kube, settings.webhook_cert_file, settings.webhook_key_file,
                                    port=settings.webhook_port, reuse_port=settings.webhook_reuse_port,
                                    standing_aside=lambda: not coexistence.acting)
        await admission.start()
    dispatching = asyncio.create_task(dispatcher.run())
    scheduling = asyncio.create_task(schedules.run()) if schedules is not None else None
    grouping = asyncio.create_task(groups.run()) if groups is not None else None

    async def running_not_ready() -> str | None:  # ready once every informer has listed, while Temporal answers
        if (aside := gates.not_ready()) is not None:
            return aside
        listing = [i.plural for i in informers if not i.synced.is_set()]
        if listing:
            return f"still listing {', '.join(listing)}"
        return await unavailable(connection.client or client, settings.task_queue)
    running = running_not_ready
    gates.start()
    for informer in informers:
        await start_informer(informer)
    log.info("bridge watching %s", ", ".join(i.plural for i in informers))
    caught_up_logged = asyncio.create_task(log_when_caught_up(dispatcher, started))
    print("bridge running", flush=True)
    await stop.wait()
    for informer in informers:
        informer.stop()
    dispatching.cancel()
    if scheduling is not None:
        scheduling.cancel()
    if grouping is not None:
        grouping.cancel()
    caught_up_logged.cancel()
    await gates.stop()
    await connection.stop()
    await health.stop()
    if admission is not None:
        await admission.stop()


def main() -> None:
    settings = Settings()
    setup_logging(settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
