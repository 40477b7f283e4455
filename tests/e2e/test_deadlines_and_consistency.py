"""What a snapshot captured, failure deadlines, cancels and guests that will not freeze, end to end, as a user
drives them: YAML applied with kubectl, objects read back, vCenter (the simulator) steered through its control API
(tasks held, faults injected, Tools stopped) and read back through the vSphere API.

Bounds: where a test asserts a time (a deadline, "gone within 30 s"), the bound is the one the feature promises
plus a margin that is said at the constant. Everything else waits with `eventually` as a hang guard."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from activities.vsphere.properties import retrieve, virtual_machine
from activities.vsphere.snapshots import read_tree
from activities.vsphere.tasks import wait_for_task
from api.names import (
    FAILURE_DEADLINE_ANNOTATION,
    QUIESCE_FALLBACK_ANNOTATION,
    SNAPSHOT_CONSISTENCY_CONDITION,
    TRACE_ID_ANNOTATION,
    ConsistencyReason,
    EventReason,
    PowerState,
    RevertReason,
    SnapshotConditionType,
    SnapshotReason,
)
from testbed.product import Product
from testbed.vms import create_vm, eventually, get_snapshot, get_vm, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import created_workflow_id, kubectl, ready
from tests.e2e.test_delete_failures import gone
from tests.e2e.test_durability import wait_for_running_task
from tests.e2e.test_observability import scrape, trace_of
from tests.e2e.test_revert_delete import patch_vm, vcenter_power
from tests.e2e.test_snapshot_ownership import events_of

CREATED, READY = SnapshotConditionType.CREATED, SnapshotConditionType.READY
CONSISTENCY = SNAPSHOT_CONSISTENCY_CONDITION

# a held vCenter task: far longer than any test, so only a cancel ends it
HOLD_SECONDS = 600
# Past a deadline, the workflow's timer fires on time; its cancel reaches the held task at the task activity's next
# heartbeat (the wait heartbeats every 2 s, the worker sends them at most every 3 s: worker/main.py), then the task
# is cancelled in vCenter, what the create made removed and the status written: seconds. The margin is several
# times that, for a 2-core machine shared with another test run.
DEADLINE_MARGIN = timedelta(seconds=30)
# The bound for a delete of a snapshot whose create is held in vCenter, and for a guest without Tools.
PROMPT = 30.0
# a worker killed mid-task: its activity attempt is given up after the heartbeat timeout (workflows/options.py)
WORKER_LOST = timedelta(seconds=30)


# --- how a user drives it ---------------------------------------------------------------------------------------

def snapshot_yaml(name: str, vm: str, *, annotations: dict[str, str] | None = None, **spec) -> str:
    metadata: dict = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump({"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachineSnapshot",
                           "metadata": metadata, "spec": {"vmName": vm, **spec}}, sort_keys=False)


def apply(kubeconfig: Path, namespace: str, manifest: str) -> None:
    kubectl(kubeconfig, namespace, "apply", "-f", "-", stdin=manifest)


def kubectl_delete(kubeconfig: Path, namespace: str, name: str) -> float:
    """`kubectl delete vmsnapshot NAME` (it waits for the object to be gone); the seconds it took."""
    kubectl_bin = Path(sys.executable).parent / "kubectl"
    started = time.monotonic()
    done = subprocess.run([str(kubectl_bin), "--kubeconfig", str(kubeconfig), "-n", namespace, "delete",
                           "virtualmachinesnapshot", name, "--timeout=120s"], capture_output=True, text=True)
    took = time.monotonic() - started
    assert done.returncode == 0, f"kubectl delete failed after {took:.1f}s: {done.stderr}"
    return took


def condition_with(kube_api, namespace: str, name: str, ctype: str, reason: str):
    """The snapshot's condition once it has this reason (for `eventually`)."""
    c = get_snapshot(kube_api, namespace, name).condition(ctype)
    return c if c is not None and c.reason == reason else None


def events(kube_api, namespace: str, name: str, reason: str) -> list:
    return [e for e in events_of(kube_api, namespace, name) if e.reason == reason]


