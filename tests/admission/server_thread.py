"""An AdmissionServer on its own event loop in a background thread.

The tests call the apiserver synchronously (kubernetes client, kubectl); the apiserver calls the webhook while
such a call waits. With the server on the tests' own event loop, that would deadlock until the webhook's
timeout; on its own loop it answers at once, as the bridge's webhook would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from bridge.admission import AdmissionServer

T = TypeVar("T")
START_TIMEOUT_SECONDS = 30


class ServerThread:
    def __init__(self, server: AdmissionServer):
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="admission-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self.call(self.server.start())
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT_SECONDS) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_SECONDS)
            self._loop.close()
