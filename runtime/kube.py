"""The one way the product talks to Kubernetes (worker, bridge, admission, importer): one API client per
process; reads that answer None for a missing object; lists in pages; a watch; typed reads of our two kinds;
read-modify-write with optimistic concurrency (a 409, or a status patch's failed test, re-reads and re-applies,
so writes converge) and merge patches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from api import VirtualMachine, VirtualMachineSnapshot
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_NAME_LABEL, VM_PLURAL
from runtime.settings import Settings

Model = TypeVar("Model", VirtualMachineSnapshot, VirtualMachine)

CONFLICT_RETRIES = 10
LIST_PAGE_SIZE = 500
# objects this process wrote last, kept so the next read-modify-write of the same object (an operation's next
# status step) starts from them instead of a GET: one request instead of two. A metadata write is still at that
# resourceVersion (anyone else's write since: 409); a status write is a JSON patch that tests the uid, the
# generation and each field it changes (one of those changed since: 422). Either way the object is read again.
REMEMBERED_WRITES = 512
JSON_PATCH = "application/json-patch+json"


class TimedApiClient(client.ApiClient):
    """An ApiClient whose requests carry a timeout unless the call sets its own (a watch does): the kubernetes
    client's default is to wait forever for an apiserver that accepted the connection and went quiet."""

    def __init__(self, configuration: client.Configuration, request_timeout: float):
        super().__init__(configuration)
        self.request_timeout = (request_timeout / 3, request_timeout)  # (connect, read)

    def call_api(self, method, url, header_params=None, body=None, post_params=None,  # type: ignore[no-untyped-def]
                 _request_timeout=None):
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or self.request_timeout)