def event_time(event) -> datetime:
    return event.event_time or event.first_timestamp or event.last_timestamp


def assert_nothing_in_vcenter(vcsim, sim_vm: str) -> None:
    assert vsphere_snapshot_names(vcsim, sim_vm) == [], "a snapshot was left in vCenter"


# --- what vCenter says about its tasks -------------------------------------------------------------------------

def vcenter_tasks(vsphere, vcsim, sim_vm: str, description: str) -> list[dict]:
    """The VM's recent tasks whose descriptionId contains `description` (case-insensitive): state, cancelled and
    the fault's type name, as the vSphere client shows them."""
    vm = virtual_machine(vsphere, vcsim.control.vms()[sim_vm])
    found = []
    for task in retrieve(vsphere, vm, ["recentTask"]).get("recentTask", []):
        info = retrieve(vsphere, task, ["info"])["info"]
        if description.lower() in str(info.descriptionId).lower():
            # pyVmomi gives the task's LocalizedMethodFault as the fault itself
            fault = type(info.error).__name__.split(".")[-1] if info.error is not None else None
            found.append({"task": task._moId, "state": str(info.state), "cancelled": bool(info.cancelled),
                          "fault": fault})
    return found


def held_task_running(vsphere, vcsim, sim_vm: str, description: str) -> bool:
    return any(t["state"] == "running" for t in vcenter_tasks(vsphere, vcsim, sim_vm, description))


def assert_cancelled_in_vcenter(vsphere, vcsim, sim_vm: str, description: str) -> None:
    tasks = vcenter_tasks(vsphere, vcsim, sim_vm, description)
    assert len(tasks) == 1, f"one {description} task expected in vCenter: {tasks}"
    assert tasks[0]["state"] == "error" and tasks[0]["cancelled"] and tasks[0]["fault"] == "RequestCanceled", \
        f"the vCenter task was not cancelled: {tasks[0]}"


def power_off(vsphere, vcsim, sim_vm: str) -> None:
    vm = virtual_machine(vsphere, vcsim.control.vms()[sim_vm])
    wait_for_task(vsphere, vm.PowerOffVM_Task(), lambda _: None)
    assert str(retrieve(vsphere, vm, ["runtime.powerState"])["runtime.powerState"]) == "poweredOff"


def vcenter_current_snapshot(vsphere, vcsim, sim_vm: str) -> str | None:
    return read_tree(vsphere, virtual_machine(vsphere, vcsim.control.vms()[sim_vm])).current


# --- 1. consistency of a powered-off VM ------------------------------------------------------------------------

def test_quiesce_and_memory_asked_of_a_powered_off_vm(product, kube_api, kubeconfig, namespace, vcsim, sim_vm,
                                                      vsphere):
    power_off(vsphere, vcsim, sim_vm)
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    apply(kubeconfig, namespace, snapshot_yaml("at-rest", "my-vm", memory=True, quiesce={}))

    snap = eventually(lambda: ready(kube_api, namespace, "at-rest"), what="at-rest Ready")
    assert snap.status.quiesced is False
    assert snap.status.power_state == PowerState.POWERED_OFF
    consistency = snap.condition(CONSISTENCY)
    assert consistency is not None, [c.type for c in snap.status.conditions]
    assert (consistency.status, consistency.reason) == ("True", ConsistencyReason.POWERED_OFF), consistency
    assert "vSphere does not quiesce a powered-off guest" in consistency.message, consistency.message

    explained = eventually(lambda: events(kube_api, namespace, "at-rest", EventReason.SNAPSHOT_CONSISTENCY),
                           what="a SnapshotConsistency Event")
    assert len(explained) == 1, [(e.type, e.message) for e in explained]
    assert explained[0].type == "Normal", "powered off is at least as consistent as asked: no Warning"
    assert "vSphere does not quiesce a powered-off guest" in explained[0].message, explained[0].message
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["at-rest"]


# --- 2. a create past its failure deadline ---------------------------------------------------------------------

