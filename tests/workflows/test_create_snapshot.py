"""CreateSnapshot's logic with fake activities: the steps and what they are given, the status it writes, the CSI
handshake (the annotation already answered, the bridge's signal, the re-read timer) and every failure, which ends
as Created=False with reason VirtualMachineSnapshotCreationFailed and the failing step's message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client

from tests.workflows.fakes import (
    REQUESTED,
    SNAPSHOT_CONSISTENCY_CONDITION,
    USED_BYTES,
    VM_MOREF,
    VM_YAML,
    ConditionChange,
    ConsistencyReason,
    CreatedSnapshot,
    CreateSnapshot,
    EventNote,
    EventReason,
    FakeWorld,
    Harness,
    PowerState,
    SnapshotConditionType,
    SnapshotExtraConfig,
    SnapshotLocation,
    SnapshotNode,
    SnapshotPlan,
    SnapshotReason,
    SnapshotRef,
    SnapshotStatusChange,
    SnapshotTree,
    VSphereSnapshotRequest,
    create_op,
    create_snapshot,
    harness,
    in_turn,
    messages,
    precondition_failed,
    snapshot_moref,
    vsphere_fault,
)

pytestmark = pytest.mark.timeout(60)

CREATED, CSI_SYNCED = SnapshotConditionType.CREATED, SnapshotConditionType.CSI_SYNCED
CONSISTENCY = SNAPSHOT_CONSISTENCY_CONDITION
STATUS = "kube_update_snapshot_status"


def statuses(world: FakeWorld) -> list[SnapshotStatusChange]:
    return world.args(STATUS)


def conditions(world: FakeWorld) -> list[list[tuple[str, bool, str]]]:
    """The conditions of each status write, in order."""
    return [[(c.type, c.status, c.reason) for c in change.conditions] for change in statuses(world)]


def plan_for(ref: SnapshotRef, world: FakeWorld, **fields) -> SnapshotPlan:
    return SnapshotPlan(**{"snapshot": ref, "vm": world.vm, "vm_moref": VM_MOREF, "vm_yaml": VM_YAML, **fields})


async def test_a_create_takes_every_step_in_order_and_is_ready_when_the_driver_has_answered(wf: Harness):
    op = create_op(wf.vm, "snap-1")
    moref = snapshot_moref("snap-1")

    assert await wf.run(op) == "Ready"

    world = wf.world
    assert world.args("kube_prepare_snapshot") == [op.snapshot]
    assert world.args("vsphere_store_snapshot_extra_config") == [
        SnapshotExtraConfig(vm_moref=VM_MOREF, vm_yaml=VM_YAML, owner_uid=op.snapshot_uid)]
    assert world.args("vsphere_create_snapshot") == [VSphereSnapshotRequest(
        vm_moref=VM_MOREF, name="snap-1", owner_uid=op.snapshot_uid, description="before the upgrade", memory=True,
        quiesce_minutes=None, read_after=True, cancel_task_on_cancel=True)]
    # the YAML and the owner UID are in ExtraConfig before the task; prepare (one activity) said "in progress"
    # and computed the requested storage, and the task's activity read the tree and the size: no steps of their own
    task = world.index("vsphere_create_snapshot")
    assert world.index("vsphere_store_snapshot_extra_config") < task
    assert not {"kube_compute_requested_storage", "vsphere_read_snapshot_used_bytes",
                "vsphere_read_snapshot_tree"} & set(world.steps())
    assert world.index(STATUS) > task
    assert world.args("kube_sync_snapshot_tree")[0].claimed == {moref: "snap-1"}
    assert world.args("kube_sync_snapshot_tree")[0].vm == wf.vm
    assert world.args("kube_sync_snapshot_tree")[0].tree == SnapshotTree()  # the one the task's activity read
    # started directly, not by the VM's queue: another operation may record a uniqueID meanwhile
    assert world.args("kube_sync_snapshot_tree")[0].queue_held is False

    assert conditions(world) == [
        [(CREATED, True, ""), (CSI_SYNCED, False, SnapshotReason.CSI_SYNC_IN_PROGRESS),
         (CONSISTENCY, True, ConsistencyReason.CRASH_CONSISTENT_WITH_MEMORY)],
        [(CSI_SYNCED, True, "")],
    ]
    recorded = statuses(world)[0]
    assert (recorded.snapshot, recorded.unique_id, recorded.power_state, recorded.quiesced, recorded.requested,
            recorded.used_bytes, recorded.events) == (op.snapshot, moref, PowerState.POWERED_ON, False, REQUESTED,
                                                      USED_BYTES, [])
    # the handshake: asked once, answered already, so no wait and no re-read; CSISynced=True is the last write
    assert world.args("kube_request_csi_sync") == [op.snapshot]
    assert "kube_read_csi_sync_completed" not in world.steps()
    assert world.steps()[-1] == STATUS and world.index("kube_request_csi_sync") < len(world.calls) - 1


async def test_quiesce_reaches_the_vsphere_task_and_the_status(wf: Harness):
    op = create_op(wf.vm, "quiet")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan_for(ref, wf.world, memory=False, quiesce_minutes=15))

    assert await wf.run(op) == "Ready"

    request = wf.world.args("vsphere_create_snapshot")[0]
    assert (request.memory, request.quiesce_minutes) == (False, 15)
    assert statuses(wf.world)[1].quiesced is True


async def test_a_same_name_snapshot_made_by_someone_else_is_left_alone_with_a_warning_event(wf: Harness):
    op = create_op(wf.vm, "dup")
    ours = snapshot_moref("dup")
    wf.world.on("vsphere_create_snapshot", CreatedSnapshot(
        node=SnapshotNode(name="dup", moref=ours, power_state=PowerState.POWERED_OFF), same_name=["snapshot-by-hand"],
        tree=SnapshotTree(), used_bytes=USED_BYTES))

    assert await wf.run(op) == "Ready"

    recorded = statuses(wf.world)[0]
    assert recorded.unique_id == ours and recorded.power_state == PowerState.POWERED_OFF
    assert recorded.events == [EventNote(
        reason=EventReason.SAME_NAME_SNAPSHOT_LEFT_ALONE, warning=True,
        message=messages.same_name_snapshot_left_alone("dup", ours, ["snapshot-by-hand"]))]
    assert wf.world.args("kube_sync_snapshot_tree")[0].claimed == {ours: "dup"}


async def test_unknown_requested_storage_does_not_stop_the_snapshot(wf: Harness):
    op = create_op(wf.vm, "no-class")
    wf.world.on("kube_prepare_snapshot", lambda ref: plan_for(ref, wf.world, prepared=True, requested=None))

    assert await wf.run(op) == "Ready"

    assert len(wf.world.args("vsphere_create_snapshot")) == 1
    recorded = statuses(wf.world)[0]
    assert recorded.requested is None and recorded.used_bytes == USED_BYTES
    assert conditions(wf.world)[-1] == [(CSI_SYNCED, True, "")]


async def test_an_older_workers_plan_and_task_result_take_the_steps_they_did_then(wf: Harness):
    """A plan and a task result without what today's activities add (an older worker ran them, or the history
    is of an older version) lead to the steps that version took: what the stored histories replay."""
    op = create_op(wf.vm, "older")
    moref = snapshot_moref("older")
    world = wf.world
    world.on("kube_prepare_snapshot", lambda ref: plan_for(ref, world, description="before the upgrade", memory=True))
    world.on("vsphere_create_snapshot", CreatedSnapshot(node=SnapshotNode(name="older", moref=moref,
                                                                          power_state=PowerState.POWERED_ON)))
    world.on("kube_compute_requested_storage",
             precondition_failed('PersistentVolumeClaim "data" has no storage class or request'))

    assert await wf.run(op) == "Ready"

    task = world.index("vsphere_create_snapshot")
    assert world.index(STATUS) < task and world.index("kube_compute_requested_storage") < task
    assert world.args("vsphere_read_snapshot_used_bytes") == [SnapshotLocation(vm_moref=VM_MOREF,
                                                                               snapshot_moref=moref)]
    assert world.args("vsphere_read_snapshot_tree") == [VM_MOREF]
    assert conditions(world) == [
        [(CREATED, False, SnapshotReason.CREATION_IN_PROGRESS)],
        [(CREATED, True, ""), (CSI_SYNCED, False, SnapshotReason.CSI_SYNC_IN_PROGRESS)],
        [(CSI_SYNCED, True, "")],
    ]
    assert statuses(world)[0].conditions[0].message == messages.CREATION_IN_PROGRESS
    assert statuses(world)[1].requested is None and statuses(world)[1].used_bytes == USED_BYTES


async def test_a_snapshot_deleted_before_its_creation_touches_nothing(wf: Harness):
    wf.world.on("kube_prepare_snapshot", None)

    assert await wf.run(create_op(wf.vm, "gone")) == "snapshot deleted before creation"

    assert wf.world.steps() == ["kube_prepare_snapshot"]


VKS = messages.SNAPSHOT_OF_VKS_NODE_FORBIDDEN
NO_VM = "virtual machine vm-17 not found in vCenter"
QUIESCE = "An error occurred while quiescing the virtual machine. See the virtual machine's event log for details."


@pytest.mark.parametrize("failing, error, message, never", [
    ("kube_prepare_snapshot", precondition_failed(VKS), VKS,
     ["vsphere_store_snapshot_extra_config", "vsphere_create_snapshot"]),
    ("vsphere_store_snapshot_extra_config", vsphere_fault(NO_VM, "ManagedObjectNotFound"), NO_VM,
     ["vsphere_create_snapshot"]),
    ("vsphere_create_snapshot", vsphere_fault(QUIESCE, "ApplicationQuiesceFault"), QUIESCE,
     ["vsphere_read_snapshot_used_bytes", "kube_sync_snapshot_tree"]),
], ids=["precondition", "extra-config", "vsphere-task"])
async def test_a_failed_step_is_created_false_with_its_message(wf: Harness, failing, error, message, never):
    op = create_op(wf.vm, "doomed")
    wf.world.on(failing, error)

    assert await wf.run(op) == f"CreationFailed: {message}"

    last = statuses(wf.world)[-1]
    assert last.snapshot == op.snapshot
    assert last.conditions == [ConditionChange(type=CREATED, status=False, reason=SnapshotReason.CREATION_FAILED,
                                               message=message)]
    assert not any(status for change in conditions(wf.world) for _, status, _ in change), "nothing became True"
    assert not set(never + ["kube_request_csi_sync"]) & set(wf.world.steps())


async def test_the_create_waits_for_the_csi_driver_until_the_bridge_signals(wf: Harness):
    op = create_op(wf.vm, "csi")
    wf.world.on("kube_request_csi_sync", False)  # the driver has not answered yet
    handle = await wf.start(op)
    await wf.world.until(lambda: "kube_request_csi_sync" in wf.world.steps())

    assert await handle.query(CreateSnapshot.current_step) == "CSI volume sync handshake"
    assert (CSI_SYNCED, True, "") not in sum(conditions(wf.world), [])

    await handle.signal(CreateSnapshot.csi_sync_completed)  # the bridge saw csi.vsphere.volume.sync: completed

    assert await wf.outcome(handle) == "Ready"
    assert conditions(wf.world)[-1] == [(CSI_SYNCED, True, "")]
    assert "kube_read_csi_sync_completed" not in wf.world.steps(), "the signal ended the wait, not a re-read"


async def test_a_missed_signal_is_made_up_for_by_re_reading_the_annotation(temporal_client: Client, monkeypatch):
    # the re-read timer is a module constant (one minute); the sandbox re-imports workflow modules per run, so the
    # shortened value is seen only when the module is passed through from this process
    monkeypatch.setattr(create_snapshot, "CSI_POLL", timedelta(milliseconds=200))
    async with harness(temporal_client, passthrough=[create_snapshot.__name__]) as wf:
        op = create_op(wf.vm, "missed")
        wf.world.on("kube_request_csi_sync", False)
        wf.world.on("kube_read_csi_sync_completed", in_turn(False, False, True))

        assert await wf.run(op) == "Ready"  # no signal was sent

    world = wf.world
    assert world.args("kube_read_csi_sync_completed") == [op.snapshot] * 3
    assert world.steps()[-1] == STATUS and conditions(world)[-1] == [(CSI_SYNCED, True, "")]
    assert [c for c in sum(conditions(world), []) if c[0] == CSI_SYNCED and c[1]] == [(CSI_SYNCED, True, "")]
