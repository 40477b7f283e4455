"""What operators look for in the Temporal UI, as checks both UIs pass (the dev server's, tests/browser/test_dev_ui.py,
and the UI server beside the four-service cluster, tests/browser/test_cluster_ui.py). Each starts from what the
product shows on the objects (`vmsnap.io/workflow-url`) or from a query an operator types, and compares the page with
what Kubernetes and Temporal recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client

from api.names import WORKFLOW_URL_ANNOTATION
from contract.names import CREATE_CURRENT_STEP_QUERY
from contract.payloads import Operation, OperationKind, VMRef, vm_queue_workflow_id
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest
from tests.browser.ui import TemporalUI, activities_recorded, workflow_ids_shown

Shoot = Callable[[str], Awaitable[Path]]
CREATE_TASK = "CreateSnapshotEx_Task"
HOLD_SECONDS = 600  # the held create's vCenter task: released by the test, long before this


def create_snapshot(kube_api, namespace: str, name: str, vm: str, **spec) -> None:
    from kubernetes import client

    from api.names import GROUP, SNAPSHOT_PLURAL, VERSION
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, SNAPSHOT_PLURAL,
                                                                      snapshot_manifest(name, vm, **spec))


def create_workflow_id(kube_api, namespace: str, name: str) -> str:
    snap = get_snapshot(kube_api, namespace, name)
    return Operation(kind=OperationKind.CREATE, vm=VMRef(namespace=namespace, name=snap.vm_name),
                     snapshot_name=name, snapshot_uid=snap.metadata.uid).workflow_id


def workflow_url(kube_api, namespace: str, name: str, ui: TemporalUI) -> str:
    """The object's link to its operation, which must lead to this UI."""
    def linked():
        annotations = get_snapshot(kube_api, namespace, name).metadata.annotations or {}
        return annotations.get(WORKFLOW_URL_ANNOTATION)
    url = str(eventually(linked, 60, f"{name}'s {WORKFLOW_URL_ANNOTATION}"))
    assert url.startswith(ui.base_url + "/"), (url, ui.base_url)
    return url


def ready(kube_api, namespace: str, name: str):
    snap = get_snapshot(kube_api, namespace, name)
    return snap if snap.is_ready else None


async def wait(check, timeout: float = 120, what: str = "condition"):
    return await asyncio.to_thread(eventually, check, timeout, what)


async def current_step(client: Client, workflow_id: str) -> str:
    return await client.get_workflow_handle(workflow_id).query(CREATE_CURRENT_STEP_QUERY)


async def ready_create_reads_well(ui: TemporalUI, shoot: Shoot, client: Client, kube_api, namespace: str, vcsim,
                                  sim_vm: str) -> None:
    """From a Ready snapshot's link: the workflow page names the operation (its summary: VM, snapshot, memory and
    quiesce), shows every step by its activity name in the order the workflow ran them, and its details line."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)  # quiescing needs VMware Tools
    create_snapshot(kube_api, namespace, "snap-1", "my-vm", memory=True, quiesce={"timeout": "10m"})
    snap = await wait(lambda: ready(kube_api, namespace, "snap-1"), what="snap-1 Ready")
    url = workflow_url(kube_api, namespace, "snap-1", ui)
    workflow_id = create_workflow_id(kube_api, namespace, "snap-1")
    # Ready is the last status write, a local activity whose marker the history gets when the workflow task ends
    await client.get_workflow_handle(workflow_id).result()
    recorded = await activities_recorded(client, workflow_id)
    assert "vsphere_create_snapshot" in recorded, recorded

    await ui.open(url)
    # its timers say what they wait for
    await ui.shows(workflow_id, "COMPLETED", *recorded, "deadline of this create")
    shown = await ui.rows(set(recorded))
    # newest on top (the UI's default) or oldest: either way, each step where the workflow ran it
    assert shown in (recorded, recorded[::-1]), (shown, recorded)
    await shoot("timeline")

    await ui.tab("user-metadata-tab")
    summary = snap.summary()
    assert all(word in summary for word in ("snap-1", "my-vm", "memory", "quiesce 10m")), summary
    step = await current_step(client, workflow_id)
    await ui.shows("Summary", summary, "Details", f"kubectl -n {namespace} describe vmsnapshot snap-1",
                   "Current Details", f"step: {step}")
    await shoot("user-metadata")


async def list_by_vm_shows_its_operations(ui: TemporalUI, shoot: Shoot, client: Client, kube_api, namespace: str,
                                          vcsim, sim_vms: tuple[str, str]) -> None:
    """The workflow list filtered by the VirtualMachine search attribute shows exactly that VM's operations (its
    creates and its queue), none of another VM's."""
    # VM names of their own: the list is of the whole Temporal namespace, which other tests share
    mine, other = f"web-{namespace}", f"db-{namespace}"
    create_vm(kube_api, vcsim, namespace, mine, sim_vms[0])
    create_vm(kube_api, vcsim, namespace, other, sim_vms[1])
    for name, vm in (("web-a", mine), ("web-b", mine), ("db-a", other)):
        create_snapshot(kube_api, namespace, name, vm)
    for name in ("web-a", "web-b", "db-a"):
        await wait(lambda name=name: ready(kube_api, namespace, name), what=f"{name} Ready")
    expected = {create_workflow_id(kube_api, namespace, n) for n in ("web-a", "web-b")}
    expected.add(vm_queue_workflow_id(VMRef(namespace=namespace, name=mine)))
    query = f"VirtualMachine = '{mine}'"
    assert {w.id async for w in client.list_workflows(query)} == expected  # what Temporal itself answers

    await ui.open(ui.workflow_list_url(query))
    text = await ui.shows(*expected)
    assert workflow_ids_shown(text) == expected, text
    await shoot("list")


