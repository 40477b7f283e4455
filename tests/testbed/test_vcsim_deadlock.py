"""Stress test: the vCenter simulator (testbed/go/vcsim) does not deadlock when sessions log out under load.

Through pyvmomi, as the product uses it, and all at once: sessions log in, read through a ContainerView of their
own (a change feed's WaitForUpdatesEx on a private collector, RetrievePropertiesEx) and log out while those reads
are in flight, hundreds of times; snapshot tasks on a few VMs create and remove snapshots (registering a task or a
snapshot takes every ContainerView's lock); a long-lived change feed collects the VMs' `snapshot` through a
ContainerView. vcsim's Logout held its session registry's mutex while it took the views' locks, and a read through
a view takes them the other way round (see sessionMethods.Logout in testbed/go/vcsim/behaviours.go): the two
deadlocked, and every later task and every read of the VMs those tasks were on hung behind them.

Every call has a socket timeout and every thread a deadline, so a deadlock fails the test within about a minute
instead of hanging it: the simulator then gets SIGQUIT, and its goroutine dump is saved as vcsim-goroutines.txt
beside its log. VMSNAP_VCSIM_BINARY=<path> runs the test against another build of the simulator (an older one).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pyVim.connect import SmartConnect
from pyVmomi import vim, vmodl

from testbed.vcsim import VCSim

PC = vmodl.query.PropertyCollector

VMS_PER_POOL = 5  # 10 VMs: every WaitForUpdatesEx goes through all of them once per change, anywhere
SNAPSHOT_VMS = 3
PACE = 0.05  # seconds between two snapshots of a VM: more changes and the change feed falls behind
ROUNDS = 200  # sessions that log out while their reads are in flight
ROUND_SECONDS = 40  # no round starts after this long (a loaded machine runs fewer rounds)
CHURNERS = 2  # threads running those rounds
READERS = 2  # RetrievePropertiesEx threads in each round's session
# Object specs of the view in a reader's spec: the simulator goes through the view, holding its lock and looking
# each VM up in the session, that many times per call; with 100 vcsim v0.56.0 deadlocked within ~20 rounds
VIEW_SPECS = 100
CALL_TIMEOUT = 20  # seconds: socket timeout of every call, and the longest a task may run
STALL = 20  # seconds in which no call anywhere returned: the simulator hangs (a loaded machine is slow, not silent)

# What a call of a session that has just logged out may get: its objects are gone, or it is not logged in.
SESSION_ENDED = (vmodl.fault.ManagedObjectNotFound, vim.fault.NotAuthenticated)


class Run:
    """What the threads share: progress, failures, and when to stop."""

    def __init__(self):
        self.lock = threading.Lock()
        self.progress = 0
        self.rounds = 0
        self.hung: list[str] = []  # calls that timed out
        self.errors: list[str] = []  # anything else that went wrong
        self.done = threading.Event()  # rounds over (or a failure): every thread stops
        self.last_round = time.monotonic() + ROUND_SECONDS

    def tick(self) -> None:
        with self.lock:
            self.progress += 1

    def take_round(self) -> bool:
        with self.lock:
            if self.done.is_set() or self.rounds >= ROUNDS or time.monotonic() > self.last_round:
                return False
            self.rounds += 1
            return True

    def failed(self, where: str, e: BaseException) -> None:
        with self.lock:
            (self.hung if isinstance(e, TimeoutError) else self.errors).append(f"{where}: {e!r}"[:500])
        self.done.set()

    def thread(self, where: str, target, *args) -> threading.Thread:
        def body():
            try:
                target(*args)
            except BaseException as e:  # noqa: BLE001 - recorded; the test fails on it
                self.failed(where, e)
        t = threading.Thread(target=body, name=where, daemon=True)
        t.start()
        return t


def connect(sim: VCSim):
    return SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password,
                        disableSslCertValidation=True, httpConnectionTimeout=CALL_TIMEOUT)


def logout(si) -> None:
    """Log out (pyVim's Disconnect would swallow a timeout)."""
    si.content.sessionManager.Logout()
    si._stub.DropConnections()


def through_view(view, path: str, times: int = 1):
    """A filter spec for `path` of every VM in the ContainerView, as the product's change feed has; `times` object
    specs of the view make the simulator go through it that many times (holding its lock each time)."""
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[
            PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)])] * times,
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=[path])])


