"""The worker's health endpoint: live while the event loop answers and the worker runs; ready while
Temporal answers too (a pod that lost Temporal stops taking traffic but is not restarted for it)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web


class HealthServer:
    def __init__(self, port: int, live: Callable[[], bool], ready: Callable[[], Awaitable[bool]],
                 host: str = "0.0.0.0", port_file: Path | None = None):
        self.port, self.host, self.port_file = port, host, port_file
        self._live, self._ready = live, ready
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok") if self._live() else web.Response(status=503, text="worker stopped")

    async def _readyz(self, _: web.Request) -> web.Response:
        try:
            ok = await self._ready()
        except Exception as e:  # noqa: BLE001 - any failure to reach Temporal means not ready
            return web.Response(status=503, text=f"temporal unreachable: {e}")
        return web.Response(text="ok") if ok else web.Response(status=503, text="not ready")

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