def test_a_held_create_past_its_deadline_is_cancelled_and_removed(product, kube_api, kubeconfig, namespace, vcsim,
                                                                  sim_vm, vsphere):
    deadline = timedelta(seconds=30)  # no quiesce: admission allows any positive deadline
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, HOLD_SECONDS, count=1)
    apply(kubeconfig, namespace, snapshot_yaml("late", "my-vm", annotations={FAILURE_DEADLINE_ANNOTATION: "30s"}))
    created_at = get_snapshot(kube_api, namespace, "late").metadata.creation_timestamp
    eventually(lambda: held_task_running(vsphere, vcsim, sim_vm, "createSnapshot"), 60, "the create held in vCenter")

    ready_c = eventually(lambda: condition_with(kube_api, namespace, "late", READY, SnapshotReason.DEADLINE_EXCEEDED),
                         what="Ready False DeadlineExceeded")
    seen_at = datetime.now(UTC)
    snap = get_snapshot(kube_api, namespace, "late")
    created_c = snap.condition(CREATED)
    assert (created_c.status, created_c.reason) == ("False", SnapshotReason.DEADLINE_EXCEEDED), created_c
    assert ready_c.status == "False"
    assert "it was at step: create the vSphere snapshot." in ready_c.message, ready_c.message
    assert f"{FAILURE_DEADLINE_ANNOTATION}: 30s" in ready_c.message, ready_c.message
    # measured from the object's creation: the deadline the message names is creationTimestamp + 30s
    assert f"by its deadline {created_at + deadline:%Y-%m-%dT%H:%M:%SZ} " in ready_c.message, ready_c.message
    warned = eventually(lambda: events(kube_api, namespace, "late", SnapshotReason.DEADLINE_EXCEEDED),
                        what="a DeadlineExceeded Event")
    assert len(warned) == 1 and warned[0].type == "Warning", [(e.type, e.message) for e in warned]
    assert "create the vSphere snapshot" in warned[0].message, warned[0].message
    # not before the deadline (the Event's time and creationTimestamp have whole seconds), and within the deadline
    # plus the margin (the conditions' lastTransitionTime is older: they were False, InProgress, since the start)
    assert event_time(warned[0]) >= created_at + deadline - timedelta(seconds=1), (created_at, event_time(warned[0]))
    assert seen_at - created_at <= deadline + DEADLINE_MARGIN, f"DeadlineExceeded {seen_at - created_at} after creation"

    assert_nothing_in_vcenter(vcsim, sim_vm)
    assert_cancelled_in_vcenter(vsphere, vcsim, sim_vm, "createSnapshot")
    # what operators see besides: a span of the operation's trace around the undo, a count by reason
    trace_id = snap.metadata.annotations[TRACE_ID_ANNOTATION]
    eventually(lambda: "deadline exceeded" in {s["name"] for s in trace_of(product.spans(), trace_id).values()},
               what="the 'deadline exceeded' span in the object's trace")
    eventually(lambda: 'reason="DeadlineExceeded"' in scrape(product.processes[0]),
               what="vmsnap_operations counted by reason DeadlineExceeded")

    took = kubectl_delete(kubeconfig, namespace, "late")
    assert took <= PROMPT, f"kubectl delete took {took:.1f}s"
    assert_nothing_in_vcenter(vcsim, sim_vm)


# --- 3. a delete while the create is held in vCenter -----------------------------------------------------------

def test_deleting_a_snapshot_whose_create_is_held_cancels_it(product, kube_api, kubeconfig, namespace, vcsim, sim_vm,
                                                             vsphere):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, HOLD_SECONDS, count=1)
    apply(kubeconfig, namespace, snapshot_yaml("unwanted", "my-vm"))
    eventually(lambda: held_task_running(vsphere, vcsim, sim_vm, "createSnapshot"), 60, "the create held in vCenter")

    took = kubectl_delete(kubeconfig, namespace, "unwanted")
    assert took <= PROMPT, f"kubectl delete took {took:.1f}s: the held create was waited for, not cancelled"
    assert gone(kube_api, namespace, "unwanted")
    assert_nothing_in_vcenter(vcsim, sim_vm)
    assert_cancelled_in_vcenter(vsphere, vcsim, sim_vm, "createSnapshot")


