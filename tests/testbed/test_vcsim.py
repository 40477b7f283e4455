"""Smoke tests of the test bed's vCenter simulator (testbed/go/vcsim), through pyvmomi as the product uses it.

Each test takes a VM of the default inventory through the `vm` fixture, which puts it back as it found it
(no snapshots, powered on, Tools not running). Expected file sizes follow the formula in vcsim/main.go.
"""

from __future__ import annotations

import base64
import gzip
import re
import time

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

from testbed.vcsim import VCSim

PC = vmodl.query.PropertyCollector
MiB = 1 << 20
VMSN_BYTES, DELTA_DESCRIPTOR_BYTES, DELTA_EXTENT_BYTES = 32 * 1024, 512, 16 * MiB
YAML_KEY = "vmservice.virtualmachine.resource.yaml"
DELTA_NAME = re.compile(r"-\d{6}(-delta)?\.vmdk$")


# --- helpers -------------------------------------------------------------------------------------------------

def props(si, obj, *paths):
    """Properties of obj read with RetrieveContents and an explicit pathSet (unset ones are None)."""
    spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj)],
                         propSet=[PC.PropertySpec(type=type(obj), pathSet=list(paths))])
    [content] = si.content.propertyCollector.RetrieveContents([spec])
    got = {p.name: p.val for p in content.propSet}
    return got.get(paths[0]) if len(paths) == 1 else {p: got.get(p) for p in paths}


def find_vm(si, name):
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[
                PC.TraversalSpec(type=vim.view.ContainerView, path="view", skip=False)])],
            propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])])
        for content in si.content.propertyCollector.RetrieveContents([spec]):
            if content.propSet[0].val == name:
                return vim.VirtualMachine(content.obj._moId, si._stub)
    finally:
        view.DestroyView()
    raise LookupError(name)


def run(task):
    """Wait for the task with pyVim's WaitForTask (as the product may); its result, or raise its fault."""
    WaitForTask(task)
    return task.info.result


def create(vm, name, memory=False, quiesce=False):
    return run(vm.CreateSnapshot_Task(name=name, description=f"{name} by test", memory=memory, quiesce=quiesce))


def tree(si, vm):
    """{name: node} of the VM's snapshot tree, and the current snapshot."""
    info = props(si, vm, "snapshot")
    nodes = {}

    def walk(ns):
        for n in ns:
            nodes[n.name] = n
            walk(n.childSnapshotList)
    if info is not None:
        walk(info.rootSnapshotList)
    return nodes, (info.currentSnapshot if info else None)


def power(si, vm):
    p = props(si, vm, "runtime.powerState", "summary.runtime.powerState")
    assert p["runtime.powerState"] == p["summary.runtime.powerState"]
    return p["runtime.powerState"]


def set_power(vm, state):
    ops = {"poweredOn": vm.PowerOnVM_Task, "poweredOff": vm.PowerOffVM_Task, "suspended": vm.SuspendVM_Task}
    if vm.runtime.powerState != state:
        if state == "suspended" and vm.runtime.powerState != "poweredOn":
            run(vm.PowerOnVM_Task())
        run(ops[state]())


def extra_config(si, vm_or_snapshot):
    return {o.key: o.value for o in props(si, vm_or_snapshot, "config.extraConfig") or []}


def set_extra_config(vm, values):
    """ReconfigVM_Task with these ExtraConfig keys ("" deletes a key)."""
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in values.items()])
    return run(vm.ReconfigVM_Task(spec))


def collect_changes(pc, version, done, timeout=10):
    """(name, value) changes from WaitForUpdatesEx until done(changes) or timeout, and the last version."""
    changes = []
    deadline = time.monotonic() + timeout
    while not done(changes) and time.monotonic() < deadline:
        result = pc.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=1))
        if result is None:
            continue
        version = result.version
        for fs in result.filterSet:
            for obj in fs.objectSet:
                changes += [(c.name, c.val) for c in obj.changeSet]
    return changes, version


