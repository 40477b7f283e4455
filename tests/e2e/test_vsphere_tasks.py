"""Waiting on vCenter tasks (activities/vsphere/tasks.py) against the simulator: PropertyCollector updates
through a private collector per wait, and the running-snapshot-task check in one round trip."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pyVim.connect import SmartConnect
from pyVmomi import vim, vmodl

from activities.vsphere.properties import retrieve, service_content, virtual_machine
from activities.vsphere.tasks import TaskFailed, _wait_for_end, running_snapshot_tasks, wait_for_task
from testbed.vms import eventually
from tests.fixtures.product import take_sim_vm

pytestmark = pytest.mark.timeout(120)


class Calls:
    """The SOAP methods called through a connection (its stub), and the collectors it created."""

    def __init__(self, si, monkeypatch):
        self.names: list[str] = []
        self.collectors: list[vmodl.query.PropertyCollector] = []
        self._lock = threading.Lock()
        invoke = si._stub.InvokeMethod

        def counting(mo, info, args, *rest):
            result = invoke(mo, info, args, *rest)
            with self._lock:
                self.names.append(info.wsdlName)
                if info.wsdlName == "CreatePropertyCollector":
                    self.collectors.append(result)
            return result
        monkeypatch.setattr(si._stub, "InvokeMethod", counting)

    def count(self, name: str) -> int:
        return self.names.count(name)

    def assert_no_collector_left(self) -> None:
        """Every collector a wait created is gone from vCenter."""
        assert self.collectors
        assert self.count("DestroyPropertyCollector") == len(self.collectors)
        for collector in self.collectors:
            with pytest.raises(vmodl.fault.ManagedObjectNotFound):
                collector.DestroyPropertyCollector()


def reconfig(vm, note: str) -> vim.Task:
    return vm.ReconfigVM_Task(vim.vm.ConfigSpec(annotation=note))


@pytest.fixture
def vm(vsphere, vcsim, sim_vm):
    machine = virtual_machine(vsphere, vcsim.control.vms()[sim_vm])
    yield machine
    vcsim.control.clear()
    wait_for_task(vsphere, machine.RemoveAllSnapshots_Task(), lambda _: None)


def test_waits_for_a_delayed_task_with_progress(vsphere, vcsim, vm, monkeypatch):
    service_content(vsphere)
    calls = Calls(vsphere, monkeypatch)
    vcsim.control.delay("CreateSnapshot_Task", vm._moId, 1.5, count=1)
    task = vm.CreateSnapshot_Task(name="delayed", memory=False, quiesce=False)
    progress: list[int] = []
    started = time.monotonic()
    snapshot = wait_for_task(vsphere, task, progress.append)
    took = time.monotonic() - started
    reads, waits = calls.count("RetrieveProperties"), calls.count("WaitForUpdatesEx")

    assert isinstance(snapshot, vim.vm.Snapshot)
    tree = retrieve(vsphere, vm, ["snapshot"])["snapshot"]
    assert [(n.name, n.snapshot) for n in tree.rootSnapshotList] == [("delayed", snapshot)]
    assert progress and all(0 <= p < 100 for p in progress)
    assert 1.3 < took < 4
    # updates, not polls: one read, then a private collector waited on and destroyed
    assert reads == 1
    assert waits == 2  # the first update (running), then the end: progress is not watched
    calls.assert_no_collector_left()


def test_a_finished_task_costs_one_read(vsphere, vm, monkeypatch):
    task = reconfig(vm, "quick")
    wait_for_task(vsphere, task, lambda _: None)
    calls = Calls(vsphere, monkeypatch)
    assert wait_for_task(vsphere, task, lambda _: None) is None
    assert calls.names == ["RetrieveProperties"]


def test_the_first_update_of_a_finished_task_ends_the_wait(vsphere, vm, monkeypatch):
    """A task that ends between the first read and the collector's first update: that update has it all."""
    task = reconfig(vm, "ended before the wait")
    wait_for_task(vsphere, task, lambda _: None)
    calls = Calls(vsphere, monkeypatch)
    info = _wait_for_end(vsphere, task, 2, lambda: None)
    assert info["info.state"] == vim.TaskInfo.State.success
    assert calls.count("WaitForUpdatesEx") == 1
    calls.assert_no_collector_left()


def test_a_failed_task_raises_task_failed(vsphere, vcsim, vm, monkeypatch):
    calls = Calls(vsphere, monkeypatch)
    vcsim.control.delay("CreateSnapshot_Task", vm._moId, 0.5, count=1)
    vcsim.control.inject_fault("CreateSnapshot_Task", vm._moId, "GenericVmConfigFault", "disk is on fire")
    task = vm.CreateSnapshot_Task(name="doomed", memory=False, quiesce=False)
    with pytest.raises(TaskFailed) as failed:
        wait_for_task(vsphere, task, lambda _: None)
    assert isinstance(failed.value.fault, vim.fault.GenericVmConfigFault)
    assert "disk is on fire" in failed.value.message
    calls.assert_no_collector_left()


