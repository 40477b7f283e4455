"""What the bridge's syncs of its own kinds (schedules, group snapshots) share: the informer's events, handed over
from its thread, handled one at a time on the bridge's loop. A failed event is counted and logged; the informer's
next resync hands the object over again, so nothing is retried here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge import metrics
from runtime.informer import Event


class ObjectSync:
    """Subclasses say what they keep in step with each object (`handle`) and name it in logs (`what`)."""

    what = "object"

    def __init__(self) -> None:
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._log = logging.getLogger(f"vmsnap.bridge.{type(self).__module__.rsplit('.', 1)[-1]}")

    def deliver_threadsafe(self, loop: asyncio.AbstractEventLoop) -> Callable[[Event], None]:
        def deliver(event: Event) -> None:
            loop.call_soon_threadsafe(self._events.put_nowait, event)
        return deliver

    async def run(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self.handle(event)
            except Exception:  # noqa: BLE001 - the next resync hands the object over again
                metrics.FAILURES.inc()
                self._log.exception("%s %s %s failed", self.what, event.kind,
                                    event.obj.get("metadata", {}).get("name"))
            metrics.EVENTS.labels(event.plural, event.kind).inc()

    async def handle(self, event: Event) -> None:
        raise NotImplementedError
