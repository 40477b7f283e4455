"""runtime/kube.py's status writes against the real apiserver: the next status write of an object this process
wrote is one JSON patch that tests only the fields it changes, so another writer's annotation or status field
costs no conflict; a change to a field it writes (or to the spec) makes it read again and apply again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from api import names
from runtime.kube import Kube
from tests.unit.test_kube_writes import set_status


class CountingCustomObjects:
    """The client's CustomObjectsApi, with a log of the calls the product's Kube makes."""

    def __init__(self, real: client.CustomObjectsApi):
        self.real, self.calls = real, []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)
        return call


def their(kube_api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def counted_kube(kube_api, namespace: str) -> tuple[Kube, CountingCustomObjects]:
    their(kube_api).create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL, {
        "apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.SNAPSHOT_KIND, "metadata": {"name": "s"},
        "spec": {"vmName": "my-vm"}})
    kube = Kube(kube_api)
    counting = CountingCustomObjects(kube.custom)
    kube.custom = counting  # type: ignore[assignment]
    kube.update_snapshot(namespace, "s", set_status("power_state", "PoweredOff"), status=True)
    counting.calls.clear()
    return kube, counting


def test_other_writers_fields_cost_no_conflict(kube_api, namespace):
    kube, counting = counted_kube(kube_api, namespace)
    their(kube_api).patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL, "s",
                                                   {"metadata": {"annotations": {"csi.vsphere.volume.sync": "x"}}})
    their(kube_api).patch_namespaced_custom_object_status(names.GROUP, names.VERSION, namespace,
                                                          names.SNAPSHOT_PLURAL, "s", {"status": {"quiesced": True}})

    written = kube.update_snapshot(namespace, "s", set_status("unique_id", "snapshot-9"), status=True)

    assert counting.calls == ["patch_namespaced_custom_object_status"]
    assert written is not None
    assert (written.status.power_state, written.status.quiesced, written.status.unique_id) == \
        ("PoweredOff", True, "snapshot-9")
    assert written.metadata.annotations == {"csi.vsphere.volume.sync": "x"}


def test_a_field_someone_else_changed_is_read_again_before_writing(kube_api, namespace):
    kube, counting = counted_kube(kube_api, namespace)
    their(kube_api).patch_namespaced_custom_object_status(names.GROUP, names.VERSION, namespace,
                                                          names.SNAPSHOT_PLURAL, "s",
                                                          {"status": {"powerState": "PoweredOn"}})

    written = kube.update_snapshot(namespace, "s", set_status("power_state", "Suspended"), status=True)

    # the patch's test of powerState failed on the real apiserver; the write was decided again on a fresh read
    assert counting.calls == ["patch_namespaced_custom_object_status", "get_namespaced_custom_object",
                              "replace_namespaced_custom_object_status"]
    assert written is not None and written.status.power_state == "Suspended"


def test_annotations_are_one_merge_patch_that_keeps_others_and_checks_the_uid(kube_api, namespace):
    kube, counting = counted_kube(kube_api, namespace)
    their(kube_api).patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL, "s",
                                                   {"metadata": {"annotations": {"theirs": "x", "old": "y"}}})
    uid = their(kube_api).get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL,
                                                       "s")["metadata"]["uid"]

    written = kube.annotate_snapshot(namespace, "s", uid, {"ours": "1", "old": None})

    assert counting.calls == ["patch_namespaced_custom_object"]
    assert written is not None and written.metadata.annotations == {"theirs": "x", "ours": "1"}
    assert kube.annotate_snapshot(namespace, "s", "another-uid", {"ours": "2"}) is None  # the uid precondition
    assert kube.annotate_snapshot(namespace, "gone", uid, {"ours": "2"}) is None