def test_an_unknown_task_is_not_found(vsphere):
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        wait_for_task(vsphere, vim.Task("task-does-not-exist", vsphere._stub), lambda _: None)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        _wait_for_end(vsphere, vim.Task("task-does-not-exist", vsphere._stub), 2, lambda: None)


def test_a_lost_session_propagates(vcsim, sim_vm):
    """vCenter's NotAuthenticated reaches the caller (the session wrapper logs in again and retries)."""
    si = SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password,
                      disableSslCertValidation=True)
    vm = virtual_machine(si, vcsim.control.vms()[sim_vm])
    vcsim.control.delay("ReconfigVM_Task", vm._moId, 3, count=1)
    task = reconfig(vm, "outlives the session")

    logout = threading.Timer(0.5, service_content(si).sessionManager.Logout)  # while the wait waits
    logout.start()
    try:
        with pytest.raises(vim.fault.NotAuthenticated):
            wait_for_task(si, task, lambda _: None, max_wait_seconds=1)
    finally:
        logout.join()
        vcsim.control.clear()


def test_progress_is_reported_while_the_task_is_quiet(vsphere, vcsim, vm):
    vcsim.control.delay("ReconfigVM_Task", vm._moId, 2.5, count=1)
    progress: list[int] = []
    wait_for_task(vsphere, reconfig(vm, "slow"), progress.append, max_wait_seconds=1)
    assert len(progress) >= 3  # when found running, then after each quiet second
    assert progress == sorted(progress) and progress[-1] > progress[0]


def test_concurrent_waits_in_one_session_each_see_their_own_task(vsphere, vcsim, monkeypatch):
    vms = [virtual_machine(vsphere, vcsim.control.vms()[take_sim_vm(vcsim)]) for _ in range(8)]
    calls = Calls(vsphere, monkeypatch)
    try:
        for machine in vms:  # held until released below (the delay is only a cap)
            vcsim.control.delay("CreateSnapshot_Task", machine._moId, 120, count=1)
        tasks = [m.CreateSnapshot_Task(name=f"concurrent-{i}", memory=False, quiesce=False)
                 for i, m in enumerate(vms)]
        with ThreadPoolExecutor(len(tasks)) as pool:
            waits = [pool.submit(wait_for_task, vsphere, t, lambda _: None) for t in tasks]
            # every wait found its task running and has its own collector; then the tasks end one by one
            eventually(lambda: len(calls.collectors) == len(tasks), 60, "a collector per wait")
            for machine in vms:
                assert vcsim.control.release("CreateSnapshot_Task", machine._moId) == 1
            results = [w.result(timeout=60) for w in waits]
        for i, (machine, snapshot) in enumerate(zip(vms, results, strict=True)):
            tree = retrieve(vsphere, machine, ["snapshot"])["snapshot"]
            assert [(n.name, n.snapshot) for n in tree.rootSnapshotList] == [(f"concurrent-{i}", snapshot)]
        assert len(calls.collectors) == len(tasks)
        calls.assert_no_collector_left()
    finally:
        vcsim.control.clear()
        for machine in vms:
            wait_for_task(vsphere, machine.RemoveAllSnapshots_Task(), lambda _: None)


def test_running_snapshot_tasks_in_one_round_trip(vsphere, vcsim, vm, monkeypatch):
    for i in range(5):  # finished tasks in recentTask: reconfigures and snapshot tasks
        wait_for_task(vsphere, reconfig(vm, f"done {i}"), lambda _: None)
        wait_for_task(vsphere, vm.CreateSnapshot_Task(name=f"done-{i}", memory=False, quiesce=False),
                      lambda _: None)
    vcsim.control.delay("ReconfigVM_Task", vm._moId, 3, count=1)
    vcsim.control.delay("CreateSnapshot_Task", vm._moId, 3, count=1)
    running_reconfig = reconfig(vm, "running, not a snapshot task")
    running = vm.CreateSnapshot_Task(name="running", memory=False, quiesce=False)
    assert len(retrieve(vsphere, vm, ["recentTask"])["recentTask"]) >= 12

    calls = Calls(vsphere, monkeypatch)
    assert running_snapshot_tasks(vsphere, vm) == [running]
    assert calls.names == ["RetrieveProperties"]

    wait_for_task(vsphere, running, lambda _: None)
    wait_for_task(vsphere, running_reconfig, lambda _: None)
    assert running_snapshot_tasks(vsphere, vm) == []


def test_running_snapshot_tasks_of_an_unknown_vm(vsphere):
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        running_snapshot_tasks(vsphere, vim.VirtualMachine("vm-does-not-exist", vsphere._stub))