# --- 4, 5. a guest without Tools -------------------------------------------------------------------------------

def test_quiesce_without_tools_fails_fast_with_tools_not_running(product, kube_api, kubeconfig, namespace, vcsim,
                                                                 sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, False)
    assert vcenter_power(vcsim, sim_vm) == "poweredOn"
    started = time.monotonic()
    apply(kubeconfig, namespace, snapshot_yaml("frozen", "my-vm", quiesce={"timeout": "5m"}))

    ready_c = eventually(lambda: condition_with(kube_api, namespace, "frozen", READY, SnapshotReason.TOOLS_NOT_RUNNING),
                         60, "Ready False ToolsNotRunning")
    took = time.monotonic() - started
    assert took <= PROMPT, f"ToolsNotRunning after {took:.1f}s"
    created_c = get_snapshot(kube_api, namespace, "frozen").condition(CREATED)
    assert (created_c.status, created_c.reason) == ("False", SnapshotReason.TOOLS_NOT_RUNNING), created_c
    assert ready_c.status == "False" and "Tools" in ready_c.message, ready_c.message
    assert_nothing_in_vcenter(vcsim, sim_vm)


def test_quiesce_without_tools_falls_back_to_crash_consistent_when_asked(product, kube_api, kubeconfig, namespace,
                                                                         vcsim, sim_vm):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, False)
    apply(kubeconfig, namespace, snapshot_yaml("fallback", "my-vm", quiesce={"timeout": "5m"},
                                               annotations={QUIESCE_FALLBACK_ANNOTATION: "crash-consistent"}))

    snap = eventually(lambda: ready(kube_api, namespace, "fallback"), what="fallback Ready")
    assert snap.status.quiesced is False
    consistency = snap.condition(CONSISTENCY)
    assert consistency is not None, [c.type for c in snap.status.conditions]
    assert (consistency.status, consistency.reason) == ("False", ConsistencyReason.CRASH_CONSISTENT), consistency
    assert SnapshotReason.TOOLS_NOT_RUNNING in consistency.message and "Tools" in consistency.message, \
        consistency.message
    warned = eventually(lambda: events(kube_api, namespace, "fallback", EventReason.SNAPSHOT_CONSISTENCY),
                        what="a SnapshotConsistency Event")
    assert len(warned) == 1 and warned[0].type == "Warning", [(e.type, e.message) for e in warned]
    assert SnapshotReason.TOOLS_NOT_RUNNING in warned[0].message, warned[0].message
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["fallback"]


# --- 6. a quiesce that fails in the guest ----------------------------------------------------------------------

def test_a_quiesce_fault_fails_the_create_or_falls_back_when_asked(product, kube_api, kubeconfig, namespace, vcsim,
                                                                   sim_vm, vsphere):
    refusal = "a pre-freeze script exited with status 3"
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)

    vcsim.control.inject_fault("CreateSnapshotEx_Task", sim_vm, "ApplicationQuiesceFault", refusal, count=1)
    apply(kubeconfig, namespace, snapshot_yaml("refused", "my-vm", quiesce={"timeout": "5m"}))
    ready_c = eventually(lambda: condition_with(kube_api, namespace, "refused", READY, SnapshotReason.QUIESCE_FAILED),
                         what="Ready False QuiesceFailed")
    assert ready_c.status == "False" and refusal in ready_c.message, ready_c.message
    created_c = get_snapshot(kube_api, namespace, "refused").condition(CREATED)
    assert (created_c.status, created_c.reason) == ("False", SnapshotReason.QUIESCE_FAILED), created_c
    assert_nothing_in_vcenter(vcsim, sim_vm)

    vcsim.control.inject_fault("CreateSnapshotEx_Task", sim_vm, "ApplicationQuiesceFault", refusal, count=1)
    apply(kubeconfig, namespace, snapshot_yaml("fell-back", "my-vm", memory=True, quiesce={"timeout": "5m"},
                                               annotations={QUIESCE_FALLBACK_ANNOTATION: "crash-consistent"}))
    snap = eventually(lambda: ready(kube_api, namespace, "fell-back"), what="fell-back Ready")
    assert snap.status.quiesced is False
    assert snap.status.power_state == PowerState.POWERED_ON  # memory captured: the retry kept spec.memory
    consistency = snap.condition(CONSISTENCY)
    assert consistency is not None, [c.type for c in snap.status.conditions]
    assert (consistency.status, consistency.reason) == \
        ("False", ConsistencyReason.CRASH_CONSISTENT_WITH_MEMORY), consistency
    assert SnapshotReason.QUIESCE_FAILED in consistency.message and refusal in consistency.message, \
        consistency.message
    warned = eventually(lambda: events(kube_api, namespace, "fell-back", EventReason.SNAPSHOT_CONSISTENCY),
                        what="a SnapshotConsistency Event")
    assert len(warned) == 1 and warned[0].type == "Warning" and refusal in warned[0].message, \
        [(e.type, e.message) for e in warned]
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["fell-back"]
    assert [t["fault"] for t in vcenter_tasks(vsphere, vcsim, sim_vm, "createSnapshot")].count(
        "ApplicationQuiesceFault") == 2, "each create met the injected fault once"


