"""VirtualMachineGroupSnapshot end to end on the real test bed (kube-apiserver with its garbage collector, the
vCenter simulator, the Temporal dev server, the worker and the bridge as processes): five VMs Ready as one group
with the skew shown, each member in its VM's vCenter tree, and the group's deletion taking its members with it; a
member whose vCenter task fails after two others were made in vCenter leaves no member there and the group names
it; twenty VMs as one group while single snapshots of some of them burst in beside it; a preflight refusal (a VM
whose Tools are stopped, quiescing) takes nothing; a worker SIGKILLed while a member's task is held either
completes the group or undoes it — never half; a member held past maxSkew undoes the group. spec.revert reverts
the members one after the other in name order, as vCenter's own task list shows, and a member failing to revert
stops the rest."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from pyVim.connect import Disconnect

from activities.vsphere.properties import virtual_machine
from api.group_snapshot import VirtualMachineGroupSnapshot, member_snapshot_name
from api.group_snapshot_names import (
    GROUP_SNAPSHOT_API_VERSION,
    GROUP_SNAPSHOT_GROUP,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_VERSION,
    VM_GROUP_KIND,
    VM_GROUP_PLURAL,
    VM_GROUP_VERSION,
    GroupConditionType,
    GroupPhase,
    GroupReason,
)
from api.names import GROUP, SNAPSHOT_PLURAL, TRACE_ID_ANNOTATION, VERSION
from runtime import search_attributes as sa
from testbed.kube import install_crds
from testbed.product import Product
from testbed.vms import (
    connect,
    create_vm,
    eventually,
    get_snapshot,
    get_vm,
    snapshot_manifest,
    vsphere_snapshot_names,
)
from tests.e2e.test_create_snapshot import create, created_workflow_id, kubectl, ready
from tests.e2e.test_durability import wait_for_running_task
from tests.e2e.test_observability import ancestry, trace_of
from tests.fixtures.product import take_sim_vm

VMS = ("db", "app-1", "app-2")
FIVE = (*VMS, "app-3", "app-4")
TWENTY = tuple(f"node-{i:02}" for i in range(20))
BURST = TWENTY[::4]  # the VMs a schedule-like run snapshots on its own while the group takes them
SLOW_TASK_SECONDS = 15
HELD_SECONDS = 120  # a hold the test releases itself; only a failed test waits it out


def vms(kube_api, vcsim, namespace: str, tools: bool = True, names: tuple[str, ...] = VMS) -> dict[str, str]:
    """A VirtualMachine object for each name (VMS by default), each for a simulator VM of its own: name → it."""
    taken = {name: take_sim_vm(vcsim) for name in names}
    for name, sim in taken.items():
        create_vm(kube_api, vcsim, namespace, name, sim)
        vcsim.control.set_tools_running(sim, tools)
    return taken


def create_group(kube_api, namespace: str, name: str, names: tuple[str, ...] = VMS, **spec: Any) -> None:
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, namespace, GROUP_SNAPSHOT_PLURAL,
        {"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND, "metadata": {"name": name},
         "spec": {"vmNames": list(names), **spec}})


def get_group(kube_api, namespace: str, name: str) -> VirtualMachineGroupSnapshot | None:
    try:
        found = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
            GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, namespace, GROUP_SNAPSHOT_PLURAL, name)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return VirtualMachineGroupSnapshot.model_validate(found)


def finished(kube_api, namespace: str, name: str) -> VirtualMachineGroupSnapshot | None:
    group = get_group(kube_api, namespace, name)
    return group if group is not None and group.finished else None


def members(kube_api, namespace: str, group: str) -> list[str]:
    items = client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, SNAPSHOT_PLURAL, label_selector=f"{GROUP_SNAPSHOT_LABEL}={group}")["items"]
    return sorted(i["metadata"]["name"] for i in items)


def in_vcenter(vcsim, taken: dict[str, str]) -> dict[str, list[str]]:
    return {name: vsphere_snapshot_names(vcsim, sim) for name, sim in taken.items()}


def revert_tasks(vcsim, taken: dict[str, str]) -> list[tuple[str, datetime, datetime]]:
    """vCenter's own record of the reverts: each VM's successful RevertToSnapshot_Task (from its recentTask) as
    (VM, start, completion), by start time."""
    si = connect(vcsim)
    try:
        morefs = vcsim.control.vms()
        found = []
        for vm, sim in taken.items():
            for task in virtual_machine(si, morefs[sim]).recentTask:
                info = task.info
                if info.descriptionId == "VirtualMachine.revertToSnapshot" and info.state == "success":
                    found.append((vm, info.startTime, info.completeTime))
        return sorted(found, key=lambda t: t[1])
    finally:
        Disconnect(si)


def assert_reverted_one_after_another(vcsim, taken: dict[str, str], order: list[str]) -> None:
    tasks = revert_tasks(vcsim, taken)
    assert [vm for vm, _, _ in tasks] == order, tasks
    for (_, _, done), (_, start, _) in zip(tasks, tasks[1:], strict=False):
        assert done <= start, tasks


def events(kube_api, namespace: str, name: str) -> list[tuple[str, str]]:
    listed = client.CoreV1Api(kube_api).list_namespaced_event(namespace,
                                                              field_selector=f"involvedObject.name={name}")
    return [(e.reason, e.message) for e in listed.items]


def test_five_vms_ready_as_one_group_then_deleted_with_their_members(product: Product, kube_api, kubeconfig,
                                                                     namespace, vcsim):
    taken = vms(kube_api, vcsim, namespace, names=FIVE)
    create_group(kube_api, namespace, "app", FIVE, template={"memory": True, "quiesce": {"timeout": "10m"}},
                 maxSkew="30s")
    group = eventually(lambda: finished(kube_api, namespace, "app"), 240, "the group finished")
    ready = group.condition(GroupConditionType.READY)
    assert (ready.status, group.status.phase) == ("True", GroupPhase.READY), ready
    assert (group.status.member_count, group.status.ready_members) == (5, 5)
    assert group.status.skew_seconds is not None and 0 <= group.status.skew_seconds <= 30
    by_vm = {m.vm_name: m for m in group.status.members or []}
    assert sorted(by_vm) == sorted(FIVE)
    for vm, sim in taken.items():
        member = by_vm[vm]
        snapshot = get_snapshot(kube_api, namespace, member.snapshot_name)
        assert member.snapshot_name == member_snapshot_name("app", vm) and snapshot.is_ready
        assert member.unique_id == snapshot.status.unique_id and member.create_time is not None
        assert vsphere_snapshot_names(vcsim, sim) == [member.snapshot_name], "the member is in its VM's tree"
        assert eventually(lambda vm=vm: (get_vm(kube_api, namespace, vm).status.current_snapshot or None),
                          what="the VM's tree").name == member.snapshot_name
    # one trace: every member's create (down to its vCenter task) under the saga's, under the bridge's start of it
    traces = {get_snapshot(kube_api, namespace, by_vm[vm].snapshot_name).metadata.annotations[TRACE_ID_ANNOTATION]
              for vm in FIVE}
    assert len(traces) == 1, traces

    def task_paths() -> list[list[str]] | None:
        by_id = trace_of(product.spans(), next(iter(traces)))
        paths = [ancestry(s, by_id) for s in by_id.values() if s["name"] == "vCenter task: create snapshot"]
        return paths if len(paths) == 5 and all(p[-1] == "bridge GroupSnapshot virtualmachinegroupsnapshots"
                                                 for p in paths) else None
    paths = eventually(task_paths, 60, "the members' vCenter tasks in the group's trace")
    assert all("RunWorkflow:GroupSnapshot" in path and "RunWorkflow:CreateSnapshot" in path for path in paths), paths
    table = kubectl(kubeconfig, namespace, "get", "vmgs", "app")
    assert table.split()[:5] == ["NAME", "MEMBERS", "READY", "SKEW", "AGE"] and table.split()[5:8] == [
        "app", "5", "True"]
    assert "GroupSnapshotReady" in [reason for reason, _ in events(kube_api, namespace, "app")]

    kubectl(kubeconfig, namespace, "delete", "vmgs", "app")
    eventually(lambda: not members(kube_api, namespace, "app"), 180, "the members deleted with their group")
    assert eventually(lambda: not any(in_vcenter(vcsim, taken).values()), 60, "vCenter emptied")


def test_a_member_failing_in_vcenter_leaves_no_member_behind_and_is_named(product: Product, kube_api, namespace,
                                                                         vcsim):
    """app-2's vCenter task is held while db's and app-1's make their snapshots, then fails: the two made are
    removed from vCenter again."""
    taken = vms(kube_api, vcsim, namespace)
    vcsim.control.delay("CreateSnapshotEx_Task", taken["app-2"], HELD_SECONDS, count=1)
    vcsim.control.inject_fault("CreateSnapshotEx_Task", taken["app-2"], "FileLocked", "the disk is locked",
                               count=1)
    create_group(kube_api, namespace, "app")
    made = {vm: [member_snapshot_name("app", vm)] for vm in ("db", "app-1")}
    eventually(lambda: in_vcenter(vcsim, taken) == {**made, "app-2": []}, 180, "db's and app-1's made in vCenter")
    assert vcsim.control.release("CreateSnapshotEx_Task", taken["app-2"]) == 1, "app-2's task was held till now"
    group = eventually(lambda: finished(kube_api, namespace, "app"), 240, "the group finished")
    ready = group.condition(GroupConditionType.READY)
    assert (ready.status, ready.reason, group.status.phase) == ("False", GroupReason.MEMBER_FAILED,
                                                                GroupPhase.FAILED)
    assert "member VirtualMachine 'app-2'" in ready.message and "the disk is locked" in ready.message
    assert not members(kube_api, namespace, "app"), "every member object is gone"
    assert in_vcenter(vcsim, taken) == {vm: [] for vm in VMS}, "no member left in vCenter"
    reasons = [reason for reason, _ in events(kube_api, namespace, "app")]
    assert "GroupSnapshotCompensating" in reasons and "GroupSnapshotFailed" in reasons


def test_twenty_vms_as_one_group_beside_a_burst_of_single_snapshots(product: Product, kube_api, namespace, vcsim):
    """A schedule-like burst: while the group takes twenty VMs, single snapshots of five of them are asked for
    at the same moment. All end Ready, and each VM's tree holds each name once."""
    taken = vms(kube_api, vcsim, namespace, names=TWENTY)
    create_group(kube_api, namespace, "fleet", TWENTY)
    for vm in BURST:
        create(kube_api, namespace, snapshot_manifest(f"single-{vm}", vm))
    group = eventually(lambda: finished(kube_api, namespace, "fleet"), 240, "the group finished")
    assert group.is_ready, group.status
    assert (group.status.member_count, group.status.ready_members) == (20, 20)
    print(f"20 members, skew {group.status.skew_seconds}s")  # -rP
    for vm in BURST:
        eventually(lambda vm=vm: ready(kube_api, namespace, f"single-{vm}"), 60, f"single-{vm} Ready")
    expected = {vm: sorted([member_snapshot_name("fleet", vm), *([f"single-{vm}"] if vm in BURST else [])])
                for vm in TWENTY}
    assert {vm: sorted(names) for vm, names in in_vcenter(vcsim, taken).items()} == expected


