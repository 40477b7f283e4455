"""The worker's cache of VirtualMachine objects bound to vCenter VMs, and the tree watch's use of it: a round is
only for VMs an object here is bound to; changes of other vCenter VMs wake nothing."""

from __future__ import annotations

from unittest import mock

from temporalio.testing import ActivityEnvironment

from activities.kube.bound_vms import BoundVMs, binding_fields
from activities.vsphere_tree_watch import VSphereTreeWatchActivities
from api.names import VM_PLURAL
from contract.payloads import VMRef, VMTarget
from runtime.informer import Event


def vm(name: str, moref: str | None, namespace: str = "ns") -> dict:
    return binding_fields({"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                                        "managedFields": [{"manager": "x"}], "labels": {"a": "b"}},
                           "spec": {"className": "big"}, "status": {"uniqueID": moref, "powerState": "PoweredOn"}})


def cache(*events: tuple[str, dict]) -> BoundVMs:
    bound = BoundVMs(mock.MagicMock())
    for kind, obj in events:
        bound._deliver(Event(kind, VM_PLURAL, obj))
    bound.informer.synced.set()
    return bound


def test_only_bound_vms_are_targets_and_a_deleted_or_unbound_one_goes():
    bound = cache(("SYNC", vm("a", "vm-1")), ("SYNC", vm("b", None)), ("ADDED", vm("c", "vm-3")),
                  ("MODIFIED", vm("c", None)), ("ADDED", vm("d", "vm-4")), ("DELETED", vm("d", "vm-4")))
    assert bound.targets(None) == [VMTarget(vm=VMRef(namespace="ns", name="a"), vm_moref="vm-1")]
    assert bound.targets(["vm-3", "vm-4"]) == []
    assert bound.bound({"vm-1", "vm-3", "vm-9"}) == {"vm-1"}


def test_the_cache_keeps_only_what_it_reads():
    assert vm("a", "vm-1") == {"metadata": {"name": "a", "namespace": "ns", "uid": "uid-a"},
                               "status": {"uniqueID": "vm-1"}}


def test_changes_of_vcenter_vms_nobody_here_is_bound_to_are_not_reported():
    feed = mock.MagicMock()
    feed.take.side_effect = [{"vm-9"}, {"vm-9", "vm-1"}]
    watch = VSphereTreeWatchActivities(feed, cache(("SYNC", vm("a", "vm-1"))))
    assert ActivityEnvironment().run(watch.wait_for_snapshot_changes, 30.0) == ["vm-1"]
    assert feed.take.call_count == 2  # the first round, only another tenant's VM, was not handed over


def test_a_worker_shutting_down_ends_the_wait_with_nothing_changed():
    environment = ActivityEnvironment()
    takes: list[float] = []

    def take(timeout: float) -> set[str]:
        takes.append(timeout)
        if len(takes) > 1:
            raise AssertionError("the feed was waited on again after the worker's shutdown")
        environment.worker_shutdown()  # while the activity waits, as a SIGTERM does
        return set()
    feed = mock.MagicMock()
    feed.take.side_effect = take
    watch = VSphereTreeWatchActivities(feed, cache(("SYNC", vm("a", "vm-1"))))
    assert environment.run(watch.wait_for_snapshot_changes, 3600.0) == []
    assert len(takes) == 1
