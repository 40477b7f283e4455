"""The change feed hands over a VM whose tree changed, except when the change is one this process has written
to Kubernetes already (an operation's own echo); the first report after a (re)connect is always handed over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pyVmomi import vim, vmodl

from activities.vsphere.change_feed import SnapshotChangeFeed, _reported_shape
from activities.vsphere.snapshots import tree_from_info
from activities.written_trees import tree_shape, written_trees
from contract.payloads import SnapshotNode, SnapshotTree, SnapshotUsage

ONE = SnapshotTree(roots=[SnapshotNode(name="a", moref="snapshot-1", power_state="PoweredOff")], current="snapshot-1")
TWO = SnapshotTree(roots=[SnapshotNode(name="a", moref="snapshot-1", power_state="PoweredOff", children=[
    SnapshotNode(name="b", moref="snapshot-2", power_state="PoweredOff")])], current="snapshot-2")


class IdleSession:
    """No vCenter: the feed's thread waits until the test ends; the test reports changes itself."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def run(self, _watch) -> None:
        self.stopped.wait()


@pytest.fixture
def feed() -> Iterator[SnapshotChangeFeed]:
    session = IdleSession()
    feed = SnapshotChangeFeed(session, written_trees(), settle_seconds=0.05)  # type: ignore[arg-type]
    yield feed
    feed.stop()
    session.stopped.set()


def test_own_write_is_not_handed_over(feed):
    with_usage = ONE.model_copy(update={"usage": SnapshotUsage(vm_bytes=10)})  # usage is not shape
    feed.written.remember("vm-1", tree_shape(with_usage))
    feed.observe("vm-1", tree_shape(ONE))
    assert feed.take(timeout=0.5) == set()
    assert feed.written.hits == 1


def take_until(feed: SnapshotChangeFeed, wanted: set[str], timeout: float) -> set[str]:
    """What the feed hands over until `wanted` is in it: two reports settle apart when the machine is slow to
    make the second one (each settles on its own time), so one take may hand over the first alone."""
    deadline = time.monotonic() + timeout
    taken: set[str] = set()
    while not wanted <= taken and (left := deadline - time.monotonic()) > 0:
        taken |= feed.take(timeout=left)
    return taken


def test_a_tree_nobody_here_wrote_is_handed_over(feed):
    feed.written.remember("vm-1", tree_shape(ONE))
    feed.observe("vm-1", tree_shape(TWO))
    feed.observe("vm-2", tree_shape(ONE))  # written for another VM only
    assert take_until(feed, {"vm-1", "vm-2"}, timeout=2) == {"vm-1", "vm-2"}
    assert feed.written.hits == 0


def test_the_newest_report_decides(feed):
    feed.written.remember("vm-1", tree_shape(ONE))
    feed.observe("vm-1", tree_shape(ONE))
    feed.observe("vm-1", tree_shape(TWO))  # changed again before the first settled: not ours
    assert feed.take(timeout=2) == {"vm-1"}
    feed.observe("vm-1", tree_shape(TWO))
    feed.written.remember("vm-1", tree_shape(TWO))  # the operation records its write while the report settles
    assert feed.take(timeout=0.5) == set()


def test_first_report_and_departures_are_always_handed_over(feed):
    feed.written.remember("vm-1", tree_shape(ONE))
    feed.observe("vm-1", None)
    assert feed.take(timeout=2) == {"vm-1"}


def test_take_waits_for_a_change_to_settle(feed):
    result: list[set[str]] = []
    waiter = threading.Thread(target=lambda: result.append(feed.take(timeout=5)))
    waiter.start()
    feed.observe("vm-3", tree_shape(TWO))
    waiter.join(5)
    assert result == [{"vm-3"}]


def _snapshot_tree(name: str, moref: str, children: list) -> vim.vm.SnapshotTree:
    return vim.vm.SnapshotTree(name=name, snapshot=vim.vm.Snapshot(moref), state="poweredOff", quiesced=False,
                               childSnapshotList=children, id=1, vm=vim.VirtualMachine("vm-1"))


def _update(kind: str, info: vim.vm.SnapshotInfo | None, op: str = "assign"):
    return vmodl.query.PropertyCollector.ObjectUpdate(
        kind=kind, obj=vim.VirtualMachine("vm-1"),
        changeSet=[vmodl.query.PropertyCollector.Change(name="snapshot", op=op, val=info)])


def test_reported_shape_is_the_shape_of_the_tree_the_sync_reads():
    info = vim.vm.SnapshotInfo(currentSnapshot=vim.vm.Snapshot("snapshot-2"), rootSnapshotList=[
        _snapshot_tree("a", "snapshot-1", [_snapshot_tree("b", "snapshot-2", [])])])
    assert _reported_shape(_update("modify", info)) == tree_shape(tree_from_info(info)) == tree_shape(TWO)
    assert _reported_shape(_update("modify", None, op="remove")) == tree_shape(SnapshotTree())
    assert _reported_shape(_update("leave", info)) is None
