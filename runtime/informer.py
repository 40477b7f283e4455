"""List + watch of one custom resource, as client-go's informer does it: list, then watch from the list's
resourceVersion; on a dropped connection resume from the last resourceVersion seen; on 410 Gone list again;
every `resync` seconds hand every cached object over once more (the safety net for anything missed).
Lists are paginated (PAGE_SIZE below), so a large list never sits in memory twice; each object is
passed through `transform` (like client-go's SetTransform) before it is cached or handed over: by default it only
loses metadata.managedFields, the bridge gives the decisions' own projections. The cache and the events keep each
object as compact JSON (~1.1 KB for a Ready snapshot as the bridge trims it, against ~3.4 KB as Python dicts),
decoded when read.

The kubernetes client is blocking, so the loop runs in a thread and hands events to asyncio."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from api.names import GROUP, VERSION
from runtime.kube import Kube

log = logging.getLogger("vmsnap.informer")

WATCH_SECONDS = 300
# Smaller than the product's other lists (LIST_PAGE_SIZE): a long-running process keeps the heap its biggest page
# needed (glibc does not give the freed pages back), and a page of 500 snapshots costs ~15 MB resident for good,
# 100 ~5 MB (bench.bridge_scale); the extra requests of a full list are a few milliseconds each.
PAGE_SIZE = 100


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without metadata.managedFields (server-side apply's bookkeeping, often most of its size)."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Event:
    """A watched change: kind is ADDED | MODIFIED | DELETED | SYNC (a relist or resync re-delivery). The object
    is kept encoded (shared with the cache); `obj` decodes a fresh copy on each access."""

    __slots__ = ("kind", "plural", "raw")

    def __init__(self, kind: str, plural: str, obj: dict[str, Any] | bytes):
        self.kind, self.plural = kind, plural
        self.raw = obj if isinstance(obj, bytes) else encode(obj)

    @property
    def obj(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.raw))

    def __repr__(self) -> str:
        return f"Event({self.kind!r}, {self.plural!r}, {self.raw[:80]!r}…)"


class Informer:
    """Of `plural` in `group`/`version` (VM Operator's unless told otherwise)."""

    def __init__(self, kube: Kube, plural: str, deliver: Callable[[Event], None], resync_seconds: float = 300.0,
                 namespace: str = "", transform: Callable[[dict[str, Any]], dict[str, Any]] = without_managed_fields,
                 page_size: int = PAGE_SIZE, on_list: Callable[[str, int], None] | None = None, *,
                 group: str = GROUP, version: str = VERSION):
        self.kube = kube
        self.namespace = namespace
        self.plural, self.group, self.version = plural, group, version
        self.deliver = deliver
        self.transform = transform
        self.page_size = page_size
        self.resync_seconds = resync_seconds
        self.on_list = on_list  # (plural, full lists so far): the bridge's relist gauge
        self.cache: dict[str, bytes] = {}   # uid → transformed object, encoded
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None

    def _list(self) -> None:
        items: list[tuple[str, str, str, bytes]] = []  # (creationTimestamp, name, uid, encoded object)
        resource_version = None
        # pages of one consistent list; an expired continue token is a 410: listed again from scratch
        for page in self.kube.list_object_pages(self.plural, self.namespace, page_size=self.page_size,
                                                group=self.group, version=self.version):
            for listed in page["items"]:
                obj = self.transform(listed)
                meta = obj["metadata"]
                items.append((meta.get("creationTimestamp", ""), meta["name"], meta["uid"], encode(obj)))
            resource_version = page["metadata"]["resourceVersion"]  # every page carries the list's
        page = listed = obj = {}  # not kept
        items.sort(key=lambda item: item[:2])
        seen = {uid for _, _, uid, _ in items}
        for uid in [u for u in self.cache if u not in seen]:  # deleted while we were not watching
            self.deliver(Event("DELETED", self.plural, self.cache.pop(uid)))
        for _, _, uid, raw in items:
            self.cache[uid] = raw
            self.deliver(Event("SYNC", self.plural, raw))
        self.resource_version = resource_version
        self.relists += 1
        if self.on_list is not None:
            self.on_list(self.plural, self.relists)
        self.synced.set()

    def _watch_once(self) -> None:
        self._watch, events = self.kube.watch_objects(self.plural, self.namespace, self.resource_version,
                                                      int(max(1, min(WATCH_SECONDS, self.resync_seconds))),
                                                      group=self.group, version=self.version)
        for event in events:
            if self._stop.is_set():
                return
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise ApiException(status=410, reason="Gone")
                raise ApiException(status=obj.get("code", 500), reason=obj.get("message", "watch error"))
            self.resource_version = obj["metadata"]["resourceVersion"]
            if kind == "BOOKMARK":
                continue
            obj = self.transform(obj)
            uid, raw = obj["metadata"]["uid"], encode(obj)
            if kind == "DELETED":
                self.cache.pop(uid, None)
            else:
                self.cache[uid] = raw
            self.deliver(Event(kind, self.plural, raw))

    def _resync(self) -> None:
        for raw in list(self.cache.values()):
            self.deliver(Event("SYNC", self.plural, raw))

    def run(self) -> None:
        """The informer loop (blocking; run it in a thread). Errors back off and retry forever."""
        backoff, last_resync = 1.0, time.monotonic()
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch_once()
                backoff = 1.0
            except ApiException as e:
                if e.status == 410:
                    log.info("%s: resourceVersion %s is gone, listing again", self.plural, self.resource_version)
                    self.resource_version = None
                    continue
                log.warning("%s: watch failed (%s), retrying in %.0fs", self.plural, e.status, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)
            except Exception as e:  # noqa: BLE001 - connection resets, apiserver restarts
                if self._stop.is_set():
                    return
                log.warning("%s: watch interrupted (%s), retrying in %.0fs", self.plural, e, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30)
            if time.monotonic() - last_resync >= self.resync_seconds:
                self._resync()
                last_resync = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            cast(Callable[[], None], self._watch.stop)()


async def start_informer(informer: Informer) -> threading.Thread:
    thread = threading.Thread(target=informer.run, name=f"informer-{informer.plural}", daemon=True)
    thread.start()
    await asyncio.to_thread(informer.synced.wait)
    return thread