# --- 7. the deadline survives the worker -----------------------------------------------------------------------

@pytest.mark.parametrize("deadline_seconds", [
    # the deadline comes after the restarted worker's retry of the task activity has re-attached to the held task
    # (the killed attempt is given up after its 30 s heartbeat timeout): the retry is the one cancelled
    pytest.param(60, id="deadline-after-the-retry-reattached"),
    # the deadline comes while the killed attempt is still thought running: the cancel cannot reach it, and the
    # vCenter task it started must still be cancelled once that attempt is given up
    pytest.param(20, id="deadline-while-the-attempt-is-lost"),
])
async def test_a_deadline_pending_across_a_worker_kill_fires_once(product: Product, kube_api, kubeconfig, namespace,
                                                                  vcsim, sim_vm, vsphere, temporal_client,
                                                                  deadline_seconds):
    """The deadline is a timer in Temporal: it must fire once, neither lost with the worker nor fired again on
    replay, and cancel the held vCenter task whichever worker started it."""
    deadline = timedelta(seconds=deadline_seconds)
    # at worst the killed attempt is given up after its heartbeat timeout (30 s: workflows/options.py) before the
    # task it started can be cancelled; then the usual margin
    bound = deadline + WORKER_LOST + DEADLINE_MARGIN
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, HOLD_SECONDS, count=1)
    apply(kubeconfig, namespace, snapshot_yaml("outlived", "my-vm",
                                               annotations={FAILURE_DEADLINE_ANNOTATION: f"{deadline_seconds}s"}))
    created_at = get_snapshot(kube_api, namespace, "outlived").metadata.creation_timestamp
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "outlived"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=60)

    product.processes[0].kill()                      # SIGKILL the worker with the task held and the deadline pending
    product.start_worker()

    ready_c = await asyncio.to_thread(
        eventually, lambda: condition_with(kube_api, namespace, "outlived", READY, SnapshotReason.DEADLINE_EXCEEDED),
        bound.total_seconds() + 10, "Ready False DeadlineExceeded")
    seen_at = datetime.now(UTC)
    assert "it was at step: create the vSphere snapshot." in ready_c.message, ready_c.message
    assert seen_at - created_at <= bound, f"DeadlineExceeded {seen_at - created_at} after creation"
    outcome = await temporal_client.get_workflow_handle(workflow_id).result()
    assert outcome.startswith(SnapshotReason.DEADLINE_EXCEEDED), outcome

    # the Event is written after the condition, by the worker's event writer (best effort, asynchronous)
    warned = eventually(lambda: events(kube_api, namespace, "outlived", SnapshotReason.DEADLINE_EXCEEDED),
                        what="a DeadlineExceeded Event")
    assert len(warned) == 1 and (warned[0].count or 1) == 1, [(e.message, e.count) for e in warned]
    assert warned[0].type == "Warning"
    assert event_time(warned[0]) >= created_at + deadline - timedelta(seconds=1), (created_at, event_time(warned[0]))
    assert_nothing_in_vcenter(vcsim, sim_vm)
    assert_cancelled_in_vcenter(vsphere, vcsim, sim_vm, "createSnapshot")  # one task: never a second create


