"""The health endpoint of the worker and the bridge: live while the event loop answers and the process does its
work; ready while Temporal answers too (a pod that lost Temporal stops taking traffic but is not restarted for it,
and /readyz says why in one line)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web


class HealthServer:
    """`not_ready()` returns why the process is not ready, or None when it is."""

    def __init__(self, port: int, live: Callable[[], bool], not_ready: Callable[[], Awaitable[str | None]],
                 host: str = "0.0.0.0", port_file: Path | None = None):
        self.port, self.host, self.port_file = port, host, port_file
        self._live, self._not_ready = live, not_ready
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok") if self._live() else web.Response(status=503, text="worker stopped")

    async def _readyz(self, _: web.Request) -> web.Response:
        try:
            why = await self._not_ready()
        except Exception as e:  # noqa: BLE001 - any failure of the check itself means not ready
            why = f"readiness check failed: {e}"
        return web.Response(text="ok") if why is None else web.Response(status=503, text=why)

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.create_server((self.host, self.port))
        self.port = listener.getsockname()[1]  # the bound one, when asked for port 0
        await web.SockSite(self._runner, listener).start()
        if self.port_file:
            self.port_file.write_text(f"{self.port}\n")

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