def test_a_preflight_refusal_takes_nothing(product: Product, kube_api, namespace, vcsim):
    taken = vms(kube_api, vcsim, namespace)
    vcsim.control.set_tools_running(taken["app-1"], False)
    create_group(kube_api, namespace, "app", template={"quiesce": {"timeout": "10m"}})
    group = eventually(lambda: finished(kube_api, namespace, "app"), 120, "the group finished")
    ready = group.condition(GroupConditionType.READY)
    assert (ready.status, ready.reason) == ("False", GroupReason.PREFLIGHT_FAILED)
    assert "'app-1'" in ready.message and "VMware Tools is not running" in ready.message
    assert not members(kube_api, namespace, "app") and in_vcenter(vcsim, taken) == {vm: [] for vm in VMS}


async def test_a_worker_killed_mid_group_completes_or_undoes_it_never_half(product: Product, kube_api, namespace,
                                                                           vcsim, temporal_client):
    taken = vms(kube_api, vcsim, namespace)
    vcsim.control.delay("CreateSnapshotEx_Task", taken["db"], SLOW_TASK_SECONDS, count=1)
    create_group(kube_api, namespace, "app")
    slow = member_snapshot_name("app", "db")
    workflow_id = await asyncio.to_thread(
        eventually, lambda: slow in members(kube_api, namespace, "app") and created_workflow_id(kube_api, namespace,
                                                                                                slow))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=120)

    product.processes[0].kill()                      # SIGKILL the worker with a member's task in flight
    product.start_worker()
    group = await asyncio.to_thread(eventually, lambda: finished(kube_api, namespace, "app"), 300, "finished")
    ready = group.condition(GroupConditionType.READY)
    in_vc = in_vcenter(vcsim, taken)
    print(f"after the kill: Ready={ready.status} {ready.reason}: {ready.message}; vCenter: {in_vc}")  # -rP
    if ready.status == "True":
        assert in_vc == {vm: [member_snapshot_name("app", vm)] for vm in VMS}, in_vc
        assert group.status.ready_members == 3
    else:
        assert in_vc == {vm: [] for vm in VMS} and not members(kube_api, namespace, "app"), (ready, in_vc)