# --- 8. a revert past its failure deadline ---------------------------------------------------------------------

def test_a_held_revert_past_the_vms_deadline_leaves_the_vm_as_it_was(product, kube_api, kubeconfig, namespace, vcsim,
                                                                     sim_vm, vsphere):
    deadline = timedelta(seconds=30)
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    # "off" has no memory: a revert to it would power the VM off; "current" is where the VM is
    for name in ("off", "current"):
        apply(kubeconfig, namespace, snapshot_yaml(name, "my-vm"))
        eventually(lambda name=name: ready(kube_api, namespace, name), what=f"{name} Ready")
    eventually(lambda: (vm := get_vm(kube_api, namespace, "my-vm")).status.current_snapshot is not None
               and vm.status.current_snapshot.name == "current", what="the VM's current snapshot recorded")
    current_moref = get_snapshot(kube_api, namespace, "current").status.unique_id
    assert vcenter_current_snapshot(vsphere, vcsim, sim_vm) == current_moref
    assert vcenter_power(vcsim, sim_vm) == "poweredOn"

    kubectl(kubeconfig, namespace, "annotate", "virtualmachine", "my-vm", f"{FAILURE_DEADLINE_ANNOTATION}=30s")
    vcsim.control.delay("RevertToSnapshot_Task", sim_vm, HOLD_SECONDS, count=1)
    asked = datetime.now(UTC)
    patch_vm(kube_api, namespace, "my-vm", {"spec": {"currentSnapshotName": "off"}})
    eventually(lambda: held_task_running(vsphere, vcsim, sim_vm, "revert"), 60, "the revert held in vCenter")

    def deadline_exceeded():
        c = get_vm(kube_api, namespace, "my-vm").revert_condition
        assert c is None or c.reason in (RevertReason.IN_PROGRESS, RevertReason.DEADLINE_EXCEEDED), c
        return c if c is not None and c.reason == RevertReason.DEADLINE_EXCEEDED else None
    cond = eventually(deadline_exceeded, what="revert condition DeadlineExceeded")
    seen_at = datetime.now(UTC)
    assert cond.status == "False", cond
    assert "revert to snapshot off in vCenter" in cond.message and "previous state" in cond.message, cond.message
    assert f"{FAILURE_DEADLINE_ANNOTATION}: 30s" in cond.message, cond.message
    warned = eventually(lambda: [e for e in events_of(kube_api, namespace, "my-vm")
                                 if e.reason == RevertReason.DEADLINE_EXCEEDED], what="a DeadlineExceeded Event")
    assert len(warned) == 1 and warned[0].type == "Warning", [(e.type, e.message) for e in warned]
    # not before the deadline (measured from the revert's start, which is after the request), and within the
    # deadline plus the margin
    assert event_time(warned[0]) >= asked + deadline - timedelta(seconds=1), (asked, event_time(warned[0]))
    assert seen_at - asked <= deadline + DEADLINE_MARGIN, f"DeadlineExceeded {seen_at - asked} after the request"

    assert_cancelled_in_vcenter(vsphere, vcsim, sim_vm, "revert")
    assert vcenter_power(vcsim, sim_vm) == "poweredOn", "the VM was reverted in vCenter"
    assert vcenter_current_snapshot(vsphere, vcsim, sim_vm) == current_moref
    vm = get_vm(kube_api, namespace, "my-vm")
    assert vm.spec.power_state == PowerState.POWERED_ON
    assert vm.status.current_snapshot is not None and vm.status.current_snapshot.name == "current", \
        vm.status.current_snapshot
    assert sorted(vsphere_snapshot_names(vcsim, sim_vm)) == ["current", "off"]
