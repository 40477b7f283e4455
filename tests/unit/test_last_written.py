"""What a process wrote last (runtime/last_written.py): the newest write per key, the oldest key forgotten past
the bound, an entry older than max_age forgotten, each echo counted (in the object and in the metric)."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from runtime import last_written
from runtime.kube import Kube, KubeError
from runtime.last_written import LastWritten


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def hits(cache: str) -> float:
    return last_written.HITS.labels(cache)._value.get()


def test_the_newest_write_is_recalled_and_the_oldest_key_goes_past_the_bound():
    written: LastWritten[str, int] = LastWritten("test_bound", capacity=2)
    written.remember("a", 1)
    written.remember("b", 2)
    written.remember("a", 3)  # the newest write of a: b is now the oldest
    written.remember("c", 4)
    assert (written.recall("a"), written.recall("b"), written.recall("c")) == (3, None, 4)
    written.forget("a")
    assert written.recall("a") is None


def test_an_entry_older_than_max_age_is_forgotten():
    clock = Clock()
    written: LastWritten[str, bool] = LastWritten("test_age", capacity=10, max_age=60, clock=clock)
    written.remember("op", True)
    clock.now = 59.9
    assert written.echo("op", True)
    clock.now = 60.0
    assert not written.echo("op", True)


def test_an_echo_is_counted_and_anything_else_is_not():
    before = hits("test_echo")
    written: LastWritten[str, str] = LastWritten("test_echo", capacity=10)
    written.remember("vm-1", "tree")
    assert written.echo("vm-1", "tree")
    assert not written.echo("vm-1", "another tree")
    assert not written.echo("vm-2", "tree")
    assert written.hits == 1 and hits("test_echo") - before == 1


class Custom:
    def __init__(self, status: int | None) -> None:
        self.status = status
        self.deleted: list[tuple[str, str]] = []

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, body):  # noqa: ANN001
        if self.status is not None:
            raise ApiException(status=self.status, reason="refused")
        self.deleted.append((name, body.preconditions.uid))


def test_a_delete_carries_the_uid_and_says_false_when_the_object_is_gone_or_another():
    kube = Kube.__new__(Kube)
    for status, expected in ((None, True), (404, False), (409, False)):
        kube.custom = Custom(status)
        assert kube.delete_object("virtualmachinesnapshots", "ns", "s-1", "uid-1") is expected
    kube.custom = Custom(None)
    kube.delete_object("virtualmachinesnapshots", "ns", "s-1", "uid-1")
    assert kube.custom.deleted == [("s-1", "uid-1")]


def test_the_apiservers_answer_is_read_from_its_status_and_other_errors_are_none():
    answered = KubeError.answered(ApiException(status=422, reason="Unprocessable Entity"))
    assert answered is not None and (answered.status, answered.reason, answered.message) == (
        422, "Unprocessable Entity", "")
    error = ApiException(status=400, reason="Bad Request")
    error.body = '{"kind": "Status", "message": "admission webhook denied the request: no"}'
    assert KubeError.of(error).message == "admission webhook denied the request: no"
    assert KubeError.answered(TimeoutError("read timed out")) is None