# --- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def vm_names(vcsim) -> tuple[str, str]:
    """The two VMs these tests use: the last ones tests/fixtures/product.py's sim_vm would hand out."""
    *_, other, main = sorted(vcsim.control.vms())
    return main, other


@pytest.fixture
def other_vm(vsphere, vm_names):
    """A second VM, only read or given short-lived snapshots."""
    return find_vm(vsphere, vm_names[1])


@pytest.fixture
def vm(vsphere, vcsim, vm_names):
    """The tests' VM, put back as found afterwards: no snapshots, powered on, Tools not running."""
    machine = find_vm(vsphere, vm_names[0])
    yield machine
    if vcsim.simulated:
        vcsim.control.clear()  # a held task would hold up the clean-up
    run(machine.RemoveAllSnapshots_Task())
    set_power(machine, "poweredOn")
    if vcsim.simulated:
        vcsim.control.set_tools_running(machine._moId, False)


# --- basics --------------------------------------------------------------------------------------------------

def test_create_list_revert(vsphere, vm):
    assert vm.snapshot is None  # pyvmomi reads attributes with Fetch; unset must come back as None
    assert vm.runtime.faultToleranceState == "notConfigured"  # vm.runtime must deserialize

    s1 = create(vm, "s1")
    s2 = create(vm, "s2")
    assert isinstance(s1, vim.vm.Snapshot)
    nodes, current = tree(vsphere, vm)
    assert set(nodes) == {"s1", "s2"}
    assert [c.name for c in nodes["s1"].childSnapshotList] == ["s2"]
    assert current == s2
    assert props(vsphere, vm, "rootSnapshot") == [s1]
    assert props(vsphere, s1, "childSnapshot") == [s2]
    assert nodes["s2"].id > nodes["s1"].id

    task = s1.RevertToSnapshot_Task()
    run(task)
    assert task.info.entity == vm  # pyVim's WaitForTask needs a ManagedEntity here
    assert tree(vsphere, vm)[1] == s1

    # A new snapshot after the revert is a sibling of s2.
    s3 = create(vm, "s3")
    nodes, current = tree(vsphere, vm)
    assert current == s3
    assert sorted(c.name for c in nodes["s1"].childSnapshotList) == ["s2", "s3"]


def test_remove_with_children_leaves_nothing_behind(vsphere, vm):
    a = create(vm, "a")
    b = create(vm, "b")
    c = create(vm, "c")
    run(b.RemoveSnapshot_Task(removeChildren=True))
    nodes, current = tree(vsphere, vm)
    assert set(nodes) == {"a"} and current == a
    assert props(vsphere, a, "childSnapshot") == []
    for gone in (b, c):
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            props(vsphere, gone, "config")
    create(vm, "d")  # vcsim used to panic here (dangling currentSnapshot)
    assert set(tree(vsphere, vm)[0]) == {"a", "d"}


def test_remove_without_children_keeps_them(vsphere, vm):
    a = create(vm, "a")
    b = create(vm, "b")
    c = create(vm, "c")
    run(b.RemoveSnapshot_Task(removeChildren=False))
    nodes, current = tree(vsphere, vm)
    assert [n.name for n in nodes["a"].childSnapshotList] == ["c"] and current == c
    assert props(vsphere, a, "childSnapshot") == [c]


# --- (a) power state after revert ----------------------------------------------------------------------------

def test_snapshot_state_records_memory(vsphere, vm):
    create(vm, "with-memory", memory=True)
    create(vm, "without-memory", memory=False)
    nodes, _ = tree(vsphere, vm)
    assert nodes["with-memory"].state == "poweredOn"
    assert nodes["without-memory"].state == "poweredOff"


def test_revert_restores_power_state(vsphere, vm):
    on = create(vm, "on", memory=True)
    off = create(vm, "off", memory=False)

    run(off.RevertToSnapshot_Task())
    assert power(vsphere, vm) == "poweredOff"
    run(on.RevertToSnapshot_Task())
    assert power(vsphere, vm) == "poweredOn"
    run(off.RevertToSnapshot_Task(suppressPowerOn=True))
    assert power(vsphere, vm) == "poweredOff"
    run(vm.RevertToCurrentSnapshot_Task())
    assert power(vsphere, vm) == "poweredOff"