def api_client(settings: Settings) -> client.ApiClient:
    """KUBECONFIG when set, else the in-cluster service account."""
    configuration = client.Configuration()
    if settings.kubeconfig:
        config.load_kube_config(str(settings.kubeconfig), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return TimedApiClient(configuration, settings.kube_request_timeout_seconds)


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self._written: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._written_lock = threading.Lock()

    @cached_property
    def core(self) -> client.CoreV1Api:
        """The core API (events, PVCs), made on first use: its module alone is ~22 MB resident, which a process
        that only watches our kinds (the bridge) does not need."""
        return client.CoreV1Api(self.api)

    # --- custom objects as JSON (VM Operator's group unless `group` says otherwise) ---
    def get_object(self, plural: str, namespace: str, name: str, *, timeout: float | None = None,
                   group: str = GROUP, version: str = VERSION) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name,
                                                            **_timeout(timeout))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_cluster_object(self, plural: str, name: str, *, group: str, version: str,
                           timeout: float | None = None) -> dict[str, Any] | None:
        """A cluster-scoped custom object, or None if it does not exist (a 404: no such object, or no such API
        when its CRD is not installed)."""
        try:
            return self.custom.get_cluster_custom_object(group, version, plural, name, **_timeout(timeout))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_config_map(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """A ConfigMap as JSON, or None if it does not exist. A plain GET through the API client rather than
        CoreV1Api, whose module a process that never otherwise needs it (the bridge) should not load (see `core`)."""
        method, url, headers, body, post = self.api.param_serialize(
            "GET", "/api/v1/namespaces/{namespace}/configmaps/{name}",
            path_params={"namespace": namespace, "name": name}, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        response.read()
        try:
            return self.api.response_deserialize(response, {"200": "object"}).data
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_object_pages(self, plural: str, namespace: str = "", *, label_selector: str | None = None,
                          page_size: int = LIST_PAGE_SIZE, timeout: float | None = None,
                          group: str = GROUP, version: str = VERSION) -> Iterator[dict[str, Any]]:
        """The pages of one consistent list (every page carries the list's resourceVersion); an expired continue
        token raises 410 Gone, and the caller lists again from scratch."""
        token = None
        while True:
            page = self._lister(namespace)(*_list_args(group, version, plural, namespace), limit=page_size,
                                           **({"_continue": token} if token else {}),
                                           **({"label_selector": label_selector} if label_selector else {}),
                                           **_timeout(timeout))
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_objects(self, plural: str, namespace: str = "", **kwargs: Any) -> list[dict[str, Any]]:
        """Every object (namespace "" = every namespace), read in pages."""
        return [item for page in self.list_object_pages(plural, namespace, **kwargs)
                for item in page.get("items") or []]

    def watch_objects(self, plural: str, namespace: str, resource_version: str | None, timeout_seconds: int, *,
                      group: str = GROUP, version: str = VERSION) -> tuple[watch.Watch, Iterator[dict[str, Any]]]:
        """A watch from `resource_version` with bookmarks; the Watch (to stop it) and its events."""
        w = watch.Watch()
        return w, w.stream(self._lister(namespace), *_list_args(group, version, plural, namespace),
                           resource_version=resource_version, allow_watch_bookmarks=True,
                           timeout_seconds=timeout_seconds, _request_timeout=watch_request_timeout(timeout_seconds))

    def create_object(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    def patch_object(self, plural: str, namespace: str, name: str, patch: dict[str, Any], *,
              status: bool = False) -> dict[str, Any]:
        """A merge patch of the object (or of its status)."""
        apply = (self.custom.patch_namespaced_custom_object_status if status
                 else self.custom.patch_namespaced_custom_object)
        return apply(GROUP, VERSION, namespace, plural, name, patch)

    def _lister(self, namespace: str):
        return self.custom.list_namespaced_custom_object if namespace else self.custom.list_cluster_custom_object

    # --- reads (None when the object does not exist) ---
    def get_snapshot(self, namespace: str, name: str) -> VirtualMachineSnapshot | None:
        return self._get(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name)

    def get_vm(self, namespace: str, name: str) -> VirtualMachine | None:
        return self._get(VirtualMachine, VM_PLURAL, namespace, name)

    def list_vm_snapshots(self, namespace: str, vm_name: str) -> list[VirtualMachineSnapshot]:
        """The VM's snapshots, by the vm-name label admission puts on every snapshot (so the list is the VM's,
        not the namespace's); the label is checked against spec.vmName as well."""
        items = self.list_objects(SNAPSHOT_PLURAL, namespace, label_selector=f"{VM_NAME_LABEL}={vm_name}")
        return [s for s in map(VirtualMachineSnapshot.model_validate, items) if s.vm_name == vm_name]

    def list_vms(self, namespace: str = "") -> list[VirtualMachine]:
        return [VirtualMachine.model_validate(i) for i in self.list_objects(VM_PLURAL, namespace)]

    def list_volume_snapshots(self, namespace: str) -> list[dict]:
        """CSI VolumeSnapshots (snapshot.storage.k8s.io/v1) in the namespace; none where that API is absent."""
        try:
            return self.custom.list_namespaced_custom_object("snapshot.storage.k8s.io", "v1", namespace,
                                                             "volumesnapshots")["items"]
        except ApiException as e:
            if e.status == 404:
                return []
            raise

    def _get(self, model: type[Model], plural: str, namespace: str, name: str) -> Model | None:
        obj = self.get_object(plural, namespace, name)
        return model.model_validate(obj) if obj is not None else None

    # --- writes ---
    def update_snapshot(self, namespace: str, name: str, mutate: Callable[[VirtualMachineSnapshot], bool],
                        *, status: bool = False,
                        current: VirtualMachineSnapshot | None = None) -> VirtualMachineSnapshot | None:
        """`current`: the object as the caller just read it (e.g. in a list), tried first instead of a GET."""
        return self._update(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name, mutate, status, current)

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
            self._remember(key, None)
            # the apiserver refuses a uid that is not the object's as an immutable field's change (422)
            if e.status == 404 or (e.status == 422 and '"field":"metadata.uid"' in str(e.body)):
                return None
            raise
        self._remember(key, written)
        return VirtualMachineSnapshot.model_validate(written)

    def update_vm(self, namespace: str, name: str, mutate: Callable[[VirtualMachine], bool],
                  *, status: bool = False) -> VirtualMachine | None:
        return self._update(VirtualMachine, VM_PLURAL, namespace, name, mutate, status)

    def _update(self, model: type[Model], plural: str, namespace: str, name: str,
                mutate: Callable[[Model], bool], status: bool, current: Model | None = None) -> Model | None:
        """Read (or take `current`, read by the caller), let `mutate` change the model (it returns False when
        nothing needs writing), and write the whole object (or its status) back at the resourceVersion read: a
        409 (someone wrote in between) reads again and re-applies. Returns None if the object is gone."""
        replace = (self.custom.replace_namespaced_custom_object_status if status
                   else self.custom.replace_namespaced_custom_object)
        key = (plural, namespace, name)
        remembered = self._recall(key) if current is None else None
        obj_before: dict[str, Any] | None = None  # the remembered object as written, for a status patch
        for _ in range(CONFLICT_RETRIES):
            if current is not None:
                obj, fresh, current = current, True, None
            elif remembered is not None:
                obj, fresh, obj_before, remembered = model.model_validate(remembered), False, remembered, None
            else:
                obj, fresh = self._get(model, plural, namespace, name), True
            if obj is None:
                self._remember(key, None)
                return None
            if not mutate(obj):
                if fresh:
                    return obj
                continue  # what this process wrote last may be out of date: decide on a fresh read
            body = obj.to_kube()
            patch = status_patch(obj_before, body) if status and not fresh and obj_before is not None else None
            try:
                if patch is not None:
                    written = self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, namespace, plural, name, patch, _content_type=JSON_PATCH)
                else:
                    written = replace(GROUP, VERSION, namespace, plural, name, body)
            except ApiException as e:
                self._remember(key, None)
                if e.status == 404:
                    return None
                # 409: written since the resourceVersion; 422 from a patch: its test found a field changed since.
                # A 422 from a replace is the object refused by its schema: retrying cannot help, say why
                if e.status == 409 or (e.status == 422 and patch is not None):
                    continue
                raise
            self._remember(key, written)
            return model.model_validate(written)
        raise RuntimeError(f"{plural} {namespace}/{name}: still conflicting after {CONFLICT_RETRIES} attempts")


    def _recall(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        with self._written_lock:
            return self._written.get(key)

    def _remember(self, key: tuple[str, str, str], obj: dict[str, Any] | None) -> None:
        with self._written_lock:
            self._written.pop(key, None)
            if obj is not None:
                self._written[key] = obj
                if len(self._written) > REMEMBERED_WRITES:
                    self._written.popitem(last=False)


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