async def held_create_shows_running_step(ui: TemporalUI, shoot: Shoot, client: Client, kube_api, namespace: str,
                                         vcsim, sim_vm: str) -> None:
    """A quiesced create whose vCenter task is still running shows as Running, at its current step, with the
    vCenter task on its activity."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    vcsim.control.delay(CREATE_TASK, sim_vm, HOLD_SECONDS, count=1)
    try:
        create_snapshot(kube_api, namespace, "nightly", "my-vm", memory=True, quiesce={"timeout": "15m"})
        url = workflow_url(kube_api, namespace, "nightly", ui)
        workflow_id = create_workflow_id(kube_api, namespace, "nightly")

        async def at_the_task() -> str:
            while "create the vSphere snapshot" not in (step := await current_step(client, workflow_id)):
                await asyncio.sleep(0.3)
            return step
        step = await asyncio.wait_for(at_the_task(), 120)

        await ui.open(url)
        await ui.shows(workflow_id, "RUNNING", "vsphere_create_snapshot", f"{CREATE_TASK} nightly memory, quiesce 15m")
        await shoot("timeline")
        await ui.tab("user-metadata-tab")
        summary = get_snapshot(kube_api, namespace, "nightly").summary()
        await ui.shows(summary, f"step: {step}")
        await shoot("user-metadata")
    finally:
        vcsim.control.release(CREATE_TASK, sim_vm)
    await wait(lambda: ready(kube_api, namespace, "nightly"), what="nightly Ready once released")


async def failed_create_shows_the_conditions_words(ui: TemporalUI, shoot: Shoot, kube_api, namespace: str, vcsim,
                                                   sim_vm: str) -> None:
    """A create vCenter refused: the workflow page says what the object's condition says, in the same words."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.inject_fault(CREATE_TASK, sim_vm, "GenericVmConfigFault", "disk full on datastore1", count=1)
    create_snapshot(kube_api, namespace, "snap-x", "my-vm")

    # Created=False with a failure's reason (first it is False too, while in progress)
    condition = await wait(lambda: get_snapshot(kube_api, namespace, "snap-x").create_failure,
                           what="snap-x failed")
    assert "disk full on datastore1" in condition.message, condition

    await ui.open(workflow_url(kube_api, namespace, "snap-x", ui))
    await ui.shows(condition.message)
    await shoot("timeline")


async def schedule_page_shows_spec_and_runs(ui: TemporalUI, shoot: Shoot, client: Client, kube_api,
                                            namespace: str) -> None:
    """A VirtualMachineSnapshotSchedule's Temporal Schedule page shows its spec (the interval it was written with),
    its recent runs and whose it is (its note)."""
    from contract.names import temporal_schedule_id
    from tests.e2e.test_schedules import apply_schedule, cleanup, delete_schedule

    name = "every-8s"
    schedule_id = temporal_schedule_id(namespace, name)
    # no VM carries the label: the runs find nothing to snapshot, and are runs all the same
    apply_schedule(kube_api, namespace, name, schedule="@every 8s", vmSelector={"matchLabels": {"tier": "none"}},
                   retention={"keepLast": 2})
    try:
        async def two_runs():
            while True:
                try:
                    described = await client.get_schedule_handle(schedule_id).describe()
                except Exception:  # noqa: BLE001 - the bridge has not made it yet
                    described = None
                if described is not None and len(described.info.recent_actions) >= 2:
                    return described
                await asyncio.sleep(0.5)
        described = await asyncio.wait_for(two_runs(), 120)
        every = described.schedule.spec.intervals[0].every
        runs = [a.action.workflow_id for a in described.info.recent_actions]  # type: ignore[attr-defined]

        await ui.open(ui.schedule_url(schedule_id))
        await ui.shows(schedule_id, "ScheduledSnapshotRun", f"Every {int(every.total_seconds())} second(s)", *runs,
                       described.schedule.state.note or "(no note)")  # whose Schedule it is
        await shoot("schedule")
    finally:
        delete_schedule(kube_api, namespace, name)  # else the bridge would make its Schedule again
        await cleanup(client, namespace, name)


async def retried_attempt_shows_after_a_worker_kill(ui: TemporalUI, shoot: Shoot, client: Client, product, kube_api,
                                                    namespace: str, vcsim, sim_vm: str) -> None:
    """The worker running a create's vCenter task dies: the create's page shows the activity's second attempt (on a
    new worker, re-attaching to the same task), and the create goes Ready."""
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    vcsim.control.delay(CREATE_TASK, sim_vm, HOLD_SECONDS, count=1)
    try:
        create_snapshot(kube_api, namespace, "long", "my-vm", quiesce={"timeout": "10m"})
        url = workflow_url(kube_api, namespace, "long", ui)
        handle = client.get_workflow_handle(create_workflow_id(kube_api, namespace, "long"))

        async def attempt(at_least: int) -> None:
            """Until the vCenter task's activity is pending in this attempt (or a later one) and has heartbeated."""
            while not any(p.activity_type.name == "vsphere_create_snapshot" and p.attempt >= at_least
                          and p.heartbeat_details.payloads
                          for p in (await handle.describe()).raw_description.pending_activities):
                await asyncio.sleep(0.3)
        await asyncio.wait_for(attempt(1), 120)
        product.processes[0].kill()  # SIGKILL the worker with the task in flight
        product.start_worker()
        await asyncio.wait_for(attempt(2), 120)  # after the heartbeat timeout, on the new worker

        await ui.open(url)
        await ui.shows("RUNNING", "Attempt 2", "vsphere_create_snapshot")
        await shoot("attempt-2")
    finally:
        vcsim.control.release(CREATE_TASK, sim_vm)
    await wait(lambda: ready(kube_api, namespace, "long"), what="long Ready once released")