def test_revert_with_suppress_power_on_suspends(vsphere, vm):
    on = create(vm, "on", memory=True)
    set_power(vm, "poweredOff")
    run(on.RevertToSnapshot_Task(suppressPowerOn=True))
    assert power(vsphere, vm) == "suspended"
    run(vm.RevertToCurrentSnapshot_Task(suppressPowerOn=False))
    assert power(vsphere, vm) == "poweredOn"


def test_revert_to_suspended_snapshot(vsphere, vm):
    set_power(vm, "suspended")
    susp = create(vm, "suspended", memory=True)
    assert tree(vsphere, vm)[0]["suspended"].state == "suspended"
    set_power(vm, "poweredOn")
    run(susp.RevertToSnapshot_Task())
    assert power(vsphere, vm) == "suspended"


def test_power_state_changes_are_published(vsphere, vm):
    """Watchers of runtime.powerState see the revert (WaitForUpdatesEx)."""
    off = create(vm, "off")
    pc = vsphere.content.propertyCollector.CreatePropertyCollector()
    try:
        pc.CreateFilter(PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)], propSet=[
            PC.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"])]), True)
        version = pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5)).version
        run(off.RevertToSnapshot_Task())
        changes, _ = collect_changes(pc, version, lambda ch: ("runtime.powerState", "poweredOff") in ch)
        assert ("runtime.powerState", "poweredOff") in changes
    finally:
        pc.DestroyPropertyCollector()


# --- (b) quiesce needs VMware Tools --------------------------------------------------------------------------

def test_quiesce_without_tools_fails_as_task(vsphere, vm):
    assert props(vsphere, vm, "guest.toolsRunningStatus") == "guestToolsNotRunning"
    task = vm.CreateSnapshot_Task(name="q", memory=False, quiesce=True)  # the call itself succeeds
    with pytest.raises(vim.fault.ToolsUnavailable):
        WaitForTask(task)
    assert task.info.state == "error"
    with pytest.raises(vim.fault.ToolsUnavailable):
        run(vm.CreateSnapshotEx_Task(name="qx", memory=False, quiesceSpec=vim.vm.GuestQuiesceSpec()))
    assert vm.snapshot is None

    create(vm, "not-quiesced", quiesce=False)  # no quiesce, no Tools needed


def test_quiesce_with_tools_running(vsphere, vcsim, vm):
    vcsim.control.set_tools_running(vm.name, True)  # by name
    guest = props(vsphere, vm, "guest.toolsRunningStatus", "guest.toolsStatus", "summary.guest.toolsRunningStatus")
    assert guest == {"guest.toolsRunningStatus": "guestToolsRunning", "guest.toolsStatus": "toolsOk",
                     "summary.guest.toolsRunningStatus": "guestToolsRunning"}
    create(vm, "q", quiesce=True)
    run(vm.CreateSnapshotEx_Task(name="qx", memory=False, quiesceSpec=vim.vm.GuestQuiesceSpec()))
    nodes, _ = tree(vsphere, vm)
    assert nodes["q"].quiesced and nodes["qx"].quiesced

    vcsim.control.set_tools_running(vm._moId, False)  # by moref
    with pytest.raises(vim.fault.ToolsUnavailable):
        create(vm, "q2", quiesce=True)


def test_quiesce_of_powered_off_vm_needs_no_tools(vsphere, vm):
    set_power(vm, "poweredOff")
    create(vm, "cold", quiesce=True)
    assert not tree(vsphere, vm)[0]["cold"].quiesced


def test_tools_running_flag(tmp_path):
    with VCSim(tmp_path, vms_per_pool=1, tools_running=True) as sim:
        si = SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password,
                          disableSslCertValidation=True)
        try:
            view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
            assert len(view.view) == 2  # one per resource pool
            for machine in view.view:
                assert props(si, machine, "guest.toolsRunningStatus") == "guestToolsRunning"
            create(view.view[0], "q", quiesce=True)
        finally:
            Disconnect(si)


