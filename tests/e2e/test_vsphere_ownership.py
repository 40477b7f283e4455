"""The create and delete activities against the simulator, for the cases a whole-product test cannot stage on
purpose: an attempt that made the snapshot and died before anything recorded it (no heartbeat, no status).
The retry must adopt exactly that snapshot, and never one that only shares its name."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from activities.vsphere.properties import virtual_machine
from activities.vsphere.snapshots import read_tree
from activities.vsphere.tasks import wait_for_task
from activities.vsphere_snapshot import VSphereSnapshotActivities
from contract.payloads import SnapshotExtraConfig, SnapshotLookup, VSphereSnapshotRequest
from runtime.settings import Settings
from runtime.vsphere import VSphereSession

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def activities(vcsim):
    session = VSphereSession(Settings(VSPHERE_URL=vcsim.url, VSPHERE_INSECURE=True))
    yield VSphereSnapshotActivities(session)
    session.close()


@pytest.fixture
def vm(vsphere, vcsim, sim_vm):
    moref = vcsim.control.vms()[sim_vm]
    yield moref
    wait_for_task(vsphere, virtual_machine(vsphere, moref).RemoveAllSnapshots_Task(), lambda _: None)


def by_hand(vsphere, vm: str, name: str) -> str:
    task = virtual_machine(vsphere, vm).CreateSnapshot_Task(name=name, memory=False, quiesce=False)
    return wait_for_task(vsphere, task, lambda _: None)._moId


def names(vsphere, vm: str) -> list[str]:
    return sorted(n.moref for n in read_tree(vsphere, virtual_machine(vsphere, vm)).walk())


def create(activities: VSphereSnapshotActivities, vm: str, name: str, uid: str):
    """One attempt of a create, as a fresh activity attempt (no heartbeat from an earlier one)."""
    env = ActivityEnvironment()
    env.run(activities.store_snapshot_extra_config, SnapshotExtraConfig(vm_moref=vm, vm_yaml="yaml", owner_uid=uid))
    return env.run(activities.create_snapshot, VSphereSnapshotRequest(vm_moref=vm, name=name, owner_uid=uid,
                                                                      memory=True))


def test_a_retry_whose_earlier_attempt_left_no_record_adopts_that_snapshot(activities, vsphere, vm):
    foreign = by_hand(vsphere, vm, "snap")
    first = create(activities, vm, "snap", "uid-1")        # made; then the worker "dies" before any record
    retry = create(activities, vm, "snap", "uid-1")        # a new attempt with nothing recorded
    assert retry.node.moref == first.node.moref != foreign
    assert retry.same_name == [foreign]
    assert names(vsphere, vm) == sorted([foreign, first.node.moref]), "no second snapshot"


def test_a_later_hand_made_snapshot_carrying_the_owner_is_not_adopted(activities, vsphere, vm):
    """The owner UID stays in the VM's ExtraConfig after a create, so a snapshot made by hand later with the
    same name carries it too: the earliest one is the object's."""
    ours = create(activities, vm, "snap", "uid-2").node.moref
    later = by_hand(vsphere, vm, "snap")
    assert create(activities, vm, "snap", "uid-2").node.moref == ours
    delete = SnapshotLookup(vm_moref=vm, name="snap", owner_uid="uid-2")   # no uniqueID was recorded
    assert ActivityEnvironment().run(activities.remove_snapshot, delete) is True
    assert names(vsphere, vm) == [later]


def test_a_delete_removes_only_what_the_object_owns(activities, vsphere, vm):
    foreign = by_hand(vsphere, vm, "snap")
    env = ActivityEnvironment()
    # nothing recorded and nothing carrying the object's UID: nothing of its own to remove
    assert env.run(activities.remove_snapshot, SnapshotLookup(vm_moref=vm, name="snap", owner_uid="uid-3")) is False
    # a recorded reference that names another object's snapshot is refused too
    ours = create(activities, vm, "snap", "uid-4").node.moref
    other = SnapshotLookup(vm_moref=vm, name="snap", snapshot_moref=ours, owner_uid="uid-3")
    assert env.run(activities.remove_snapshot, other) is False
    assert names(vsphere, vm) == sorted([foreign, ours])
    mine = SnapshotLookup(vm_moref=vm, name="snap", snapshot_moref=ours, owner_uid="uid-4")
    assert env.run(activities.remove_snapshot, mine) is True
    assert names(vsphere, vm) == [foreign]
