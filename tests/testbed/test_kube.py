"""The Kubernetes API is real: schema validation, watch with resourceVersions and 410 Gone, optimistic
concurrency (409), and garbage collection by owner reference."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from api import names


def snapshot(name: str, **spec) -> dict:
    return {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": names.SNAPSHOT_KIND,
            "metadata": {"name": name}, "spec": {"vmName": "my-vm", **spec}}


def custom(kube_api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def test_schema_violation_is_refused(kube_api, namespace):
    with pytest.raises(ApiException) as refused:
        custom(kube_api).create_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.SNAPSHOT_PLURAL, snapshot("bad", memory="yes"))
    assert refused.value.status == 422
    assert "spec.memory" in refused.value.body


def test_watch_delivers_events_and_stale_resource_version_is_gone(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    first = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata={"name": "a"}))
    stream = watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                  resource_version=first.metadata.resource_version, timeout_seconds=10)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata={"name": "b"}))
    event = next(stream)
    assert (event["type"], event["object"].metadata.name) == ("ADDED", "b")

    # make the first resourceVersion old enough to be compacted away (compaction runs every 10 s)
    for i in range(20):
        core.patch_namespaced_config_map("a", namespace, {"data": {"i": str(i)}})
    deadline = time.monotonic() + 60
    while True:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=1,
                                          resource_version=first.metadata.resource_version):
                pass
        except ApiException as e:
            assert e.status == 410
            break
        assert time.monotonic() < deadline, "the stale resourceVersion never expired (410 Gone)"
        time.sleep(1)


def test_conflicting_update_gets_409(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    cm = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata={"name": "c"}))
    core.patch_namespaced_config_map("c", namespace, {"data": {"k": "v"}})  # moves the resourceVersion on
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("c", namespace, cm)
    assert conflict.value.status == 409


def test_owner_reference_cascade_deletes_dependents(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata={"name": "owner"}))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata={"name": "dependent", "ownerReferences": [ref]}))
    core.delete_namespaced_config_map("owner", namespace)
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as e:
            assert e.status == 404
            return
        assert time.monotonic() < deadline, "the garbage collector never deleted the dependent"
        time.sleep(0.5)