def test_a_member_held_past_max_skew_undoes_the_group(product: Product, kube_api, namespace, vcsim):
    """The simulator holds one member's task (rising progress, then the snapshot) for 8 s: its create time is 8 s
    after the others', beyond spec.maxSkew 2s, so the group is undone though every member became Ready."""
    taken = vms(kube_api, vcsim, namespace)
    vcsim.control.delay("CreateSnapshotEx_Task", taken["app-1"], 8, count=1)
    create_group(kube_api, namespace, "app", maxSkew="2s")
    group = eventually(lambda: finished(kube_api, namespace, "app"), 240, "the group finished")
    ready = group.condition(GroupConditionType.READY)
    assert (ready.status, ready.reason) == ("False", GroupReason.SKEW_EXCEEDED), ready
    assert group.status.skew_seconds is not None and group.status.skew_seconds > 2
    assert member_snapshot_name("app", "app-1") in ready.message and "spec.maxSkew 2s" in ready.message
    assert not members(kube_api, namespace, "app") and in_vcenter(vcsim, taken) == {vm: [] for vm in VMS}


def ready_group_then_later_snapshots(kube_api, namespace: str, vcsim) -> dict[str, str]:
    """A Ready group of the three VMs, then a later snapshot of each (the VMs' current snapshot moves on)."""
    taken = vms(kube_api, vcsim, namespace)
    create_group(kube_api, namespace, "app")
    group = eventually(lambda: finished(kube_api, namespace, "app"), 240, "the group finished")
    assert group.is_ready, group.status
    for vm in VMS:
        create(kube_api, namespace, snapshot_manifest(f"later-{vm}", vm))
    for vm in VMS:
        eventually(lambda vm=vm: ready(kube_api, namespace, f"later-{vm}"), what=f"later-{vm} Ready")
        eventually(lambda vm=vm: getattr(get_vm(kube_api, namespace, vm).status.current_snapshot, "name", None)
                   == f"later-{vm}", what="the VM's current snapshot moved on")
    return taken


