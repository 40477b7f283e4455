"""What this process wrote last, per key: the one home of the caches that spare a process work it would repeat
because it does not remember its own writes.

* `kube_object` (runtime/kube.py): the objects it wrote last, so the next read-modify-write of one starts from it
  instead of a GET;
* `snapshot_tree` (activities/vsphere/change_feed.py): the snapshot trees it wrote last, so vCenter's report of the
  same change (the operation's own echo) does not make the tree watch read and compare the VM again;
* `bridge_action` (bridge/dispatcher.py): the operations and signals it delivered within the last minute, so the
  watch events of the object's own writes, asking for the same thing, do not send it again.

Each is bounded (the oldest key goes first) and thread-safe; entries older than `max_age` count as forgotten.
What each one spares is counted in `vmsnap_last_written_hits{cache}`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter
from temporalio.common import MetricMeter

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

HITS_HELP = "work spared by remembering what this process wrote last (a GET, a tree resync, a re-sent action)"
HITS = Counter("vmsnap_last_written_hits", HITS_HELP, ["cache"])


def _count_in_prometheus_client(cache: str) -> None:
    HITS.labels(cache).inc()


_count: Callable[[str], None] = _count_in_prometheus_client


def count_through(meter: MetricMeter) -> None:
    """Count the hits through Temporal's metric meter: the worker serves its metrics from Temporal's runtime,
    where prometheus_client's registry (the bridge's) is not served."""
    global _count
    hits = meter.create_counter("vmsnap_last_written_hits", HITS_HELP)
    _count = lambda cache: hits.add(1, {"cache": cache})  # noqa: E731


class LastWritten(Generic[Key, Value]):
    def __init__(self, cache: str, capacity: int, max_age: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cache = cache  # the metric's label
        self.capacity = capacity
        self.max_age = max_age
        self.hits = 0
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[Value, float]] = OrderedDict()  # oldest write first
        self._lock = threading.Lock()

    def remember(self, key: Key, value: Value) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (value, self._clock())
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def recall(self, key: Key) -> Value | None:
        """What was written last under `key`, unless it is older than `max_age`."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            return None if entry is None else entry[0]

    def echo(self, key: Key, value: Value) -> bool:
        """Whether `value` is what was written last under `key`; counted as a hit when it is."""
        matches = self.recall(key) == value
        if matches:
            self.hit()
        return matches

    def hit(self) -> None:
        """Count one piece of work spared by what `recall` returned."""
        with self._lock:
            self.hits += 1
        _count(self.cache)

    def _expire(self) -> None:
        if self.max_age is None:
            return
        oldest = self._clock() - self.max_age
        while self._entries:
            key, (_, at) = next(iter(self._entries.items()))
            if at > oldest:
                return
            del self._entries[key]
