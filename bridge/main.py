"""`vmsnap-bridge`: watches VirtualMachineSnapshot (and VirtualMachine) objects and turns their changes into
Temporal workflow starts and signals. It serves the admission webhook and never talks to vCenter."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import prometheus_client

from api.names import SNAPSHOT_PLURAL, VM_PLURAL
from api.schedule_names import SCHEDULE_PLURAL
from bridge.decisions import snapshot_fields, vm_fields
from bridge.dispatcher import Dispatcher, log_when_caught_up
from bridge.metrics import RELISTS
from bridge.schedules import ScheduleSync
from runtime.health import HealthServer
from runtime.informer import Informer, start_informer
from runtime.kube import Kube, api_client
from runtime.kube_schedule import ScheduleKube
from runtime.settings import Settings
from runtime.telemetry import setup_logging, setup_tracing
from runtime.temporal import connect, temporal_runtime, unavailable

log = logging.getLogger("vmsnap.bridge")


async def run(settings: Settings) -> None:
    started = time.monotonic()
    client = await connect(settings, temporal_runtime(), plugins=setup_tracing(settings, "vmsnap-bridge"))
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    api = api_client(settings)
    dispatcher = Dispatcher(client, settings.task_queue, concurrency=settings.bridge_dispatch_concurrency)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # the cache and the events hold only what the decisions read
    def relisted(plural: str, lists: int) -> None:
        RELISTS.labels(plural).set(lists)

    informers = [Informer(Kube(api), plural, dispatcher.deliver_threadsafe(loop),
                          resync_seconds=settings.resync_seconds, namespace=settings.watch_namespace,
                          transform=fields, on_list=relisted)
                 for plural, fields in ((SNAPSHOT_PLURAL, snapshot_fields), (VM_PLURAL, vm_fields))]
    # VirtualMachineSnapshotSchedules: each followed by its Temporal Schedule (bridge/schedules.py)
    schedules = ScheduleSync(client, settings.task_queue, Kube(api))
    informers.append(Informer(ScheduleKube(Kube(api)), SCHEDULE_PLURAL,  # type: ignore[arg-type]
                              schedules.deliver_threadsafe(loop), resync_seconds=settings.resync_seconds,
                              namespace=settings.watch_namespace, on_list=relisted))
    admission = None
    if settings.webhook_cert_file and settings.webhook_key_file:
        # imported only here: aiohttp and the webhook cost ~11 MB a watch-only bridge does not need
        from bridge.admission.server import AdmissionServer
        # served before the informers catch up: admission reads what it needs from the apiserver itself
        admission = AdmissionServer(api, settings.webhook_cert_file, settings.webhook_key_file,
                                    port=settings.webhook_port, reuse_port=settings.webhook_reuse_port)
        await admission.start()
    dispatching = asyncio.create_task(dispatcher.run())
    scheduling = asyncio.create_task(schedules.run())

    async def not_ready() -> str | None:  # ready once every informer has listed, while Temporal answers
        listing = [i.plural for i in informers if not i.synced.is_set()]
        if listing:
            return f"still listing {', '.join(listing)}"
        return await unavailable(client, settings.task_queue)
    health = HealthServer(settings.health_port, live=lambda: not dispatching.done(), not_ready=not_ready,
                          port_file=settings.health_port_file)
    await health.start()
    for informer in informers:
        await start_informer(informer)
    log.info("bridge watching %s", ", ".join(i.plural for i in informers))
    caught_up_logged = asyncio.create_task(log_when_caught_up(dispatcher, started))
    print("bridge running", flush=True)
    await stop.wait()
    for informer in informers:
        informer.stop()
    dispatching.cancel()
    scheduling.cancel()
    caught_up_logged.cancel()
    await health.stop()
    if admission is not None:
        await admission.stop()


def main() -> None:
    settings = Settings()
    setup_logging(settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