# --- (c) snapshot files and sizes in layoutEx ----------------------------------------------------------------

def check_keys(layout):
    """Every key a snapshot or disk chain names is a file of the right type; returns {key: file}."""
    files = {f.key: f for f in layout.file}
    assert len(files) == len(layout.file), "file keys are unique"
    for s in layout.snapshot:
        assert files[s.dataKey].type == "snapshotData"
        assert s.memoryKey == -1 or files[s.memoryKey].type == "snapshotMemory"
    for d in list(layout.disk) + [d for s in layout.snapshot for d in s.disk]:
        for unit in d.chain:
            assert sorted(files[k].type for k in unit.fileKey) == ["diskDescriptor", "diskExtent"]
    return files


def chain(layout_disk):
    return [list(u.fileKey) for u in layout_disk.chain]


def test_layout_sizes(vsphere, vm):
    memory_mb = props(vsphere, vm, "config.hardware.memoryMB")
    disks = [d for d in props(vsphere, vm, "config.hardware.device") if isinstance(d, vim.vm.device.VirtualDisk)]
    assert disks and all(d.capacityInBytes == d.capacityInKB * 1024 > 0 for d in disks)
    base = props(vsphere, vm, "layoutEx")
    base_chains = {d.key: chain(d) for d in base.disk}
    assert all(len(c) == 1 for c in base_chains.values())

    s1 = create(vm, "s1", memory=True)
    s2 = create(vm, "s2", memory=False)
    vm.RefreshStorageInfo()  # must not renumber the keys
    layout, storage = props(vsphere, vm, "layoutEx", "summary.storage").values()
    files = check_keys(layout)
    snaps = {s.key: s for s in layout.snapshot}
    ids = {n.snapshot: n.id for n in tree(vsphere, vm)[0].values()}

    for snap, memory in ((s1, True), (s2, False)):
        sl = snaps[snap]
        data = files[sl.dataKey]
        assert data.name.endswith(f"-Snapshot{ids[snap]}.vmsn") and data.size == VMSN_BYTES
        if memory:
            assert files[sl.memoryKey].name.endswith(f"-Snapshot{ids[snap]}.vmem")
            assert files[sl.memoryKey].size == memory_mb * MiB
        else:
            assert sl.memoryKey == -1

    # s1 was taken on the base disks; s2 on base + the delta s1 started; the VM writes to a third delta.
    for d in layout.disk:
        vm_chain = chain(d)
        assert len(vm_chain) == 3 and vm_chain[:1] == base_chains[d.key]
        assert chain(next(x for x in snaps[s1].disk if x.key == d.key)) == vm_chain[:1]
        assert chain(next(x for x in snaps[s2].disk if x.key == d.key)) == vm_chain[:2]
        for unit in vm_chain[1:]:
            sizes = sorted((files[k].type, files[k].size) for k in unit)
            assert sizes == [("diskDescriptor", DELTA_DESCRIPTOR_BYTES), ("diskExtent", DELTA_EXTENT_BYTES)]
            assert all(DELTA_NAME.search(files[k].name) for k in unit)
    assert storage.committed == sum(f.size for f in layout.file)

    # Removing s2 drops its .vmsn; the deltas stay, the disks still use them.
    run(s2.RemoveSnapshot_Task(removeChildren=False))
    layout = props(vsphere, vm, "layoutEx")
    files = check_keys(layout)
    assert [s.key for s in layout.snapshot] == [s1]
    assert not any(f.name.endswith(f"-Snapshot{ids[s2]}.vmsn") for f in layout.file)
    assert sum(f.type == "snapshotData" for f in files.values()) == 1

    # With no snapshot left the VM is back on its base disks.
    run(vm.RemoveAllSnapshots_Task())
    layout = props(vsphere, vm, "layoutEx")
    check_keys(layout)
    assert layout.snapshot == []
    assert {d.key: chain(d) for d in layout.disk} == base_chains
    assert not [f for f in layout.file if f.type in ("snapshotData", "snapshotMemory") or DELTA_NAME.search(f.name)]


