"""A stand-in for the vSphere CSI driver's side of the snapshot sync handshake: it answers
`csi.vsphere.volume.sync: requested` with `completed`, as the driver's syncer does after syncing volumes.
Tests can hold answers back (`hold()`) to show that a create waits for it durably."""

from __future__ import annotations

import logging
import threading

from kubernetes import client, watch

from api.names import CSI_VOLUME_SYNC_ANNOTATION, GROUP, SNAPSHOT_PLURAL, VERSION, CSIVolumeSync

log = logging.getLogger("vmsnap.testbed.csi")


class CSIDriverStandIn:
    def __init__(self, api: client.ApiClient):
        self.custom = client.CustomObjectsApi(api)
        self._held = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csi-stand-in", daemon=True)
        self.answered: list[str] = []

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
        except client.ApiException as e:
            if e.status != 404:
                log.warning("could not answer %s: %s", meta["name"], e)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self.custom.list_cluster_custom_object(GROUP, VERSION, SNAPSHOT_PLURAL)
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
