"""RevertSnapshot's logic with fake activities: a revert's steps and what they are given, its abort (an empty
snapshot name clears the condition), a superseded request, and every refusal and failure, each ending as the VM's
VirtualMachineSnapshotRevertSucceeded=False condition with its own reason and message (and nothing after it)."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from tests.workflows.fakes import (
    VM_MOREF,
    VM_YAML,
    FakeWorld,
    Harness,
    PowerState,
    RevertConditionChange,
    RevertedSnapshot,
    RevertPlan,
    RevertReason,
    SnapshotLocation,
    SnapshotLookup,
    SnapshotNode,
    SnapshotTree,
    VMRestore,
    invalid_manifest,
    messages,
    revert_op,
    revert_refused,
    snapshot_moref,
    vsphere_fault,
)

pytestmark = pytest.mark.timeout(60)

CONDITION = "kube_set_revert_condition"


def condition_writes(world: FakeWorld) -> list[tuple[str | None, int | None]]:
    return [(c.reason, c.generation) for c in world.args(CONDITION)]


async def test_a_revert_takes_every_step_and_clears_its_condition(wf: Harness):
    op = revert_op(wf.vm, "snap-1", generation=7)
    moref = snapshot_moref("snap-1")
    wf.world.on("vsphere_find_snapshot", SnapshotNode(name="snap-1", moref=moref,
                                                      power_state=PowerState.SUSPENDED))

    assert await wf.run(op) == "reverted to snap-1"

    world = wf.world
    assert world.args("kube_prepare_revert") == [op]
    assert world.args(CONDITION)[0] == RevertConditionChange(
        vm=wf.vm, reason=RevertReason.IN_PROGRESS, message=messages.REVERT_IN_PROGRESS, generation=7)
    assert world.args("vsphere_find_snapshot") == [SnapshotLookup(vm_moref=VM_MOREF, name="snap-1",
                                                                  snapshot_moref=moref)]
    location = SnapshotLocation(vm_moref=VM_MOREF, snapshot_moref=moref)
    assert world.args("vsphere_revert_snapshot") == [location.model_copy(update={"read_after": True,
                                                                                 "cancel_task_on_cancel": True})]
    # the task's activity read the VM YAML and the tree right after the task: no steps of their own
    assert not {"vsphere_read_snapshot_vm_yaml", "vsphere_read_snapshot_tree"} & set(world.steps())
    assert world.args("kube_restore_vm_from_snapshot") == [VMRestore(
        vm=wf.vm, generation=7, snapshot_name="snap-1", vm_yaml=VM_YAML, power_state=PowerState.SUSPENDED,
        snapshot_moref=moref)]
    assert world.index("vsphere_revert_snapshot") < world.index("kube_restore_vm_from_snapshot")
    # success: the condition is removed (its steady state is absent), the tree rewritten
    assert world.args(CONDITION)[-1] == RevertConditionChange(vm=wf.vm, reason=None, generation=None)
    assert condition_writes(world) == [(RevertReason.IN_PROGRESS, 7), (None, None)]
    assert world.args("kube_sync_snapshot_tree")[0].vm == wf.vm


async def test_an_older_workers_task_result_takes_the_reads_it_did_then(wf: Harness):
    """A revert whose task activity returned nothing (an older worker ran it, or the history is of an older
    version) reads the YAML and the tree with steps of its own, as that version did."""
    op = revert_op(wf.vm, "snap-1", generation=7)
    location = SnapshotLocation(vm_moref=VM_MOREF, snapshot_moref=snapshot_moref("snap-1"))
    wf.world.on("vsphere_revert_snapshot", None)

    assert await wf.run(op) == "reverted to snap-1"

    world = wf.world
    assert world.args("vsphere_read_snapshot_vm_yaml") == [location]
    assert world.index("vsphere_read_snapshot_vm_yaml") < world.index("kube_restore_vm_from_snapshot")
    assert world.args("kube_restore_vm_from_snapshot")[0].vm_yaml == VM_YAML
    assert world.args("vsphere_read_snapshot_tree") == [VM_MOREF]
    assert condition_writes(world) == [(RevertReason.IN_PROGRESS, 7), (None, None)]


async def test_an_empty_snapshot_name_aborts_and_clears_the_condition(wf: Harness):
    assert await wf.run(revert_op(wf.vm, "")) == "aborted: condition cleared"

    assert wf.world.steps() == [CONDITION]
    assert wf.world.args(CONDITION) == [RevertConditionChange(vm=wf.vm, reason=None)]


async def test_a_superseded_request_does_nothing(wf: Harness):
    wf.world.on("kube_prepare_revert", None)  # the VM moved on (another generation, or the field was cleared)

    assert await wf.run(revert_op(wf.vm, "snap-1")) == "superseded"

    assert wf.world.steps() == ["kube_prepare_revert"]


async def test_an_imported_snapshot_without_vm_yaml_restores_an_approximated_vm(wf: Harness):
    op = revert_op(wf.vm, "imported", generation=3)
    wf.world.on("kube_prepare_revert", RevertPlan(vm=wf.vm, vm_moref=VM_MOREF, snapshot_name="imported",
                                                  imported=True))
    wf.world.on("vsphere_revert_snapshot", RevertedSnapshot(tree=SnapshotTree(), vm_yaml=None))

    assert await wf.run(op) == "reverted to imported"

    restore = wf.world.args("kube_restore_vm_from_snapshot")
    assert [(r.vm_yaml, r.generation) for r in restore] == [(None, 3)]
    # no uniqueID recorded on the object: vCenter is searched by name
    assert wf.world.args("vsphere_find_snapshot")[0].snapshot_moref is None
    assert condition_writes(wf.world)[-1] == (None, None)


NOT_READY = messages.revert_skipped_not_ready("snap-1")
NO_OBJECT = messages.revert_failed_to_get_snapshot("snap-1", 'VirtualMachineSnapshot "snap-1" not found')
UNREADABLE = 'VirtualMachine "vm" has no uniqueID'
NOT_IN_VCENTER = 'snapshot "snap-1" (snapshot-snap-1) not found'
LOCKED = "Unable to access file [ds] vm/vm-000001.vmdk since it is locked"
BAD_YAML = messages.revert_failed_to_restore_vm("the stored VM YAML has no spec")
API_DOWN = "the server rejected our request: Forbidden"


@pytest.mark.parametrize("answers, reason, message, never", [
    # refusals of the preflight: its reason is the condition's, and nothing touches vCenter
    ({"kube_prepare_revert": revert_refused(RevertReason.SKIPPED, messages.REVERT_SKIPPED_FOR_VKS_NODE)},
     RevertReason.SKIPPED, messages.REVERT_SKIPPED_FOR_VKS_NODE, ["vsphere_find_snapshot"]),
    ({"kube_prepare_revert": revert_refused(RevertReason.SKIPPED, NOT_READY)},
     RevertReason.SKIPPED, NOT_READY, ["vsphere_find_snapshot"]),
    ({"kube_prepare_revert": revert_refused(RevertReason.FAILED, NO_OBJECT)},
     RevertReason.FAILED, NO_OBJECT, ["vsphere_find_snapshot"]),
    # the preflight failing otherwise (not a refusal) is a plain failure
    ({"kube_prepare_revert": ApplicationError(UNREADABLE, type="SomethingElse", non_retryable=True)},
     RevertReason.FAILED, UNREADABLE, ["vsphere_find_snapshot"]),
    # vCenter
    ({"vsphere_find_snapshot": ApplicationError(NOT_IN_VCENTER, type="VSphereSnapshotNotFound",
                                                non_retryable=True)},
     RevertReason.FAILED, messages.revert_failed_to_find_vsphere_snapshot("snap-1", NOT_IN_VCENTER),
     ["vsphere_revert_snapshot"]),
    ({"vsphere_revert_snapshot": vsphere_fault(LOCKED, "FileLocked")},
     RevertReason.TASK_FAILED, LOCKED, ["vsphere_read_snapshot_vm_yaml", "kube_restore_vm_from_snapshot"]),
    # the VM object: no YAML in a snapshot that is not imported, a YAML that cannot be restored, the API failing
    ({"vsphere_revert_snapshot": RevertedSnapshot(tree=SnapshotTree(), vm_yaml=None)},
     RevertReason.FAILED_INVALID_VM_MANIFEST, messages.revert_failed_to_restore_vm(messages.NO_VM_YAML_IN_SNAPSHOT),
     ["kube_restore_vm_from_snapshot"]),
    ({"kube_restore_vm_from_snapshot": invalid_manifest(BAD_YAML)},
     RevertReason.FAILED_INVALID_VM_MANIFEST, BAD_YAML, []),
    ({"kube_restore_vm_from_snapshot": ApplicationError(API_DOWN, type="KubeApiError", non_retryable=True)},
     RevertReason.FAILED, API_DOWN, []),
], ids=["vks-node", "not-ready", "no-object", "preflight-error", "not-in-vcenter", "vsphere-task", "no-vm-yaml",
        "invalid-manifest", "restore-error"])
async def test_every_refusal_and_failure_is_the_vms_condition(wf: Harness, answers, reason, message, never):
    op = revert_op(wf.vm, "snap-1", generation=5)
    for step, answer in answers.items():
        wf.world.on(step, answer)

    assert await wf.run(op) == f"{reason}: {message}"

    world = wf.world
    # the failure is the last word, for this request's generation only (a newer request owns the condition)
    assert world.args(CONDITION)[-1] == RevertConditionChange(vm=wf.vm, reason=reason, message=message, generation=5)
    assert world.steps()[-1] == CONDITION
    assert (None, None) not in condition_writes(world), "a failed revert never clears the condition"
    assert not set(never + ["vsphere_read_snapshot_tree"]) & set(world.steps())
