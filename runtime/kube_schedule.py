"""Kubernetes access for VirtualMachineSnapshotSchedule (our own group, vmsnap.io) and for the snapshot writes a
schedule makes (create, delete), on top of runtime/kube.py (its list, watch and get, given our group). Status
writes are merge patches carrying the resourceVersion read, so they are optimistic like Kube._update: a 409 reads
again and re-applies (the bridge and the runs both write a schedule's status)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
from api.schedule import VirtualMachineSnapshotSchedule
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_PLURAL, SCHEDULE_VERSION
from runtime.kube import CONFLICT_RETRIES, LIST_PAGE_SIZE, Kube


class ScheduleKube:
    def __init__(self, kube: Kube):
        self.kube = kube
        self.custom = kube.custom

    # --- the informer's interface (runtime/informer.py): Kube's list and watch, for our group's schedules ---
    def list_object_pages(self, plural: str, namespace: str = "", *, page_size: int = LIST_PAGE_SIZE,
                          **_: Any) -> Iterator[dict[str, Any]]:
        return self.kube.list_object_pages(SCHEDULE_PLURAL, namespace, page_size=page_size,
                                           group=SCHEDULE_GROUP, version=SCHEDULE_VERSION)

    def watch_objects(self, plural: str, namespace: str, resource_version: str | None,
                      timeout_seconds: int) -> tuple[watch.Watch, Iterator[dict[str, Any]]]:
        return self.kube.watch_objects(SCHEDULE_PLURAL, namespace, resource_version, timeout_seconds,
                                       group=SCHEDULE_GROUP, version=SCHEDULE_VERSION)

    def unavailable(self, namespace: str = "") -> str | None:
        """Why this process cannot follow schedules, or None when it can: the kind is not installed (404) or listing
        it is not granted (403) — deploy/components/schedules brings both."""
        try:
            if namespace:
                self.custom.list_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, namespace,
                                                          SCHEDULE_PLURAL, limit=1)
            else:
                self.custom.list_cluster_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, SCHEDULE_PLURAL, limit=1)
        except ApiException as e:
            if e.status == 404:
                return (f"the kind is not installed (no {SCHEDULE_PLURAL}.{SCHEDULE_GROUP}); "
                        f"deploy/components/schedules installs it")
            if e.status == 403:
                return (f"listing {SCHEDULE_PLURAL}.{SCHEDULE_GROUP} is not granted; "
                        f"deploy/components/schedules grants it (ClusterRole vmsnap-bridge-schedules)")
            raise
        return None

    # --- schedules ---
    def get_schedule(self, namespace: str, name: str) -> VirtualMachineSnapshotSchedule | None:
        obj = self.kube.get_object(SCHEDULE_PLURAL, namespace, name, group=SCHEDULE_GROUP, version=SCHEDULE_VERSION)
        return None if obj is None else VirtualMachineSnapshotSchedule.model_validate(obj)

    def update_schedule_status(self, namespace: str, name: str,
                               mutate: Callable[[VirtualMachineSnapshotSchedule], bool],
                               ) -> VirtualMachineSnapshotSchedule | None:
        """Read, let `mutate` change the status (False: nothing to write), merge-patch the status at the
        resourceVersion read. A field `mutate` emptied is written as null: a merge patch keeps what it leaves out
        (a suspended schedule's nextRunTime would stay, stale). None when the object is gone."""
        for _ in range(CONFLICT_RETRIES):
            schedule = self.get_schedule(namespace, name)
            if schedule is None:
                return None
            had = set(schedule.status.to_kube())
            if not mutate(schedule):
                return schedule
            status = schedule.status.to_kube()
            patch = {"metadata": {"resourceVersion": schedule.metadata.resource_version},
                     "status": {**dict.fromkeys(had - set(status)), **status}}
            try:
                return VirtualMachineSnapshotSchedule.model_validate(
                    self.custom.patch_namespaced_custom_object_status(
                        SCHEDULE_GROUP, SCHEDULE_VERSION, namespace, SCHEDULE_PLURAL, name, patch))
            except ApiException as e:
                if e.status == 404:
                    return None
                if e.status != 409:
                    raise
        raise RuntimeError(f"{SCHEDULE_PLURAL} {namespace}/{name}: still conflicting after {CONFLICT_RETRIES} "
                           f"attempts")

    # --- the snapshots a schedule makes and prunes ---
    def create_snapshot(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.kube.create_object(SNAPSHOT_PLURAL, namespace, body)

    def delete_snapshot(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the object if it is still the one read (UID precondition); False when it is already gone."""
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL, name,
                                                        body={"preconditions": {"uid": uid}})
        except ApiException as e:
            if e.status in (404, 409):  # gone, or another object of that name now
                return False
            raise
        return True