def wait(task):
    """The task's result once it has ended in success; fails if it ended in error, TimeoutError if it runs on."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        info = task.info
        if info.state == vim.TaskInfo.State.success:
            return info.result
        assert info.state != vim.TaskInfo.State.error, f"{info.name} on {info.entityName}: {info.error}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{info.name} on {info.entityName} still {info.state} after {CALL_TIMEOUT}s")
        time.sleep(0.01)


def snapshots(sim: VCSim, run: Run, moref: str, last: dict) -> None:
    """Snapshots s1, s2, ... of one VM, each removed again once the next is taken (so the tree keeps the last)."""
    si = connect(sim)
    vm = vim.VirtualMachine(moref, si._stub)
    previous, n = None, 0
    while not run.done.is_set():
        n += 1
        snap = wait(vm.CreateSnapshot_Task(name=f"s{n}", description="stress", memory=False, quiesce=False))
        assert isinstance(snap, vim.vm.Snapshot), snap
        last[moref] = (f"s{n}", snap._moId)
        if previous is not None:
            wait(previous.RemoveSnapshot_Task(removeChildren=False))
        previous = snap
        run.tick()
        run.done.wait(PACE)
    logout(si)


class Feed:
    """A change feed as the product's: a private collector's WaitForUpdatesEx on every VM's `snapshot`."""

    def __init__(self, si):
        content = si.content
        self.view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        self.collector = content.propertyCollector.CreatePropertyCollector()
        self.collector.CreateFilter(through_view(self.view, "snapshot"), partialUpdates=True)
        self.version = ""
        self.snapshot: dict[str, object] = {}  # VM moref -> the last `snapshot` reported

    def poll(self, wait_seconds: int = 1) -> bool:
        """One WaitForUpdatesEx; False if nothing changed."""
        update = self.collector.WaitForUpdatesEx(self.version, PC.WaitOptions(maxWaitSeconds=wait_seconds))
        if update is None:
            return False
        self.version = update.version
        for fs in update.filterSet or []:
            for o in fs.objectSet or []:
                for change in o.changeSet or []:
                    if change.name == "snapshot":
                        self.snapshot[o.obj._moId] = change.val
        return True

    def follow(self, run: Run) -> None:
        while not run.done.is_set():
            if self.poll():
                run.tick()


def session_rounds(sim: VCSim, run: Run, vms: set[str]) -> None:
    while run.take_round():
        session_round(sim, run, vms)
        run.tick()


def session_round(sim: VCSim, run: Run, vms: set[str]) -> None:
    """One session: a change feed and readers through its ContainerView, and a Logout while their calls run."""
    si = connect(sim)
    feed = Feed(si)
    assert feed.poll(0), "no first update"
    assert set(feed.snapshot) == vms, "the first update names every VM"
    spec = through_view(feed.view, "name", VIEW_SPECS)
    logged_out = threading.Event()
    busy = []

    def until_logged_out(call, check=lambda _: None) -> threading.Thread:
        """Make the call again and again until the Logout has returned (a call that started before it may still
        see the session: vcsim's SessionManager takes no lock, so a call can even put a session that is being
        logged out back; tolerated here, it is not what this test is about)."""
        called = threading.Event()
        busy.append(called)

        def loop():
            try:
                while not (logged_out.is_set() or run.done.is_set()):
                    check(call())
                    called.set()
            except SESSION_ENDED:
                pass
        return run.thread("in-session call", loop)

    def read(collector):
        return lambda: collector.RetrievePropertiesEx([spec], PC.RetrieveOptions())

    def all_vms(result):
        assert result is not None and {o.obj._moId for o in result.objects} == vms, "a read missed VMs"

    # the feed's WaitForUpdatesEx returns at the simulator's first tick (20 ms), with or without changes
    threads = [until_logged_out(lambda: feed.poll(0))]
    threads += [until_logged_out(read(si.content.propertyCollector.CreatePropertyCollector()), all_vms)
                for _ in range(READERS)]
    for called in busy:  # each has made a call: the next ones run as the session ends
        called.wait(CALL_TIMEOUT)
    logout(si)
    logged_out.set()
    for t in threads:
        t.join(CALL_TIMEOUT + 2)
        if t.is_alive():
            raise TimeoutError(f"a call made as the session logged out still runs after {CALL_TIMEOUT + 2}s")