def test_revert_starts_a_new_delta(vsphere, vm):
    s1 = create(vm, "s1")
    before = {d.key: chain(d) for d in props(vsphere, vm, "layoutEx").disk}
    run(s1.RevertToSnapshot_Task())
    layout = props(vsphere, vm, "layoutEx")
    check_keys(layout)
    for d in layout.disk:
        now = chain(d)
        assert now[0] == before[d.key][0] and now[1] != before[d.key][1]  # the old running delta is gone
        assert not set(before[d.key][1]) & {f.key for f in layout.file}


# --- (d) slow and failing tasks ------------------------------------------------------------------------------

def test_slow_task_runs_then_completes_once(vsphere, vcsim, vm, other_vm):
    vcsim.control.delay("CreateSnapshot_Task", vm._moId, seconds=2)
    task = vm.CreateSnapshot_Task(name="slow", memory=False, quiesce=False)
    assert task.info.state == "running"

    progress = []
    while True:
        # Other calls keep working while the task is held: reads of this VM and another one; and the snapshot
        # does not exist while the task is running (read before the task's state, hence the order).
        snapshot = props(vsphere, vm, "snapshot")
        assert props(vsphere, other_vm, "runtime.powerState") == "poweredOn"
        info = task.info
        if info.state != "running":
            break
        assert snapshot is None
        progress.append(info.progress or 0)
        time.sleep(0.1)
    assert len(set(progress)) >= 3 and progress == sorted(progress)

    # A second client re-attaching to the task by its moref sees it complete, with exactly one snapshot.
    si2 = SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password,
                       disableSslCertValidation=True)
    try:
        again = vim.Task(task._moId, si2._stub)
        WaitForTask(again)
        assert again.info.state == "success" and again.info.progress == 100
        snapshot = again.info.result
    finally:
        Disconnect(si2)
    nodes, current = tree(vsphere, vm)
    assert list(nodes) == ["slow"] and current == snapshot


def test_held_task_can_be_cancelled(vsphere, vcsim, vm):
    vcsim.control.delay("CreateSnapshotEx_Task", vm._moId, seconds=30)
    task = vm.CreateSnapshotEx_Task(name="never", memory=False)
    assert task.info.cancelable
    task.CancelTask()
    with pytest.raises(vmodl.fault.RequestCanceled):
        WaitForTask(task)
    vcsim.control.clear()
    time.sleep(0.3)  # the held task notices the cancel within 0.1 s
    assert task.info.state == "error" and vm.snapshot is None


def test_a_released_task_does_its_work_at_once(vsphere, vcsim, vm, other_vm):
    vcsim.control.delay("CreateSnapshotEx_Task", "*", seconds=600, count=2)
    held, other = (v.CreateSnapshotEx_Task(name="held", memory=False) for v in (vm, other_vm))
    assert vcsim.control.release("CreateSnapshotEx_Task", vm._moId) == 1
    run(held)
    assert held.info.state == "success" and other.info.state == "running"  # only the VM named
    assert vcsim.control.release("CreateSnapshotEx_Task", "*") == 1
    run(other)
    assert vcsim.control.release("CreateSnapshotEx_Task", "*") == 0  # nothing held any more


def test_wait_for_updates_works_while_a_task_is_held(vsphere, vcsim, vm, other_vm):
    vcsim.control.delay("RemoveAllSnapshots_Task", vm._moId, seconds=3)
    pc = vsphere.content.propertyCollector.CreatePropertyCollector()
    try:
        pc.CreateFilter(PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)], propSet=[
            PC.PropertySpec(type=vim.VirtualMachine, pathSet=["snapshot"])]), True)
        version = pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5)).version
        task = vm.RemoveAllSnapshots_Task()
        created = create(other_vm, "during")  # another VM's tasks are not held up
        run(other_vm.RemoveAllSnapshots_Task())
        assert isinstance(created, vim.vm.Snapshot)
        # The held task is still running; the watch returns (nothing changed on this VM) instead of hanging.
        assert pc.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=0)) is None
        assert task.info.state == "running"
        run(task)
    finally:
        pc.DestroyPropertyCollector()


