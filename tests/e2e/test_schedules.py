"""VirtualMachineSnapshotSchedule end to end, through the real parts (apiserver, Temporal dev server, vcsim, the
worker and the bridge as processes): a schedule every few seconds (`@every`: cron's finest step is a minute)
snapshots the selected VMs and never others, retention keeps exactly its rule across runs, a VM labelled later is
picked up, a run still going makes the next one skip, a worker killed mid-run makes no duplicate, suspend and
resume, auto-suspension after failed runs, Temporal down across a scheduled time makes up the run once, deleting
the schedule removes its Temporal Schedule and keeps its snapshots, a VM that keeps failing has its failed objects
pruned to keepFailed and is reported (condition, Warning Event, the bridge's gauge) until it succeeds, and a
deselected VM's snapshots stay until its retention rules age them out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from kubernetes import client
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api import VirtualMachineSnapshot
from api.limits import MAX_SNAPSHOTS_PER_VM
from api.names import API_VERSION, GROUP, SNAPSHOT_KIND, SNAPSHOT_PLURAL, VERSION, VM_PLURAL
from api.schedule import VirtualMachineSnapshotSchedule
from api.schedule_names import (
    SCHEDULE_API_VERSION,
    SCHEDULE_GROUP,
    SCHEDULE_KIND,
    SCHEDULE_LABEL,
    SCHEDULE_PLURAL,
    SCHEDULE_UID_ANNOTATION,
    SCHEDULE_VERSION,
    RunResult,
    ScheduleConditionType,
    ScheduleEventReason,
    ScheduleReason,
)
from contract.names import temporal_schedule_id
from runtime.search_attributes import SCHEDULED_START_TIME
from testbed.product import Product
from testbed.vms import create_vm, eventually, vsphere_snapshot_names
from tests.e2e.test_observability import scrape
from tests.fixtures.product import take_sim_vm

pytestmark = pytest.mark.timeout(420)


# --- helpers ----------------------------------------------------------------------------------------------------

def custom(kube_api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def apply_schedule(kube_api, namespace: str, name: str, **spec) -> None:
    custom(kube_api).create_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, namespace, SCHEDULE_PLURAL, {
        "apiVersion": SCHEDULE_API_VERSION, "kind": SCHEDULE_KIND, "metadata": {"name": name}, "spec": spec})


def patch_schedule(kube_api, namespace: str, name: str, spec: dict) -> None:
    custom(kube_api).patch_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, namespace, SCHEDULE_PLURAL,
                                                    name, {"spec": spec})


def get_schedule(kube_api, namespace: str, name: str) -> VirtualMachineSnapshotSchedule:
    return VirtualMachineSnapshotSchedule.model_validate(custom(kube_api).get_namespaced_custom_object(
        SCHEDULE_GROUP, SCHEDULE_VERSION, namespace, SCHEDULE_PLURAL, name))


def delete_schedule(kube_api, namespace: str, name: str) -> None:
    custom(kube_api).delete_namespaced_custom_object(SCHEDULE_GROUP, SCHEDULE_VERSION, namespace, SCHEDULE_PLURAL,
                                                     name)


def snapshots(kube_api, namespace: str) -> list[VirtualMachineSnapshot]:
    items = custom(kube_api).list_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL)["items"]
    return [VirtualMachineSnapshot.model_validate(i) for i in items]


def scheduled(kube_api, namespace: str, vm: str | None = None, ready_only: bool = False) -> list[str]:
    """The names of the schedule-made snapshots (of one VM), sorted (= by run: the names carry the run's time)."""
    return sorted(s.name or "" for s in snapshots(kube_api, namespace)
                  if s.metadata.annotation(SCHEDULE_UID_ANNOTATION) and (vm is None or s.vm_name == vm)
                  and (s.is_ready or not ready_only) and not s.is_being_deleted)


_made: dict[str, set[str]] = {}


def remember(kube_api, namespace: str) -> bool:
    """Every schedule-made snapshot name seen so far (to know later which were pruned); always False."""
    _made.setdefault(namespace, set()).update(scheduled(kube_api, namespace))
    return False


def label_vm(kube_api, namespace: str, name: str, labels: dict[str, str]) -> None:
    custom(kube_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, name,
                                                    {"metadata": {"labels": labels}})


async def runs(temporal: Client, namespace: str, name: str) -> list[str]:
    """The IDs of the schedule's runs Temporal knows, oldest first."""
    query = f"VirtualMachineSnapshotSchedule = '{name}' AND KubernetesNamespace = '{namespace}'"
    return sorted([w.id async for w in temporal.list_workflows(query)])


async def wait(check, timeout: float = 180, what: str = "condition"):
    return await asyncio.to_thread(eventually, check, timeout, what)


async def until(check, timeout: float = 60, what: str = "condition") -> None:
    """Poll an async check (a Temporal read) until it is true; the bound is a hang guard."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{what} not reached in {timeout:.0f}s"
        await asyncio.sleep(0.5)


async def paused(handle) -> bool:
    return (await handle.describe()).schedule.state.paused


async def schedule_exists(temporal: Client, namespace: str, name: str) -> bool:
    try:
        await temporal.get_schedule_handle(temporal_schedule_id(namespace, name)).describe()
        return True
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


def last_run_count(kube_api, namespace: str, name: str) -> int:
    """How many different runs the status has recorded so far (lastRun's workflow IDs seen)."""
    return len(_seen.setdefault((namespace, name), set()))


_seen: dict[tuple[str, str], set[str]] = {}


def watch_last_run(kube_api, namespace: str, name: str, at_least: int):
    """Until the status has shown `at_least` different last runs (polled often, so none is missed at 8 s)."""
    def seen() -> bool:
        remember(kube_api, namespace)
        last = get_schedule(kube_api, namespace, name).status.last_run
        if last is not None and last.workflow_id:
            _seen.setdefault((namespace, name), set()).add(last.workflow_id)
        return last_run_count(kube_api, namespace, name) >= at_least
    return seen


async def cleanup(temporal: Client, namespace: str, name: str) -> None:
    try:
        await temporal.get_schedule_handle(temporal_schedule_id(namespace, name)).delete()
    except RPCError:
        pass


# --- the tests ----------------------------------------------------------------------------------------------------

async def test_selected_vms_only_retention_new_vm_and_delete_keeps_snapshots(
        product: Product, kube_api, namespace, vcsim, temporal_client):
    vms = {name: take_sim_vm(vcsim) for name in ("db-1", "db-2", "web-1")}
    for name, sim_vm in vms.items():
        create_vm(kube_api, vcsim, namespace, name, sim_vm)
    label_vm(kube_api, namespace, "db-1", {"tier": "db"})
    label_vm(kube_api, namespace, "db-2", {"tier": "db"})
    # a snapshot made by hand, carrying the schedule's label: never the schedule's to prune
    custom(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL, {
        "apiVersion": API_VERSION, "kind": SNAPSHOT_KIND,
        "metadata": {"name": "by-hand", "labels": {SCHEDULE_LABEL: "every-8s"}}, "spec": {"vmName": "db-1"}})
    apply_schedule(kube_api, namespace, "every-8s", schedule="@every 8s", vmSelector={"matchLabels": {"tier": "db"}},
                   template={"description": "from the schedule"}, retention={"keepLast": 2})
    try:
        # Ready, next run known
        await wait(lambda: (s := get_schedule(kube_api, namespace, "every-8s").status).next_run_time
                   and any(c.type == ScheduleConditionType.READY and c.status == "True" for c in s.conditions or []),
                   60, "Ready with a next run")
        await wait(watch_last_run(kube_api, namespace, "every-8s", 4), 240, "four runs recorded")

        # retention: exactly the 2 newest of each selected VM once the last run pruned; never the unselected VM
        status = get_schedule(kube_api, namespace, "every-8s").status
        assert status.last_run is not None and status.last_run.result == "Succeeded", status.last_run
        for vm in ("db-1", "db-2"):
            kept = await wait(lambda vm=vm: len(scheduled(kube_api, namespace, vm, ready_only=True)) == 2
                              and scheduled(kube_api, namespace, vm, ready_only=True), 60, f"{vm} kept 2")
            assert len(kept) == 2
        assert status.snapshots_kept is not None and status.snapshots_kept >= 4  # the two VMs' (and a run's new)
        assert scheduled(kube_api, namespace, "web-1") == []
        assert vsphere_snapshot_names(vcsim, vms["web-1"]) == []
        by_hand = [s for s in snapshots(kube_api, namespace) if s.name == "by-hand"]
        assert by_hand and by_hand[0].is_ready, "the hand-made snapshot with the schedule's label is left alone"
        made = [s for s in snapshots(kube_api, namespace) if s.metadata.annotation(SCHEDULE_UID_ANNOTATION)]
        assert all(s.spec.description == "from the schedule" for s in made)
        # pruned through the normal delete path: gone from vCenter too
        pruned = set(_made[namespace]) - {s.name for s in snapshots(kube_api, namespace)}
        assert pruned, "earlier runs' snapshots were pruned"
        for vm in ("db-1", "db-2"):
            await wait(lambda vm=vm: not set(vsphere_snapshot_names(vcsim, vms[vm])) & pruned, 60, "vCenter pruned")

        # a VM labelled now is picked up by the next run
        label_vm(kube_api, namespace, "web-1", {"tier": "db"})
        await wait(lambda: scheduled(kube_api, namespace, "web-1", ready_only=True), 120, "web-1 snapshotted")

        # deleting the schedule removes its Temporal Schedule and keeps its snapshots
        await wait(lambda: get_schedule(kube_api, namespace, "every-8s").status.last_run is not None)
        delete_schedule(kube_api, namespace, "every-8s")

        async def gone() -> bool:
            return not await schedule_exists(temporal_client, namespace, "every-8s")
        await until(gone, 60, "the Temporal Schedule deleted with its object")
        await asyncio.sleep(3)  # a run still going finishes (it finds its object gone and prunes nothing)
        left = scheduled(kube_api, namespace, ready_only=True)
        await asyncio.sleep(10)  # more than one interval: no run makes or prunes anything any more
        assert scheduled(kube_api, namespace, ready_only=True) == left
        assert {n for vm in ("db-1", "db-2") for n in scheduled(kube_api, namespace, vm, ready_only=True)}
    finally:
        await cleanup(temporal_client, namespace, "every-8s")


async def test_overlap_skipped_and_worker_killed_mid_run_makes_no_duplicate(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, 20, count=1)  # the first run's snapshot takes 20 s
    apply_schedule(kube_api, namespace, "every-5s", schedule="@every 5s", vmNames=["my-vm"],
                   retention={"keepLast": 10})
    handle = temporal_client.get_schedule_handle(temporal_schedule_id(namespace, "every-5s"))
    try:
        await wait(lambda: scheduled(kube_api, namespace, "my-vm"), 60, "the first run's snapshot")
        first = scheduled(kube_api, namespace, "my-vm")[0]
        product.processes[0].kill()          # the worker, with the run waiting on its snapshot
        await asyncio.sleep(6)               # a scheduled time passes while the run is still going
        product.start_worker()
        await wait(lambda: first in scheduled(kube_api, namespace, "my-vm", ready_only=True), 180, "first Ready")
        description = await handle.describe()
        assert description.info.num_actions_skipped_overlap >= 1, "a run while the previous was going is skipped"
        await wait(watch_last_run(kube_api, namespace, "every-5s", 2), 120, "two runs recorded")
        names = vsphere_snapshot_names(vcsim, sim_vm)
        assert names.count(first) == 1, names
        assert len(names) == len(set(names)), f"no run made a snapshot twice: {names}"
        ids = await runs(temporal_client, namespace, "every-5s")
        assert len(ids) == len(set(ids))
    finally:
        await cleanup(temporal_client, namespace, "every-5s")


async def test_suspend_resume_and_auto_suspend_after_failed_runs(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.inject_fault("CreateSnapshotEx_Task", sim_vm, "GenericVmConfigFault", "disk full", count=0)
    apply_schedule(kube_api, namespace, "flaky", schedule="@every 5s", vmNames=["my-vm"],
                   retention={"keepLast": 3}, failedRunsBeforeSuspend=2)
    handle = temporal_client.get_schedule_handle(temporal_schedule_id(namespace, "flaky"))
    try:
        def suspended_by(reason: str):
            def check():
                c = get_schedule(kube_api, namespace, "flaky").condition(ScheduleConditionType.SUSPENDED)
                return c is not None and c.status == "True" and c.reason == reason and c
            return check
        condition = await wait(suspended_by(ScheduleReason.TOO_MANY_FAILED_RUNS), 180, "auto-suspended")
        assert "2 failed runs" in condition.message and "my-vm" in condition.message
        status = get_schedule(kube_api, namespace, "flaky").status
        assert status.consecutive_failed_runs == 2 and status.last_run.result == "Failed"
        assert status.last_run.failed_vms == ["my-vm"]
        assert (await handle.describe()).schedule.state.paused
        # no next run while suspended: nextRunTime absent (not the last one computed, which will not happen)
        await wait(lambda: get_schedule(kube_api, namespace, "flaky").status.next_run_time is None, 30,
                   "nextRunTime removed while auto-suspended")
        recorded = len(await runs(temporal_client, namespace, "flaky"))
        await asyncio.sleep(8)
        assert len(await runs(temporal_client, namespace, "flaky")) == recorded, "no run while suspended"

        # an edit resumes it
        vcsim.control.clear()
        patch_schedule(kube_api, namespace, "flaky", {"failedRunsBeforeSuspend": 3})
        await wait(lambda: get_schedule(kube_api, namespace, "flaky").status.last_run.result == "Succeeded",
                   120, "a successful run after resuming")
        assert not (await handle.describe()).schedule.state.paused
        assert get_schedule(kube_api, namespace, "flaky").status.consecutive_failed_runs == 0

        # spec.suspend pauses it, clearing it resumes it
        patch_schedule(kube_api, namespace, "flaky", {"suspend": True})
        await wait(suspended_by(ScheduleReason.SUSPENDED_BY_SPEC), 60, "suspended by spec")
        await until(lambda: paused(handle), 30, "Temporal Schedule paused")
        await wait(lambda: get_schedule(kube_api, namespace, "flaky").status.next_run_time is None, 30,
                   "nextRunTime removed while suspended by spec")
        patch_schedule(kube_api, namespace, "flaky", {"suspend": False})

        async def resumed() -> bool:
            return not await paused(handle)
        await until(resumed, 30, "resumed")
        # the bridge unpauses the Temporal Schedule, then writes the object's condition

        def not_suspended() -> bool:
            c = get_schedule(kube_api, namespace, "flaky").condition(ScheduleConditionType.SUSPENDED)
            return c is not None and c.status == "False"
        await wait(not_suspended, 30, "Suspended=False after spec.suspend was cleared")
        await wait(lambda: get_schedule(kube_api, namespace, "flaky").status.next_run_time, 30,
                   "nextRunTime back once resumed")
    finally:
        await cleanup(temporal_client, namespace, "flaky")


async def test_temporal_down_across_a_scheduled_time_makes_the_run_up_once(
        product_env, temporal_on_disk, tmp_path, kube_api, namespace, vcsim, sim_vm, csi_driver):
    server = temporal_on_disk()
    running = Product(tmp_path, {**product_env, "TEMPORAL_ADDRESS": server.address})
    running.start_worker()
    running.start_bridge()
    interval = 30
    try:
        create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
        apply_schedule(kube_api, namespace, "through-outage", schedule=f"@every {interval}s", vmNames=["my-vm"],
                       retention={"keepLast": 10})
        temporal = await Client.connect(server.address)
        # once a run has finished (a run still going when Temporal comes back would rightly make the made-up run
        # skip, overlap SKIP): down across the next scheduled time, back within the catch-up window (one interval)
        status = await wait(lambda: (s := get_schedule(kube_api, namespace, "through-outage").status).last_run
                            and s.next_run_time and s, 120, "a first run recorded")

        async def closed() -> bool:
            description = await temporal.get_workflow_handle(status.last_run.workflow_id).describe()
            return description.status != WorkflowExecutionStatus.RUNNING
        await until(closed, 60, "the first run closed")
        server.kill()
        down = datetime.now(UTC)
        await asyncio.sleep((status.next_run_time - down).total_seconds() + 3)
        server.start()
        up = datetime.now(UTC)
        temporal = await Client.connect(server.address)
        await wait(lambda: len(scheduled(kube_api, namespace, "my-vm", ready_only=True)) >= 2, 120,
                   "the missed run made up")
        query = f"VirtualMachineSnapshotSchedule = 'through-outage' AND KubernetesNamespace = '{namespace}'"
        times = [w.typed_search_attributes.get(SCHEDULED_START_TIME) async for w in temporal.list_workflows(query)]
        description = await temporal.get_schedule_handle(
            temporal_schedule_id(namespace, "through-outage")).describe()
        assert len([t for t in times if t is not None and down < t < up]) == 1, (
            str(down), str(up), [str(t) for t in sorted(times)], description.info.num_actions_skipped_overlap,
            description.info.num_actions_missed_catchup_window)
        await temporal.get_schedule_handle(temporal_schedule_id(namespace, "through-outage")).delete()
    finally:
        running.stop()


async def test_pruning_spares_the_snapshot_a_revert_asks_for(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client):
    """keepLast 1, but the VM's spec.currentSnapshotName names an older scheduled snapshot (a revert vCenter keeps
    refusing, so the request stays): every run prunes around it; once the request is withdrawn, the next run
    prunes it."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    apply_schedule(kube_api, namespace, "keep-1", schedule="@every 6s", vmNames=["my-vm"], retention={"keepLast": 1})
    try:
        first = (await wait(lambda: scheduled(kube_api, namespace, "my-vm", ready_only=True), 120,
                            "a first scheduled snapshot Ready"))[0]
        vcsim.control.inject_fault("RevertToSnapshot_Task", sim_vm, "GenericVmConfigFault", "revert refused", count=0)
        custom(kube_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, "my-vm",
                                                        {"spec": {"currentSnapshotName": first}})
        runs_before = last_run_count(kube_api, namespace, "keep-1")
        await wait(watch_last_run(kube_api, namespace, "keep-1", runs_before + 3), 180, "three more runs")
        await wait(lambda: [n for n in scheduled(kube_api, namespace, "my-vm", ready_only=True) if n != first]
                   and len(scheduled(kube_api, namespace, "my-vm", ready_only=True)) == 2, 60,
                   "the newest kept beside the protected one")
        assert first in scheduled(kube_api, namespace, "my-vm", ready_only=True)
        assert first in vsphere_snapshot_names(vcsim, sim_vm)
        assert set(_made[namespace]) - {first} - set(scheduled(kube_api, namespace)), "others were pruned meanwhile"

        # the request withdrawn: the snapshot is an ordinary old one again, and the next run prunes it
        custom(kube_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL, "my-vm",
                                                        {"spec": {"currentSnapshotName": None}})
        await wait(lambda: first not in scheduled(kube_api, namespace), 120, "pruned once no longer asked for")
        await wait(lambda: first not in vsphere_snapshot_names(vcsim, sim_vm), 60, "gone from vCenter")
    finally:
        vcsim.control.clear()
        await cleanup(temporal_client, namespace, "keep-1")


async def test_a_vm_at_the_snapshot_limit_is_skipped_with_a_reason(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client):
    """A VM that already has 32 snapshots is skipped before anything is created (reason in the run's status and an
    Event); the other VM of the run is snapshotted as usual."""
    full, other = sim_vm, take_sim_vm(vcsim)
    create_vm(kube_api, vcsim, namespace, "full-vm", full)
    create_vm(kube_api, vcsim, namespace, "other-vm", other)
    for i in range(MAX_SNAPSHOTS_PER_VM):
        custom(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL, {
            "apiVersion": API_VERSION, "kind": SNAPSHOT_KIND, "metadata": {"name": f"by-hand-{i}"},
            "spec": {"vmName": "full-vm"}})
    apply_schedule(kube_api, namespace, "limits", schedule="@every 6s", vmNames=["full-vm", "other-vm"],
                   retention={"keepLast": 1})
    try:
        def skipped_run():
            last = get_schedule(kube_api, namespace, "limits").status.last_run
            return last is not None and last.skipped_vms == ["full-vm"] and last
        last = await wait(skipped_run, 120, "a run that skipped full-vm")
        assert last.skipped == 1 and last.created >= 1 and last.result == "Succeeded", last
        assert scheduled(kube_api, namespace, "full-vm") == []
        assert scheduled(kube_api, namespace, "other-vm")
        events = client.CoreV1Api(kube_api).list_namespaced_event(
            namespace, field_selector="involvedObject.name=limits").items
        skips = [e for e in events if e.reason == ScheduleEventReason.VMS_SKIPPED]
        assert skips and "full-vm" in skips[0].message, [(e.reason, e.message) for e in events]
    finally:
        await cleanup(temporal_client, namespace, "limits")


def failed_of(kube_api, namespace: str, vm: str) -> list[str]:
    """The names of the schedule-made snapshots of `vm` whose create failed for good, not being deleted."""
    return sorted(s.name or "" for s in snapshots(kube_api, namespace)
                  if s.metadata.annotation(SCHEDULE_UID_ANNOTATION) and s.vm_name == vm
                  and s.create_failure is not None and not s.is_being_deleted)


async def test_a_failing_vm_is_pruned_to_keep_failed_and_reported_and_a_deselected_vms_snapshots_age_out(
        product: Product, kube_api, namespace, vcsim, temporal_client):
    """Three VMs, quiesced snapshots every 4 s. `bad` has no VMware Tools, so each of its snapshots fails
    (ToolsNotRunning) while the others' are made: the runs are PartiallyFailed (never suspending the schedule), its
    failed objects are pruned to keepFailed (default 1: the newest stays), and at the third failure in a row
    (vmFailuresBeforeAlert's default) the schedule says so: VMsFailing=True naming it and the reason, a Warning
    Event, the bridge's gauge. Tools back: its next snapshot is made and the report clears; its newest failed
    object stays (keepFailed, not maxAge, rules failed ones). `leaver` leaves the selector: nothing of it is
    deleted then, no snapshot is made of it any more, and its snapshots still follow the retention rules (a
    shorter maxAge ages them out)."""
    vms = {name: take_sim_vm(vcsim) for name in ("good", "bad", "leaver")}
    for name, sim_vm in vms.items():
        create_vm(kube_api, vcsim, namespace, name, sim_vm)
        vcsim.control.set_tools_running(sim_vm, name != "bad")
        label_vm(kube_api, namespace, name, {"tier": "db"})
    apply_schedule(kube_api, namespace, "watchful", schedule="@every 4s", vmSelector={"matchLabels": {"tier": "db"}},
                   template={"quiesce": {"timeout": "5m"}}, retention={"keepLast": 2, "maxAge": "90s"})
    seen_failed: set[str] = set()

    def failing_reported():
        seen_failed.update(failed_of(kube_api, namespace, "bad"))
        c = get_schedule(kube_api, namespace, "watchful").condition(ScheduleConditionType.VMS_FAILING)
        return c is not None and c.status == "True" and c
    try:
        condition = await wait(failing_reported, 180, "VMsFailing=True")
        assert condition.reason == ScheduleReason.TOO_MANY_FAILED_SNAPSHOTS, condition
        assert condition.message.startswith("bad: ") and "ToolsNotRunning" in condition.message, condition.message
        status = get_schedule(kube_api, namespace, "watchful").status
        assert [(v.name, v.consecutive_failures >= 3) for v in status.failing_vms or []] == [("bad", True)], status
        assert status.last_run is not None and status.last_run.result == RunResult.PARTIALLY_FAILED, status.last_run
        assert not status.consecutive_failed_runs, "a run that made some snapshots is not a failed run"

        def warned():
            events = client.CoreV1Api(kube_api).list_namespaced_event(
                namespace, field_selector="involvedObject.name=watchful").items
            return [e for e in events if e.reason == ScheduleEventReason.VM_FAILING]
        (event, *_) = await wait(warned, 30, "a ScheduledVMFailing Event")
        assert event.type == "Warning" and "'bad'" in event.message and "ToolsNotRunning" in event.message, \
            event.message
        gauge = f'vmsnap_schedule_failing_vms{{namespace="{namespace}",schedule="watchful"}}'
        await wait(lambda: f"{gauge} 1.0" in scrape(product.processes[1]), 30, "the bridge's gauge at 1")

        # the failed objects: one per run, pruned to the newest (keepFailed 1) by each run, through the normal
        # delete path (gone, not just marked)
        await wait(lambda: (seen_failed.update(failed_of(kube_api, namespace, "bad")) or len(seen_failed) >= 3)
                   and len(failed_of(kube_api, namespace, "bad")) == 1, 60, "bad's failures pruned to one")
        everything = {s.name for s in snapshots(kube_api, namespace)}
        pruned = seen_failed - set(failed_of(kube_api, namespace, "bad"))
        await wait(lambda: not pruned & {s.name for s in snapshots(kube_api, namespace)}, 60, "pruned ones gone")
        assert scheduled(kube_api, namespace, "good", ready_only=True), everything

        # leaver leaves the selector; bad gets its Tools back
        assert scheduled(kube_api, namespace, "leaver", ready_only=True)
        label_vm(kube_api, namespace, "leaver", {"tier": None})
        vcsim.control.set_tools_running(vms["bad"], True)
        # a run planned before the label went may still snapshot leaver once more: two runs later none is
        runs_before = last_run_count(kube_api, namespace, "watchful")
        await wait(watch_last_run(kube_api, namespace, "watchful", runs_before + 2), 120, "two more runs")
        leaver_kept = scheduled(kube_api, namespace, "leaver")
        assert leaver_kept
        # nothing of leaver is deleted because it was deselected, and nothing new is made of it
        await wait(watch_last_run(kube_api, namespace, "watchful", runs_before + 3), 60, "one more run")
        assert scheduled(kube_api, namespace, "leaver") == leaver_kept

        def cleared():
            c = get_schedule(kube_api, namespace, "watchful").condition(ScheduleConditionType.VMS_FAILING)
            return c is not None and c.status == "False" and c
        condition = await wait(cleared, 120, "VMsFailing cleared once bad succeeds")
        assert condition.reason == ScheduleReason.NO_VMS_FAILING
        assert get_schedule(kube_api, namespace, "watchful").status.failing_vms == []
        assert scheduled(kube_api, namespace, "bad", ready_only=True), "bad's snapshot made"
        await wait(lambda: f"{gauge} 0.0" in scrape(product.processes[1]), 30, "the bridge's gauge back at 0")
        (last_failure,) = failed_of(kube_api, namespace, "bad")

        # leaver's snapshots are still under the schedule's retention: a shorter maxAge (an edit) ages them out,
        # pruned by the runs of the others (never a new snapshot of leaver)
        patch_schedule(kube_api, namespace, "watchful", {"retention": {"keepLast": 2, "maxAge": "15s"}})
        await wait(lambda: not scheduled(kube_api, namespace, "leaver"), 120, "leaver's snapshots aged out")
        await wait(lambda: set(leaver_kept).isdisjoint(vsphere_snapshot_names(vcsim, vms["leaver"])), 60,
                   "leaver's snapshots gone from vCenter too")
        assert not [s for s in snapshots(kube_api, namespace) if s.vm_name == "leaver" and not s.is_being_deleted]
        # older than maxAge by now, and still there: failed objects follow keepFailed alone
        await wait(watch_last_run(kube_api, namespace, "watchful", last_run_count(kube_api, namespace, "watchful")
                                  + 1), 60, "one more run")
        assert failed_of(kube_api, namespace, "bad") == [last_failure]
    finally:
        vcsim.control.clear()
        await cleanup(temporal_client, namespace, "watchful")
