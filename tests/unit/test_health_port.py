"""Port 0 for the health server: the kernel picks it and the port file tells the probes (pods sharing the host's
network, tests/pods/overlay)."""

from __future__ import annotations

import asyncio
import urllib.request

from runtime.health import HealthServer


async def _ready() -> str | None:
    return None


async def test_port_zero_is_written_to_the_port_file(tmp_path):
    port_file = tmp_path / "health-port"
    server = HealthServer(0, live=lambda: True, not_ready=_ready, host="127.0.0.1", port_file=port_file)
    await server.start()
    try:
        port = int(port_file.read_text())
        assert port == server.port and port > 0
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").read())
        assert body == b"ok"
    finally:
        await server.stop()

