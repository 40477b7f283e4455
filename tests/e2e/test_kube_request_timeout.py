"""The product's request timeout against the real apiserver: a watch that stays quiet for longer than the timeout
is not cut by it (a watch carries its own, longer than the watch), so an informer keeps its watch instead of
failing and listing again."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from kubernetes import client

from api import names
from runtime.informer import Informer, start_informer
from runtime.kube import Kube, api_client
from runtime.settings import Settings


async def test_a_quiet_watch_outlives_the_request_timeout(kubeconfig: Path, kube_api, namespace: str, caplog):
    caplog.set_level(logging.INFO, logger="vmsnap.informer")
    api = api_client(Settings(kubeconfig=kubeconfig, kube_request_timeout_seconds=1))
    seen: list[tuple[str, str]] = []
    arrived = threading.Event()

    def deliver(event) -> None:
        seen.append((event.kind, event.obj["metadata"]["name"]))
        arrived.set()
    informer = Informer(Kube(api), names.SNAPSHOT_PLURAL, deliver, namespace=namespace)
    await start_informer(informer)
    try:
        time.sleep(4)  # quiet: no event on the watch for four request timeouts
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL,
            {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.SNAPSHOT_KIND,
             "metadata": {"name": "after-the-quiet"}, "spec": {"vmName": "my-vm"}})
        assert arrived.wait(30)
        assert seen == [("ADDED", "after-the-quiet")]
        # the watch was never cut (the informer would have logged it and resumed) nor listed again
        assert [r.getMessage() for r in caplog.records if r.name == "vmsnap.informer"] == []
        assert informer.relists == 1
    finally:
        informer.stop()