def test_fault_once_then_success(vsphere, vcsim, vm):
    vcsim.control.inject_fault("CreateSnapshotEx_Task", vm._moId, "GenericVmConfigFault",
                               message="disk busy", count=1)
    with pytest.raises(vim.fault.GenericVmConfigFault) as failed:
        run(vm.CreateSnapshotEx_Task(name="first", memory=False))
    assert failed.value.reason == "disk busy" and failed.value.msg == "disk busy"
    assert vm.snapshot is None
    run(vm.CreateSnapshotEx_Task(name="second", memory=False))
    assert list(tree(vsphere, vm)[0]) == ["second"]


@pytest.mark.parametrize("fault,error", [
    ("ToolsUnavailable", vim.fault.ToolsUnavailable),
    ("InvalidPowerState", vim.fault.InvalidPowerState),
    ("NotFound", vim.fault.NotFound),
    ("GenericVmConfigFault", vim.fault.GenericVmConfigFault),
    ("SystemError", vmodl.fault.SystemError),
    ("TaskInProgress", vim.fault.TaskInProgress),
])
def test_fault_always(vsphere, vcsim, vm, fault, error):
    s1 = create(vm, "s1")
    vcsim.control.inject_fault("RevertToSnapshot_Task", vm._moId, fault, message=f"no {fault}", count=0)
    for _ in range(3):
        task = s1.RevertToSnapshot_Task()
        with pytest.raises(error) as failed:
            WaitForTask(task)
        assert failed.value.msg == f"no {fault}"
    if fault == "TaskInProgress":
        assert failed.value.task == task
    if fault == "InvalidPowerState":
        assert failed.value.existingState == "poweredOn"
    vcsim.control.clear()
    run(s1.RevertToSnapshot_Task())


@pytest.mark.parametrize("method", ["CreateSnapshot_Task", "CreateSnapshotEx_Task", "RevertToSnapshot_Task",
                                    "RemoveSnapshot_Task", "ReconfigVM_Task"])
def test_fault_n_times_per_method(vsphere, vcsim, vm, method):
    s1 = create(vm, "s1")
    calls = {
        "CreateSnapshot_Task": lambda: vm.CreateSnapshot_Task(name="x", memory=False, quiesce=False),
        "CreateSnapshotEx_Task": lambda: vm.CreateSnapshotEx_Task(name="x", memory=False),
        "RevertToSnapshot_Task": lambda: s1.RevertToSnapshot_Task(),
        "RemoveSnapshot_Task": lambda: s1.RemoveSnapshot_Task(removeChildren=False),
        "ReconfigVM_Task": lambda: vm.ReconfigVM_Task(vim.vm.ConfigSpec(
            extraConfig=[vim.option.OptionValue(key="test.n", value="1")])),
    }
    vcsim.control.inject_fault(method, vm._moId, "TaskInProgress", count=2)
    for _ in range(2):
        with pytest.raises(vim.fault.TaskInProgress):
            run(calls[method]())
    nodes, _ = tree(vsphere, vm)
    assert list(nodes) == ["s1"]  # the failed calls changed nothing
    run(calls[method]())


def test_reconfig_delay_then_applied(vsphere, vcsim, vm):
    vcsim.control.delay("ReconfigVM_Task", vm._moId, seconds=1)
    task = vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="test.slow", value="1")]))
    assert task.info.state == "running"
    assert "test.slow" not in extra_config(vsphere, vm)
    run(task)
    assert extra_config(vsphere, vm)["test.slow"] == "1"
    set_extra_config(vm, {"test.slow": ""})


def test_control_api_rejects_bad_requests(vcsim, vm_names):
    if not vcsim.simulated:
        pytest.fail("needs the simulator (VSPHERE_URL is set)")
    name = vm_names[0]
    with pytest.raises(RuntimeError, match="404"):
        vcsim.control.inject_fault("CreateSnapshot_Task", "no-such-vm", "NotFound")
    with pytest.raises(RuntimeError, match="unknown fault"):
        vcsim.control.inject_fault("CreateSnapshot_Task", name, "NoSuchFault")
    with pytest.raises(RuntimeError, match="cannot be intercepted"):
        vcsim.control.delay("PowerOnVM_Task", name, 1)
    assert vcsim.control.rules() == {"faults": [], "delays": []}
    assert vcsim.control.vms()[name].startswith("vm-")