def goroutine_dump(sim: VCSim, dest: Path) -> str:
    """SIGQUIT the simulator (Go prints every goroutine and exits), save what it printed as dest and return it."""
    start = sim.log.stat().st_size
    os.kill(sim.process.pid, signal.SIGQUIT)
    try:
        sim.process.popen.wait(15)
    except subprocess.TimeoutExpired:
        sim.process.kill()
    with open(sim.log, "rb") as f:
        f.seek(start)
        dump = f.read().decode(errors="replace")
    dest.write_text(dump)
    return dump


PLUMBING = re.compile(r"\.(AcquireLock|WithLock|applyHandlers|func\d+|call|ServeSDK(-fm)?)$")  # frames not worth a look


def blocked(dump: str, limit: int = 8) -> str:
    """One line per goroutine waiting for a lock in the simulator: its frames from the innermost."""
    lines = []
    for block in dump.split("\n\n"):
        head, *frames = block.strip().splitlines() or [""]
        if not head.startswith("goroutine ") or "Lock" not in head:
            continue
        names = [re.sub(r"^github\.com/vmware/govmomi/|\(([^()]*|\.\.\.)\)$", "", f.strip()) for f in frames[::2]]
        names = [n for n in names if n.startswith(("simulator.", "main."))]
        callers = [n for n in names[1:] if not PLUMBING.search(n)]
        if names:
            lines.append(f"{head.split(' gp=')[0]} in {names[0]}: " + " < ".join(callers[:5]))
    rank = ("Logout", "collect", "")  # the two ends of the cycle first, then who waits behind them
    lines.sort(key=lambda line: next(i for i, word in enumerate(rank) if word in line))
    return "\n".join(lines[:limit])


def test_no_deadlock_when_sessions_log_out_under_load(tmp_path):
    binary = os.environ.get("VMSNAP_VCSIM_BINARY")
    sim = VCSim(tmp_path, vms_per_pool=VMS_PER_POOL, binary=Path(binary) if binary else None).start()
    run, last, hung = Run(), {}, False
    try:
        vms = set(sim.control.vms().values())
        targets = sorted(vms)[:SNAPSHOT_VMS]
        feed_session = connect(sim)
        feed = Feed(feed_session)
        threads = [run.thread("change feed", feed.follow, run)]
        threads += [run.thread(f"snapshots of {m}", snapshots, sim, run, m, last) for m in targets]
        churners = [run.thread("sessions", session_rounds, sim, run, vms) for _ in range(CHURNERS)]

        start = stalled_since = time.monotonic()
        seen = -1
        while any(t.is_alive() for t in churners) and not run.done.is_set():
            time.sleep(0.2)
            now = time.monotonic()
            if run.progress != seen:
                seen, stalled_since = run.progress, now
            elif now - stalled_since > STALL:
                run.failed("watchdog", TimeoutError(f"no call has returned for {STALL}s"))
        run.done.set()
        if not run.hung:  # every thread ends within a call's timeout
            deadline = time.monotonic() + CALL_TIMEOUT + 2
            for t in threads + churners:
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    run.failed(t.name, TimeoutError(f"still running {CALL_TIMEOUT + 2}s after the end"))

        if run.hung:
            hung = True
            dest = tmp_path / "vcsim-goroutines.txt"
            dump = goroutine_dump(sim, dest)
            pytest.fail(f"[vcsim] the simulator hangs ({'; '.join(run.hung[:3])}) after {run.rounds} rounds, "
                        f"{time.monotonic() - start:.0f}s; goroutine dump: {dest}\n{blocked(dump)}", pytrace=False)
        assert not run.errors, run.errors
        print(f"{run.rounds} rounds in {time.monotonic() - start:.0f}s")

        # The long-lived feed was told everything: it reports each VM's tree as it is now, which holds what the
        # snapshot thread created last, and nothing else.
        while feed.poll():
            pass
        si = connect(sim)
        for moref in targets:
            name, snap = last[moref]
            info = vim.VirtualMachine(moref, si._stub).snapshot
            assert [(n.name, n.snapshot._moId) for n in info.rootSnapshotList] == [(name, snap)]
            assert not info.rootSnapshotList[0].childSnapshotList
            assert info.currentSnapshot._moId == snap
            reported = feed.snapshot[moref]
            assert reported.currentSnapshot._moId == snap
            assert [n.snapshot._moId for n in reported.rootSnapshotList] == [snap]
        logout(si)
        logout(feed_session)
    finally:
        if not hung:
            sim.stop()