def set_revert(kube_api, namespace: str) -> None:
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, namespace, GROUP_SNAPSHOT_PLURAL, "app",
        {"spec": {"revert": True}})


def reverted(kube_api, namespace: str) -> VirtualMachineGroupSnapshot | None:
    group = get_group(kube_api, namespace, "app")
    ended = group is not None and group.status.reverted_generation == group.metadata.generation
    return group if ended else None


async def test_group_revert_in_name_order(product: Product, kube_api, namespace, vcsim, temporal_client):
    taken = ready_group_then_later_snapshots(kube_api, namespace, vcsim)
    set_revert(kube_api, namespace)
    group = await asyncio.to_thread(eventually, lambda: reverted(kube_api, namespace), 240, "reverted")
    condition = group.condition(GroupConditionType.REVERTED)
    assert condition.status == "True", condition
    assert group.status.reverted_members == sorted(VMS)
    for vm in VMS:
        assert get_vm(kube_api, namespace, vm).status.current_snapshot.name == member_snapshot_name("app", vm)
    # the VMs' reverts ran in that order, one after the other: in vCenter's task list, and as Temporal's runs
    await asyncio.to_thread(assert_reverted_one_after_another, vcsim, taken, sorted(VMS))
    runs = [w async for w in temporal_client.list_workflows(
        f"KubernetesNamespace = '{namespace}' AND SnapshotOperation = 'RevertSnapshot'")]
    by_start = sorted(runs, key=lambda w: w.start_time)
    assert [w.typed_search_attributes.get(sa.VIRTUAL_MACHINE) for w in by_start] == sorted(VMS)
    for before, after in zip(by_start, by_start[1:], strict=False):
        assert before.close_time is not None and before.close_time <= after.start_time


