"""The one way the product talks to Kubernetes (worker, bridge, admission, importer): one API client per
process; reads that answer None for a missing object; lists in pages; a watch; typed reads of our kinds;
read-modify-write with optimistic concurrency (a 409, or a status patch's failed test, re-reads and re-applies,
so writes converge), merge patches and deletes with the UID as precondition; PVC reads and Events. Nothing
outside runtime/ imports the kubernetes client: an error the apiserver answered reaches the callers that tell
them apart as a `KubeError`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, TypeVar, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from api import VirtualMachine, VirtualMachineSnapshot
from api.group_snapshot import VirtualMachineGroupSnapshot
from api.group_snapshot_names import GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_PLURAL, GROUP_SNAPSHOT_VERSION
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_NAME_LABEL, VM_PLURAL
from api.schedule import VirtualMachineSnapshotSchedule
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_PLURAL, SCHEDULE_VERSION
from runtime.last_written import LastWritten
from runtime.settings import Settings

Model = TypeVar("Model", VirtualMachineSnapshot, VirtualMachine, VirtualMachineSnapshotSchedule,
                VirtualMachineGroupSnapshot)
JSON = dict[str, Any]

CONFLICT_RETRIES = 10
LIST_PAGE_SIZE = 500
# objects this process wrote last, kept so the next read-modify-write of the same object (an operation's next
# status step) starts from them instead of a GET: one request instead of two. A metadata write (or a merge patch)
# is still at that resourceVersion (anyone else's write since: 409); a status write is a JSON patch that tests the
# uid, the generation and each field it changes (one of those changed since: 422). Either way the object is read
# again.
REMEMBERED_WRITES = 512
JSON_PATCH = "application/json-patch+json"

# the client's functions without type annotations, as the typed callables they are (mypy --strict refuses a call
# of an unannotated function)
_load_kube_config = cast(Callable[..., None], config.load_kube_config)
_load_incluster_config = cast(Callable[..., None], config.load_incluster_config)
_new_watch = cast(Callable[[], watch.Watch], watch.Watch)


class KubeError(Exception):
    """A request the apiserver answered with an error: its HTTP status, reason and the message of the Status it
    returned (never the whole response)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status, self.reason, self.message = status, reason, message

    @classmethod
    def answered(cls, error: BaseException) -> KubeError | None:
        """The apiserver's answer `error` carries (an error a Kube call raised), or None for any other error (no
        answer: a timeout, a refused connection)."""
        if isinstance(error, KubeError):
            return error
        return cls.of(error) if isinstance(error, ApiException) else None

    @classmethod
    def of(cls, error: ApiException) -> KubeError:
        try:
            message = str(json.loads(error.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        return cls(int(error.status or 0), str(error.reason or ""), message)


class TimedApiClient(client.ApiClient):  # type: ignore[misc]  # the client is not followed (pyproject.toml)
    """An ApiClient whose requests carry a timeout unless the call sets its own (a watch does): the kubernetes
    client's default is to wait forever for an apiserver that accepted the connection and went quiet."""

    def __init__(self, configuration: client.Configuration, request_timeout: float):
        super().__init__(configuration)
        self.request_timeout = (request_timeout / 3, request_timeout)  # (connect, read)

    def call_api(self, method: str, url: str, header_params: dict[str, str] | None = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or self.request_timeout)


def api_client(settings: Settings) -> client.ApiClient:
    """KUBECONFIG when set, else the in-cluster service account."""
    configuration = client.Configuration()
    if settings.kubeconfig:
        _load_kube_config(str(settings.kubeconfig), client_configuration=configuration)
    else:
        _load_incluster_config(client_configuration=configuration)
    return TimedApiClient(configuration, settings.kube_request_timeout_seconds)


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self._written: LastWritten[tuple[str, str, str], JSON] = LastWritten("kube_object", REMEMBERED_WRITES)

    @cached_property
    def core(self) -> client.CoreV1Api:
        """The core API (events), made on first use: its module alone is ~22 MB resident, which a process that only
        watches our kinds (the bridge) does not need."""
        return client.CoreV1Api(self.api)

    # --- custom objects as JSON (VM Operator's group unless `group` says otherwise) ---
    def get_object(self, plural: str, namespace: str, name: str, *, timeout: float | None = None,
                   group: str = GROUP, version: str = VERSION) -> JSON | None:
        """The object, or None if it does not exist."""
        try:
            return cast(JSON, self.custom.get_namespaced_custom_object(group, version, namespace, plural, name,
                                                                       **_timeout(timeout)))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_cluster_object(self, plural: str, name: str, *, group: str, version: str,
                           timeout: float | None = None) -> JSON | None:
        """A cluster-scoped custom object, or None if it does not exist (a 404: no such object, or no such API
        when its CRD is not installed)."""
        try:
            return cast(JSON, self.custom.get_cluster_custom_object(group, version, plural, name,
                                                                    **_timeout(timeout)))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_object_pages(self, plural: str, namespace: str = "", *, label_selector: str | None = None,
                          page_size: int = LIST_PAGE_SIZE, timeout: float | None = None,
                          group: str = GROUP, version: str = VERSION) -> Iterator[JSON]:
        """The pages of one consistent list (every page carries the list's resourceVersion); an expired continue
        token raises 410 Gone, and the caller lists again from scratch."""
        token = None
        while True:
            page = cast(JSON, self._lister(namespace)(
                *_list_args(group, version, plural, namespace), limit=page_size,
                **({"_continue": token} if token else {}),
                **({"label_selector": label_selector} if label_selector else {}), **_timeout(timeout)))
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_objects(self, plural: str, namespace: str = "", **kwargs: Any) -> list[JSON]:
        """Every object (namespace "" = every namespace), read in pages."""
        return [item for page in self.list_object_pages(plural, namespace, **kwargs)
                for item in page.get("items") or []]

    def watch_objects(self, plural: str, namespace: str, resource_version: str | None, timeout_seconds: int, *,
                      group: str = GROUP, version: str = VERSION) -> tuple[watch.Watch, Iterator[JSON]]:
        """A watch from `resource_version` with bookmarks; the Watch (to stop it) and its events."""
        w = _new_watch()
        stream = cast(Callable[..., Iterator[JSON]], w.stream)
        return w, stream(self._lister(namespace), *_list_args(group, version, plural, namespace),
                         resource_version=resource_version, allow_watch_bookmarks=True,
                         timeout_seconds=timeout_seconds, _request_timeout=watch_request_timeout(timeout_seconds))

    def create_object(self, plural: str, namespace: str, body: JSON, *,
                      group: str = GROUP, version: str = VERSION) -> JSON:
        """The object as created; a `KubeError` when the apiserver refuses it (409: the name is taken)."""
        try:
            return cast(JSON, self.custom.create_namespaced_custom_object(group, version, namespace, plural, body))
        except ApiException as e:
            raise KubeError.of(e) from e

    def patch_object(self, plural: str, namespace: str, name: str, patch: JSON, *, status: bool = False,
                     group: str = GROUP, version: str = VERSION) -> JSON:
        """A merge patch of the object (or of its status)."""
        apply = (self.custom.patch_namespaced_custom_object_status if status
                 else self.custom.patch_namespaced_custom_object)
        return cast(JSON, apply(group, version, namespace, plural, name, patch))

    def delete_object(self, plural: str, namespace: str, name: str, uid: str, *,
                      group: str = GROUP, version: str = VERSION) -> bool:
        """Delete the object if it is still the one read (the UID is the precondition); False when it is already
        gone, or its name now belongs to another object."""
        try:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name,
                                                        body=client.V1DeleteOptions(
                                                            preconditions=client.V1Preconditions(uid=uid)))
        except ApiException as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    def _lister(self, namespace: str) -> Callable[..., Any]:
        return cast(Callable[..., Any], self.custom.list_namespaced_custom_object if namespace
                    else self.custom.list_cluster_custom_object)

    # --- core objects ---
    def get_config_map(self, namespace: str, name: str, *, timeout: float | None = None) -> JSON | None:
        """A ConfigMap as JSON, or None if it does not exist."""
        try:
            return self._get_core("/api/v1/namespaces/{namespace}/configmaps/{name}", namespace, name, timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def read_pvc(self, namespace: str, name: str) -> JSON:
        """A PersistentVolumeClaim as JSON (a missing one is an error: the VM names it)."""
        return self._get_core("/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}", namespace, name, None)

    def _get_core(self, path: str, namespace: str, name: str, timeout: float | None) -> JSON:
        """A plain GET through the API client rather than CoreV1Api, whose module a process that never otherwise
        needs it (the bridge) should not load (see `core`)."""
        method, url, headers, body, post = self.api.param_serialize(
            "GET", path, path_params={"namespace": namespace, "name": name},
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        cast(Callable[[], bytes], response.read)()
        return cast(JSON, self.api.response_deserialize(response, {"200": "object"}).data)

    def create_event(self, namespace: str, event: JSON) -> None:
        """An Event (core/v1, as JSON: the client sends a dict body as it is)."""
        self.core.create_namespaced_event(namespace, cast(client.CoreV1Event, event))

    # --- reads (None when the object does not exist) ---
    def get_snapshot(self, namespace: str, name: str) -> VirtualMachineSnapshot | None:
        return self._get(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name)

    def get_vm(self, namespace: str, name: str) -> VirtualMachine | None:
        return self._get(VirtualMachine, VM_PLURAL, namespace, name)

    def get_schedule(self, namespace: str, name: str) -> VirtualMachineSnapshotSchedule | None:
        return self._get(VirtualMachineSnapshotSchedule, SCHEDULE_PLURAL, namespace, name,
                         group=SCHEDULE_GROUP, version=SCHEDULE_VERSION)

    def get_group_snapshot(self, namespace: str, name: str) -> VirtualMachineGroupSnapshot | None:
        return self._get(VirtualMachineGroupSnapshot, GROUP_SNAPSHOT_PLURAL, namespace, name,
                         group=GROUP_SNAPSHOT_GROUP, version=GROUP_SNAPSHOT_VERSION)

    def list_vm_snapshots(self, namespace: str, vm_name: str) -> list[VirtualMachineSnapshot]:
        """The VM's snapshots, by the vm-name label admission puts on every snapshot (so the list is the VM's,
        not the namespace's); the label is checked against spec.vmName as well."""
        items = self.list_objects(SNAPSHOT_PLURAL, namespace, label_selector=f"{VM_NAME_LABEL}={vm_name}")
        return [s for s in map(VirtualMachineSnapshot.model_validate, items) if s.vm_name == vm_name]

    def list_vms(self, namespace: str = "") -> list[VirtualMachine]:
        return [VirtualMachine.model_validate(i) for i in self.list_objects(VM_PLURAL, namespace)]

    def list_volume_snapshots(self, namespace: str) -> list[JSON]:
        """CSI VolumeSnapshots (snapshot.storage.k8s.io/v1) in the namespace; none where that API is absent."""
        try:
            listed = cast(JSON, self.custom.list_namespaced_custom_object("snapshot.storage.k8s.io", "v1",
                                                                          namespace, "volumesnapshots"))
        except ApiException as e:
            if e.status == 404:
                return []
            raise
        return cast(list[JSON], listed["items"])

    def schedules_unavailable(self, namespace: str = "") -> str | None:
        """Why this process cannot follow VirtualMachineSnapshotSchedules, or None when it can: the kind is not
        installed (404) or listing it is not granted (403) — deploy/components/schedules brings both."""
        return self._kind_unavailable(SCHEDULE_PLURAL, SCHEDULE_GROUP, SCHEDULE_VERSION, namespace,
                                      "deploy/components/schedules", "vmsnap-bridge-schedules")

    def group_snapshots_unavailable(self, namespace: str = "") -> str | None:
        """The same for VirtualMachineGroupSnapshots — deploy/components/group-snapshots brings both."""
        return self._kind_unavailable(GROUP_SNAPSHOT_PLURAL, GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, namespace,
                                      "deploy/components/group-snapshots", "vmsnap-bridge-group-snapshots")

    def _kind_unavailable(self, plural: str, group: str, version: str, namespace: str, component: str,
                          role: str) -> str | None:
        try:
            next(self.list_object_pages(plural, namespace, page_size=1, group=group, version=version))
        except ApiException as e:
            if e.status == 404:
                return f"the kind is not installed (no {plural}.{group}); {component} installs it"
            if e.status == 403:
                return f"listing {plural}.{group} is not granted; {component} grants it (ClusterRole {role})"
            raise
        return None

    def _get(self, model: type[Model], plural: str, namespace: str, name: str, *,
             group: str = GROUP, version: str = VERSION) -> Model | None:
        obj = self.get_object(plural, namespace, name, group=group, version=version)
        return model.model_validate(obj) if obj is not None else None

    # --- writes ---
    def update_snapshot(self, namespace: str, name: str, mutate: Callable[[VirtualMachineSnapshot], bool],
                        *, status: bool = False,
                        current: VirtualMachineSnapshot | None = None) -> VirtualMachineSnapshot | None:
        """`current`: the object as the caller just read it (e.g. in a list), tried first instead of a GET."""
        return self._update(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name, mutate, status=status,
                            current=current)

    def annotate_snapshot(self, namespace: str, name: str, uid: str,
                          annotations: dict[str, str | None]) -> VirtualMachineSnapshot | None:
        """Set (None: remove) annotations on the snapshot with this uid, in one merge patch: annotations are a
        map, so no one else's keys are lost and no resourceVersion is needed; the uid is the patch's
        precondition. None when that object is gone (or its name now belongs to another object)."""
        key = (SNAPSHOT_PLURAL, namespace, name)
        try:
            written = self.patch_object(SNAPSHOT_PLURAL, namespace, name,
                                        {"metadata": {"uid": uid, "annotations": annotations}})
        except ApiException as e:
            self._written.forget(key)
            # the apiserver refuses a uid that is not the object's as an immutable field's change (422)
            if e.status == 404 or (e.status == 422 and '"field":"metadata.uid"' in str(e.body)):
                return None
            raise
        self._written.remember(key, written)
        return VirtualMachineSnapshot.model_validate(written)

    def update_vm(self, namespace: str, name: str, mutate: Callable[[VirtualMachine], bool],
                  *, status: bool = False) -> VirtualMachine | None:
        return self._update(VirtualMachine, VM_PLURAL, namespace, name, mutate, status=status)

    def update_schedule_status(self, namespace: str, name: str,
                               mutate: Callable[[VirtualMachineSnapshotSchedule], bool],
                               ) -> VirtualMachineSnapshotSchedule | None:
        """The schedule's status, merge-patched (its RBAC grants patch, not update: the bridge and the runs both
        write it)."""
        return self._update(VirtualMachineSnapshotSchedule, SCHEDULE_PLURAL, namespace, name, mutate, status=True,
                            merge=True, group=SCHEDULE_GROUP, version=SCHEDULE_VERSION)

    def update_group_snapshot_status(self, namespace: str, name: str,
                                     mutate: Callable[[VirtualMachineGroupSnapshot], bool],
                                     ) -> VirtualMachineGroupSnapshot | None:
        """The group's status, merge-patched (its RBAC grants patch, not update)."""
        return self._update(VirtualMachineGroupSnapshot, GROUP_SNAPSHOT_PLURAL, namespace, name, mutate, status=True,
                            merge=True, group=GROUP_SNAPSHOT_GROUP, version=GROUP_SNAPSHOT_VERSION)

    def _update(self, model: type[Model], plural: str, namespace: str, name: str, mutate: Callable[[Model], bool],
                *, status: bool, current: Model | None = None, merge: bool = False,
                group: str = GROUP, version: str = VERSION) -> Model | None:
        """Read (or take `current`, read by the caller, or what this process wrote last), let `mutate` change the
        model (it returns False when nothing needs writing), and write it back at what was read: the whole object
        (or its status) at its resourceVersion; a JSON patch testing what it changes, for a status written from
        what this process wrote last; with `merge`, a merge patch of the status at the resourceVersion, a field
        `mutate` emptied written as null (a merge patch keeps what it leaves out). A 409 (someone wrote in
        between), or a JSON patch's failed test (422), reads again and re-applies. None if the object is gone."""
        key = (plural, namespace, name)
        remembered = self._written.recall(key) if current is None else None
        obj_before: JSON | None = None  # the remembered object as written, for a status patch
        for _ in range(CONFLICT_RETRIES):
            obj: Model | None
            if current is not None:
                obj, fresh, current = current, True, None
            elif remembered is not None:
                obj, fresh, obj_before, remembered = model.model_validate(remembered), False, remembered, None
            else:
                obj, fresh = self._get(model, plural, namespace, name, group=group, version=version), True
            if obj is None:
                self._written.forget(key)
                return None
            had = set(obj.to_kube().get("status") or {}) if merge else set()
            if not mutate(obj):
                if fresh:
                    return obj
                continue  # what this process wrote last may be out of date: decide on a fresh read
            body = obj.to_kube()
            patch = (status_patch(obj_before, body) if status and not merge and not fresh and obj_before is not None
                     else None)
            try:
                if merge:
                    wanted = body.get("status") or {}
                    written = self.patch_object(plural, namespace, name, {
                        "metadata": {"resourceVersion": obj.metadata.resource_version},
                        "status": {**dict.fromkeys(had - set(wanted)), **wanted}}, status=status,
                        group=group, version=version)
                elif patch is not None:
                    written = cast(JSON, self.custom.patch_namespaced_custom_object_status(
                        group, version, namespace, plural, name, patch, _content_type=JSON_PATCH))
                else:
                    replace = (self.custom.replace_namespaced_custom_object_status if status
                               else self.custom.replace_namespaced_custom_object)
                    written = cast(JSON, replace(group, version, namespace, plural, name, body))
            except ApiException as e:
                self._written.forget(key)
                if e.status == 404:
                    return None
                # 409: written since the resourceVersion; 422 from a patch: its test found a field changed since.
                # A 422 from a replace is the object refused by its schema: retrying cannot help, say why
                if e.status == 409 or (e.status == 422 and patch is not None):
                    continue
                raise
            self._written.remember(key, written)
            if not fresh:
                self._written.hit()  # written without a GET first
            return model.model_validate(written)
        raise RuntimeError(f"{plural} {namespace}/{name}: still conflicting after {CONFLICT_RETRIES} attempts")


def status_patch(written: dict[str, Any], wanted: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A JSON patch from the status this process last wrote to the status it wants, that applies only if the
    object is the same one at the same generation and every status field it changes is still as written: a
    write by someone else to other fields (the CSI driver's annotation, VM Operator's power state) no longer
    costs a 409 and a GET. None when there is no status to compare against (a full write instead)."""
    before, after = written.get("status"), wanted.get("status")
    meta = written.get("metadata") or {}
    if not isinstance(before, dict) or not isinstance(after, dict) or "uid" not in meta:
        return None
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
    if "generation" in meta:
        ops.append({"op": "test", "path": "/metadata/generation", "value": meta["generation"]})
    for field in sorted(before.keys() | after.keys()):
        if before.get(field) == after.get(field):
            continue
        path = "/status/" + field.replace("~", "~0").replace("/", "~1")
        if field in before:
            ops.append({"op": "test", "path": path, "value": before[field]})
            ops.append({"op": "replace", "path": path, "value": after[field]} if field in after
                       else {"op": "remove", "path": path})
        else:
            ops.append({"op": "add", "path": path, "value": after[field]})
    return ops


def _list_args(group: str, version: str, plural: str, namespace: str) -> tuple[str, ...]:
    return (group, version, namespace, plural) if namespace else (group, version, plural)


def watch_request_timeout(timeout_seconds: int) -> tuple[float, float]:
    """A watch's own (connect, read) timeout: the apiserver ends it after timeout_seconds and sends a bookmark
    about every minute meanwhile, so a read that waits longer than the watch itself means the connection is dead."""
    return (10.0, timeout_seconds + 30.0)


def _timeout(seconds: float | None) -> dict[str, Any]:
    return {"_request_timeout": seconds} if seconds is not None else {}