# --- what the product relies on: update notifications, ExtraConfig, snapshot config ---------------------------

def test_wait_for_updates_sees_snapshot_create_and_remove(vsphere, vm):
    pc = vsphere.content.propertyCollector  # the default collector, as a plain pyvmomi watch would use
    pc.CreateFilter(PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vm)], propSet=[
        PC.PropertySpec(type=vim.VirtualMachine, pathSet=["snapshot"])]), True)
    version = pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5)).version

    s1 = create(vm, "watched")  # pyVim's WaitForTask waits on this session's default collector as well
    changes, version = collect_changes(pc, version, lambda ch: any(n == "snapshot" and v for n, v in ch))
    snap = [v for n, v in changes if n == "snapshot" and v][-1]
    assert snap.currentSnapshot == s1 and [n.name for n in snap.rootSnapshotList] == ["watched"]

    run(s1.RemoveSnapshot_Task(removeChildren=False))
    changes, _ = collect_changes(pc, version, lambda ch: ("snapshot", None) in ch)
    assert ("snapshot", None) in changes


def test_watches_from_several_sessions(vsphere, vcsim, vm):
    """Each session's default PropertyCollector gets the updates, also while other sessions wait."""
    sessions = [SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password,
                             disableSslCertValidation=True) for _ in range(2)]
    try:
        watches = []
        for si in sessions:
            pc = si.content.propertyCollector
            pc.CreateFilter(PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=vim.VirtualMachine(vm._moId, si._stub))],
                                          propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["snapshot"])]),
                            True)
            watches.append((pc, pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5)).version))
        create(vm, "seen-by-all")  # WaitForTask in the test's own session waits on its default collector too
        for pc, version in watches:
            changes, _ = collect_changes(pc, version, lambda ch: any(n == "snapshot" and v for n, v in ch))
            assert any(n == "snapshot" and v for n, v in changes)
    finally:
        for si in sessions:
            Disconnect(si)


def yaml_blob(text):
    return base64.b64encode(gzip.compress(text.encode())).decode()


def test_extra_config_updates_in_place(vsphere, vm):
    set_extra_config(vm, {"test.one": "1"})
    set_extra_config(vm, {"test.one": "2"})
    extra = props(vsphere, vm, "config.extraConfig")
    assert [o.value for o in extra if o.key == "test.one"] == ["2"]
    set_extra_config(vm, {"test.one": ""})  # "" deletes
    assert "test.one" not in extra_config(vsphere, vm)


def test_snapshot_config_is_a_deep_copy(vsphere, vm):
    v1, v2 = yaml_blob("kind: VirtualMachine\nspec: {v: 1}\n"), yaml_blob("kind: VirtualMachine\nspec: {v: 2}\n")
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=YAML_KEY, value=v1)])
    run(vm.ReconfigVM_Task(spec))
    snap = create(vm, "with-yaml")
    spec.extraConfig[0].value = v2
    run(vm.ReconfigVM_Task(spec))

    assert extra_config(vsphere, snap)[YAML_KEY] == v1
    assert extra_config(vsphere, vm)[YAML_KEY] == v2
    stored = gzip.decompress(base64.b64decode(extra_config(vsphere, snap)[YAML_KEY])).decode()
    assert "v: 1" in stored

    # Revert restores the VM's config (here: ExtraConfig) from the snapshot, as vSphere does.
    run(snap.RevertToSnapshot_Task())
    assert extra_config(vsphere, vm)[YAML_KEY] == v1
    spec.extraConfig[0].value = ""
    run(vm.ReconfigVM_Task(spec))
    assert extra_config(vsphere, snap)[YAML_KEY] == v1  # the snapshot keeps its copy