def test_a_member_failing_to_revert_stops_the_rest(product: Product, kube_api, namespace, vcsim):
    taken = ready_group_then_later_snapshots(kube_api, namespace, vcsim)
    vcsim.control.inject_fault("RevertToSnapshot_Task", taken["app-2"], "InvalidPowerState", "the host said no",
                               count=0)
    set_revert(kube_api, namespace)
    group = eventually(lambda: reverted(kube_api, namespace), 240, "the revert ended")
    condition = group.condition(GroupConditionType.REVERTED)
    assert (condition.status, condition.reason) == ("False", GroupReason.REVERT_FAILED)
    assert "member VirtualMachine 'app-2'" in condition.message and "the host said no" in condition.message
    assert "not reverted: db" in condition.message and group.status.reverted_members == ["app-1"]
    assert get_vm(kube_api, namespace, "app-1").status.current_snapshot.name == member_snapshot_name("app", "app-1")
    assert get_vm(kube_api, namespace, "db").status.current_snapshot.name == "later-db", "db was left alone"


VM_GROUP_CRD = Path(__file__).resolve().parents[1] / "testdata" / "vm-operator-group" / "virtualmachinegroups.yaml"


def vm_group(kube_api, namespace: str, name: str, *steps: list[tuple[str, str]]) -> None:
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VM_GROUP_VERSION, namespace, VM_GROUP_PLURAL,
        {"apiVersion": f"{GROUP}/{VM_GROUP_VERSION}", "kind": VM_GROUP_KIND, "metadata": {"name": name},
         "spec": {"bootOrder": [{"members": [{"kind": kind, "name": member} for kind, member in step]}
                                for step in steps]}})


async def test_members_by_a_vm_operator_group_in_boot_order_and_reverted_in_it(product: Product, kube_api,
                                                                             namespace, vcsim, temporal_client):
    """A VirtualMachineGroup `shop` boots db first, then its nested group `web` (app-2, then app-1): the group
    snapshot's members are those three, in that order, and its revert follows it."""
    install_crds(kube_api, [VM_GROUP_CRD])
    taken = vms(kube_api, vcsim, namespace)
    vm_group(kube_api, namespace, "web", [("VirtualMachine", "app-2")], [("VirtualMachine", "app-1")])
    vm_group(kube_api, namespace, "shop", [("VirtualMachine", "db")], [("VirtualMachineGroup", "web")])
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP_SNAPSHOT_GROUP, GROUP_SNAPSHOT_VERSION, namespace, GROUP_SNAPSHOT_PLURAL,
        {"apiVersion": GROUP_SNAPSHOT_API_VERSION, "kind": GROUP_SNAPSHOT_KIND, "metadata": {"name": "app"},
         "spec": {"vmGroupName": "shop"}})
    group = await asyncio.to_thread(eventually, lambda: finished(kube_api, namespace, "app"), 240, "finished")
    assert group.is_ready, group.status
    assert [m.vm_name for m in group.status.members or []] == ["db", "app-2", "app-1"]
    set_revert(kube_api, namespace)
    group = await asyncio.to_thread(eventually, lambda: reverted(kube_api, namespace), 240, "reverted")
    assert group.condition(GroupConditionType.REVERTED).status == "True"
    assert group.status.reverted_members == ["db", "app-2", "app-1"]
    await asyncio.to_thread(assert_reverted_one_after_another, vcsim, taken, ["db", "app-2", "app-1"])
    runs = [w async for w in temporal_client.list_workflows(
        f"KubernetesNamespace = '{namespace}' AND SnapshotOperation = 'RevertSnapshot'")]
    assert [w.typed_search_attributes.get(sa.VIRTUAL_MACHINE) for w in sorted(runs, key=lambda w: w.start_time)] == [
        "db", "app-2", "app-1"]
