"""The worker's Kubernetes access: one API client per process, typed reads of our two kinds, and
read-modify-write with optimistic concurrency (a 409 re-reads and re-applies, so writes converge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from api import VirtualMachine, VirtualMachineSnapshot
from api.names import GROUP, SNAPSHOT_PLURAL, VERSION, VM_NAME_LABEL, VM_PLURAL
from worker.settings import Settings

Model = TypeVar("Model", VirtualMachineSnapshot, VirtualMachine)

CONFLICT_RETRIES = 10


def api_client(settings: Settings) -> client.ApiClient:
    if settings.kubeconfig:
        return config.new_client_from_config(str(settings.kubeconfig))
    config.load_incluster_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    # --- reads (None when the object does not exist) ---
    def get_snapshot(self, namespace: str, name: str) -> VirtualMachineSnapshot | None:
        return self._get(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name)

    def get_vm(self, namespace: str, name: str) -> VirtualMachine | None:
        return self._get(VirtualMachine, VM_PLURAL, namespace, name)

    def list_vm_snapshots(self, namespace: str, vm_name: str) -> list[VirtualMachineSnapshot]:
        """The VM's snapshots, by the vm-name label admission puts on every snapshot (so the list is the VM's,
        not the namespace's); the label is checked against spec.vmName as well."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                          label_selector=f"{VM_NAME_LABEL}={vm_name}")["items"]
        return [s for s in map(VirtualMachineSnapshot.model_validate, items) if s.vm_name == vm_name]

    def list_vms(self, namespace: str = "") -> list[VirtualMachine]:
        items = (self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL) if namespace
                 else self.custom.list_cluster_custom_object(GROUP, VERSION, VM_PLURAL))["items"]
        return [VirtualMachine.model_validate(i) for i in items]

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
        try:
            return model.model_validate(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                                 plural, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    # --- writes ---
    def update_snapshot(self, namespace: str, name: str, mutate: Callable[[VirtualMachineSnapshot], bool],
                        *, status: bool = False) -> VirtualMachineSnapshot | None:
        return self._update(VirtualMachineSnapshot, SNAPSHOT_PLURAL, namespace, name, mutate, status)

    def update_vm(self, namespace: str, name: str, mutate: Callable[[VirtualMachine], bool],
                  *, status: bool = False) -> VirtualMachine | None:
        return self._update(VirtualMachine, VM_PLURAL, namespace, name, mutate, status)

    def _update(self, model: type[Model], plural: str, namespace: str, name: str,
                mutate: Callable[[Model], bool], status: bool) -> Model | None:
        """Read, let `mutate` change the model (it returns False when nothing needs writing), and write the
        whole object (or its status) back at the resourceVersion read. Returns None if the object is gone."""
        replace = (self.custom.replace_namespaced_custom_object_status if status
                   else self.custom.replace_namespaced_custom_object)
        for _ in range(CONFLICT_RETRIES):
            obj = self._get(model, plural, namespace, name)
            if obj is None:
                return None
            if not mutate(obj):
                return obj
            try:
                return model.model_validate(replace(GROUP, VERSION, namespace, plural, name, obj.to_kube()))
            except ApiException as e:
                if e.status == 404:
                    return None
                if e.status != 409:
                    raise
        raise RuntimeError(f"{plural} {namespace}/{name}: still conflicting after {CONFLICT_RETRIES} attempts")
