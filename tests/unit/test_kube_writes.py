"""runtime/kube.py's read-modify-write against a fake apiserver that keeps resourceVersions: an operation's next
write starts from the object as this process last wrote it (one request, no GET), and is still refused when
anyone else wrote in between (409: read again, apply again), so concurrent writers never lose an update."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.rest import ApiException

from api import VirtualMachineSnapshot
from runtime.kube import Kube


class FakeCustomObjects:
    """One namespace of snapshots with resourceVersions, and a log of the requests."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self._rv = 0

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    def someone_else_writes(self, name: str, label: str) -> None:
        obj = copy.deepcopy(self.objects[name])
        obj["metadata"].setdefault("labels", {})[label] = "x"
        self.put(obj)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **_):
        self.requests.append("GET")
        if name not in self.objects:
            raise ApiException(status=404)
        return copy.deepcopy(self.objects[name])

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.requests.append("PUT")
        current = self.objects.get(name)
        if current is None:
            raise ApiException(status=404)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self.put(body)

    replace_namespaced_custom_object_status = replace_namespaced_custom_object

    def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body, _content_type):
        """A JSON patch (test, add, replace, remove on /metadata/<field> and /status/<field>); a failed test is a
        422, as the apiserver answers."""
        assert _content_type == "application/json-patch+json"
        self.requests.append("PATCH")
        current = self.objects.get(name)
        if current is None:
            raise ApiException(status=404)
        obj = copy.deepcopy(current)
        for op in body:
            _, part, field = op["path"].split("/")
            target = obj.setdefault(part, {})
            if op["op"] == "test" and target.get(field) != op["value"]:
                raise ApiException(status=422)
            if op["op"] in ("add", "replace"):
                target[field] = op["value"]
            elif op["op"] == "remove":
                del target[field]
        return self.put(obj)

    def someone_else_writes_status(self, name: str, field: str, value: Any) -> None:
        obj = copy.deepcopy(self.objects[name])
        obj.setdefault("status", {})[field] = value
        self.put(obj)


def kube_with(fake: FakeCustomObjects) -> Kube:
    kube = Kube(api=None)  # type: ignore[arg-type]
    kube.custom = fake  # type: ignore[assignment]
    return kube


def snapshot(name: str = "s-1") -> dict[str, Any]:
    return {"apiVersion": "vmoperator.vmware.com/v1alpha6", "kind": "VirtualMachineSnapshot",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
            "spec": {"vmName": "vm"}}


def add_label(key: str):
    def mutate(s: VirtualMachineSnapshot) -> bool:
        if (s.metadata.labels or {}).get(key):
            return False
        s.metadata.labels = {**(s.metadata.labels or {}), key: "yes"}
        return True
    return mutate


def test_the_next_write_of_an_object_this_process_wrote_is_one_request():
    fake = FakeCustomObjects()
    fake.put(snapshot())
    kube = kube_with(fake)

    kube.update_snapshot("ns", "s-1", add_label("a"))
    kube.update_snapshot("ns", "s-1", add_label("b"), status=True)

    assert fake.requests == ["GET", "PUT", "PUT"]
    assert set(fake.objects["s-1"]["metadata"]["labels"]) == {"a", "b"}


def test_a_write_in_between_by_someone_else_is_kept():
    fake = FakeCustomObjects()
    fake.put(snapshot())
    kube = kube_with(fake)
    kube.update_snapshot("ns", "s-1", add_label("a"))
    fake.someone_else_writes("s-1", "theirs")
    fake.requests.clear()

    written = kube.update_snapshot("ns", "s-1", add_label("b"))

    assert fake.requests == ["PUT", "GET", "PUT"]  # refused at the old resourceVersion, read, applied again
    assert set(fake.objects["s-1"]["metadata"]["labels"]) == {"a", "b", "theirs"}
    assert written is not None and set(written.metadata.labels or {}) == {"a", "b", "theirs"}


def test_nothing_to_write_on_a_remembered_copy_is_decided_again_on_a_fresh_read():
    fake = FakeCustomObjects()
    fake.put(snapshot())
    kube = kube_with(fake)
    kube.update_snapshot("ns", "s-1", add_label("a"))
    # someone else removed the label: the remembered copy still has it, the object does not
    obj = copy.deepcopy(fake.objects["s-1"])
    obj["metadata"]["labels"] = {}
    fake.put(obj)
    fake.requests.clear()

    kube.update_snapshot("ns", "s-1", add_label("a"))

    assert fake.requests == ["GET", "PUT"]
    assert fake.objects["s-1"]["metadata"]["labels"] == {"a": "yes"}


def test_an_object_read_by_the_caller_is_written_without_a_get_and_a_gone_one_is_none():
    fake = FakeCustomObjects()
    fake.put(snapshot())
    kube = kube_with(fake)
    listed = VirtualMachineSnapshot.model_validate(copy.deepcopy(fake.objects["s-1"]))

    kube.update_snapshot("ns", "s-1", add_label("a"), current=listed)
    del fake.objects["s-1"]

    assert kube.update_snapshot("ns", "s-1", add_label("b")) is None
    assert fake.requests == ["PUT", "PUT"]  # the second: at the remembered version, answered 404


def set_status(field: str, value: Any):
    def mutate(s: VirtualMachineSnapshot) -> bool:
        if getattr(s.status, field) == value:
            return False
        setattr(s.status, field, value)
        return True
    return mutate


def written_with_status(fake: FakeCustomObjects, kube: Kube) -> None:
    fake.put(snapshot())
    kube.update_snapshot("ns", "s-1", set_status("power_state", "PoweredOff"), status=True)
    fake.requests.clear()


def test_a_status_write_after_someone_else_wrote_other_fields_is_one_patch():
    """The CSI driver's annotation, or another status field, changed since this process wrote: a JSON patch
    that tests only the fields it changes applies at once and keeps theirs."""
    fake = FakeCustomObjects()
    kube = kube_with(fake)
    written_with_status(fake, kube)
    fake.someone_else_writes("s-1", "theirs")
    fake.someone_else_writes_status("s-1", "uniqueID", "snapshot-7")

    kube.update_snapshot("ns", "s-1", set_status("quiesced", True), status=True)

    assert fake.requests == ["PATCH"]
    obj = fake.objects["s-1"]
    assert obj["metadata"]["labels"] == {"theirs": "x"}
    assert obj["status"] == {"powerState": "PoweredOff", "uniqueID": "snapshot-7", "quiesced": True}


def test_a_status_write_over_a_field_someone_else_changed_reads_again():
    fake = FakeCustomObjects()
    kube = kube_with(fake)
    written_with_status(fake, kube)
    fake.someone_else_writes_status("s-1", "powerState", "PoweredOn")

    kube.update_snapshot("ns", "s-1", set_status("power_state", "Suspended"), status=True)

    assert fake.requests == ["PATCH", "GET", "PUT"]  # the test of powerState failed (422): decided on a fresh read
    assert fake.objects["s-1"]["status"] == {"powerState": "Suspended"}


def test_a_status_write_after_the_spec_changed_reads_again():
    """A status computed from the object (observedGeneration, a condition's generation) is not patched onto a
    newer generation."""
    fake = FakeCustomObjects()
    kube = kube_with(fake)
    written_with_status(fake, kube)
    obj = copy.deepcopy(fake.objects["s-1"])
    obj["metadata"]["generation"] = 2
    fake.put(obj)

    kube.update_snapshot("ns", "s-1", set_status("quiesced", True), status=True)

    assert fake.requests == ["PATCH", "GET", "PUT"]
