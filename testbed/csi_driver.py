"""A stand-in for the vSphere CSI driver's side of the snapshot sync handshake: it answers
`csi.vsphere.volume.sync: requested` with `completed`, as the driver's syncer does after syncing volumes.
Tests run it in-process and can hold answers back (`hold()`) to show that a create waits for it durably.

`python -m testbed.csi_driver` runs it as a process of its own (the dev command and docker-compose do), against
the cluster named by KUBECONFIG (in-cluster config without it). It prints `csi driver stand-in running` once it
has listed the snapshots, logs every answer, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from kubernetes import client, config, watch

from api.names import CSI_VOLUME_SYNC_ANNOTATION, GROUP, SNAPSHOT_PLURAL, VERSION, CSIVolumeSync

log = logging.getLogger("vmsnap.testbed.csi")


class CSIDriverStandIn:
    def __init__(self, api: client.ApiClient):
        self.custom = client.CustomObjectsApi(api)
        self._held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csi-stand-in", daemon=True)
        self.answered: list[str] = []
        self.listed = threading.Event()  # set once the snapshots could be listed (the apiserver answers)

    def start(self) -> "CSIDriverStandIn":
        self._thread.start()
        return self

    def hold(self) -> None:
        self._held.set()

    def release(self) -> None:
        """Stop holding back: answer everything requested so far and from now on."""
        self._held.clear()
        self._answer_all()

    def _answer_all(self) -> None:
        for obj in self.custom.list_cluster_custom_object(GROUP, VERSION, SNAPSHOT_PLURAL)["items"]:
            self._answer(obj)

    def _answer(self, obj: dict) -> None:
        if self._held.is_set():
            return
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(CSI_VOLUME_SYNC_ANNOTATION) != CSIVolumeSync.REQUESTED:
            return
        meta = obj["metadata"]
        patch = {"metadata": {"annotations": {CSI_VOLUME_SYNC_ANNOTATION: CSIVolumeSync.COMPLETED.value}}}
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], SNAPSHOT_PLURAL,
                                                       meta["name"], patch)
            self.answered.append(f'{meta["namespace"]}/{meta["name"]}')
            log.info("answered %s: %s/%s", CSI_VOLUME_SYNC_ANNOTATION, meta["namespace"], meta["name"])
        except client.ApiException as e:
            if e.status != 404:
                log.warning("could not answer %s: %s", meta["name"], e)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self.custom.list_cluster_custom_object(GROUP, VERSION, SNAPSHOT_PLURAL)
                self.listed.set()
                for obj in listing["items"]:
                    self._answer(obj)
                for event in watch.Watch().stream(self.custom.list_cluster_custom_object, GROUP, VERSION,
                                                  SNAPSHOT_PLURAL, timeout_seconds=5,
                                                  resource_version=listing["metadata"]["resourceVersion"]):
                    if self._stop.is_set():
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._answer(event["object"])
            except Exception as e:  # noqa: BLE001 - keep answering across apiserver hiccups
                log.debug("csi stand-in watch restarted: %s", e)
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if os.environ.get("KUBECONFIG"):
        api = config.new_client_from_config(os.environ["KUBECONFIG"])
    else:
        config.load_incluster_config()
        api = client.ApiClient()
    driver = CSIDriverStandIn(api).start()
    while not (driver.listed.wait(0.2) or stop.is_set()):
        pass
    if driver.listed.is_set():
        print(f"csi driver stand-in running: answering {CSI_VOLUME_SYNC_ANNOTATION}: {CSIVolumeSync.REQUESTED.value}"
              f" with {CSIVolumeSync.COMPLETED.value}", flush=True)
    stop.wait()
    driver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
