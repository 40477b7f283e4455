"""The vCenter privileges the worker needs, and the check that its user holds them (one of the worker's gates:
runtime/gates.py).

`REQUIRED` is every privilege the product's vSphere calls need, each with the calls: the one list. The role as data,
deploy/vcenter/role.yaml, is the same list (tests/unit/test_vcenter_privileges.py keeps the two equal), and
docs/vcenter-privileges.md says how to create the role and where to grant it.

After connecting, at start and every `VMSNAP_PREREQUISITES_CHECK_SECONDS`, the worker asks vCenter which of them
its session holds on the root folder, or on the inventory paths `VMSNAP_VCENTER_PRIVILEGES_ON` names
(AuthorizationManager.HasPrivilegeOnEntities for its own session: vCenter's own answer, from the user's and its
groups' permissions, inherited and propagated; the call needs only System.View). What it finds, and what it does
(`decide`, `after_error`):

* every privilege held: it acts.
* some missing (or a path vCenter does not show it): it stands aside. Not ready, and one log line naming what is
  missing, e.g. `vCenter user alice@vsphere.local lacks on the root folder: VirtualMachine.State.CreateSnapshot,
  Global.CancelTask (the role: docs/vcenter-privileges.md)`; the worker does not poll its task queues. Granting the
  role resumes work at the next check, without a restart.
* the check cannot be made (a vCenter that does not implement it, such as an ESXi host; a fault; no connection):
  the previous decision stands; at start it acts, with one warning that nothing was checked. A failed check is made
  again within RETRY_SECONDS, one the vCenter does not support at the usual period.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pyVmomi import vim, vmodl

from runtime.gates import RETRY_SECONDS, Decision, Gate
from runtime.vsphere import VSphereSession, fault_message, fault_name

log = logging.getLogger("vmsnap.vcenter_privileges")

DOC = "docs/vcenter-privileges.md"
SETTING = "VMSNAP_VCENTER_PRIVILEGES_ON"
ROOT = "the root folder"


@dataclass(frozen=True)
class Privilege:
    id: str
    needed_by: str         # the product's calls that need it, and where they are
    implicit: bool = False  # vCenter puts it in every role it creates: not named when creating one


REQUIRED: tuple[Privilege, ...] = (
    Privilege("VirtualMachine.State.CreateSnapshot",
              "VirtualMachine.CreateSnapshotEx_Task (CreateSnapshot_Task on vCenter before 7.0 U3), with or without "
              "memory and quiescing: activities/vsphere_snapshot.py VSphereSnapshotActivities._start_create "
              "(activity vsphere_create_snapshot)"),
    Privilege("VirtualMachine.State.RevertToSnapshot",
              "VirtualMachineSnapshot.RevertToSnapshot_Task(suppressPowerOn=False), the VM taking the snapshot's "
              "power state: activities/vsphere_snapshot.py revert_snapshot (activity vsphere_revert_snapshot)"),
    Privilege("VirtualMachine.State.RemoveSnapshot",
              "VirtualMachineSnapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True), for a delete and "
              "for undoing a create that failed or was stopped: activities/vsphere_snapshot.py remove_snapshot "
              "(activity vsphere_remove_snapshot)"),
    Privilege("VirtualMachine.Config.AdvancedConfig",
              "VirtualMachine.ReconfigVM_Task changing config.extraConfig only (VM Operator's "
              "vmservice.virtualmachine.resource.yaml and vmsnap.snapshot.owner-uid), before each create: "
              "activities/vsphere_snapshot.py store_snapshot_extra_config (activity "
              "vsphere_store_snapshot_extra_config)"),
    Privilege("Global.CancelTask",
              "Task.CancelTask of a snapshot task the workflow stops (a deadline, a delete) or that a lost worker "
              "left running: activities/vsphere/tasks.py cancel_task (activities vsphere_create_snapshot, "
              "vsphere_revert_snapshot, vsphere_cancel_task)"),
    Privilege("System.Anonymous",
              "SessionManager.Login and RetrieveServiceContent: runtime/vsphere.py VSphereSession, "
              "activities/vsphere/properties.py service_content", implicit=True),
    Privilege("System.View",
              "PropertyCollector CreatePropertyCollector, CreateFilter, WaitForUpdatesEx and "
              "DestroyPropertyCollector (activities/vsphere/tasks.py wait_for_task, activities/vsphere/change_feed.py),"
              " ViewManager.CreateContainerView on the root folder and DestroyView (change_feed.py, "
              "runtime/vsphere_inventory.py), SearchIndex.FindByInventoryPath and "
              "AuthorizationManager.HasPrivilegeOnEntities (runtime/vsphere_privileges.py)", implicit=True),
    Privilege("System.Read",
              "every property read (PropertyCollector RetrieveContents and WaitForUpdatesEx: "
              "activities/vsphere/properties.py retrieve): the VMs' snapshot, layoutEx, config.hardware.device, "
              "config.extraConfig, runtime.powerState and recentTask, the snapshots' config.extraConfig, the tasks' "
              "info; the change feed's snapshot of every VM under the root folder (activities/vsphere/change_feed.py)",
              implicit=True),
)
PRIVILEGE_IDS = tuple(p.id for p in REQUIRED)

# faults of a vCenter that cannot answer the question at all: asked again at the usual period only
UNSUPPORTED = (vmodl.fault.MethodNotFound, vmodl.fault.NotSupported, vmodl.fault.NotImplemented)


@dataclass(frozen=True)
class Answer:
    """What vCenter answered: the session's user, what it lacks where, and the paths vCenter did not find."""

    user: str
    missing: dict[str, tuple[str, ...]]  # ROOT or an inventory path -> the privileges not held there
    unseen: tuple[str, ...] = ()


def places(setting: str) -> tuple[str, ...]:
    """The inventory paths to check on (the setting's comma-separated list); none: the root folder."""
    return tuple(p for p in (part.strip() for part in setting.split(",")) if p and p != "/")


def decide(answer: Answer) -> Decision:
    problems = []
    lacking = [f"on {where}: {', '.join(privileges)}" for where, privileges in answer.missing.items() if privileges]
    if lacking:
        problems.append("lacks " + "; ".join(lacking))
    if answer.unseen:
        problems.append(f"cannot see {', '.join(answer.unseen)} (named in {SETTING}: no such inventory path, or "
                        f"nothing there it may read)")
    if not problems:
        return Decision(True)
    return Decision(False, reason=f"vCenter user {answer.user} {'; '.join(problems)} (the role: {DOC})")


def error_text(error: BaseException) -> str:
    """Why the check could not be made, for the warning: the error's type, and vSphere's words for it (or, not being
    a fault, its own text), e.g. `MethodNotFound: HasPrivilegeOnEntities`."""
    name = fault_name(error)
    if not isinstance(error, vmodl.MethodFault):
        return f"{name}: {error}"
    message = fault_message(error)
    return name if message == name else f"{name}: {message}"  # a fault without words is named once


def after_error(error: BaseException, previous: Decision | None) -> tuple[Decision, bool]:
    """The check could not be made: the previous decision stands; at start, act with a warning. And whether to
    check again within RETRY_SECONDS (not for a vCenter that does not support the check)."""
    soon = not isinstance(error, UNSUPPORTED)
    if previous is not None:
        return previous, soon
    return Decision(True, warning=f"acting without knowing whether the vCenter user holds the product's privileges: "
                                  f"they could not be checked ({error_text(error)}); the role: {DOC}"), soon


class VCenterPrivileges(Gate):
    """The worker's vCenter session holds every privilege of REQUIRED (the module's docstring has the table). The
    reads run in a thread (pyvmomi blocks), on the worker's one session."""

    log = log
    what = "the vCenter user's privileges"

    def __init__(self, session: VSphereSession, *, on: str = "", period: float, retry: float = RETRY_SECONDS):
        super().__init__(period, retry)
        self.session, self.paths = session, places(on)
        self.acting_line = "the vCenter user holds every privilege the product needs"

    def read(self) -> Answer:
        def ask(si: vim.ServiceInstance) -> Answer:
            content = si.RetrieveContent()
            index, authorization, sessions = content.searchIndex, content.authorizationManager, content.sessionManager
            assert index is not None and authorization is not None and sessions is not None  # vCenter's and ESXi's
            session = sessions.currentSession  # its key: the session to ask about; its user name: for the log
            if session is None:  # the session has ended: VSphereSession.run logs in again
                raise vim.fault.NotAuthenticated()
            where: list[tuple[str, vim.ManagedEntity]] = []
            unseen = []
            for path in self.paths:
                entity = index.FindByInventoryPath(path.lstrip("/"))
                if entity is None:
                    unseen.append(path)
                else:
                    where.append((path, entity))
            if not self.paths:
                where.append((ROOT, content.rootFolder))
            granted: dict[str, set[str]] = {}
            if where:
                for result in authorization.HasPrivilegeOnEntities(
                        entity=[entity for _, entity in where], sessionId=session.key,
                        privId=list(PRIVILEGE_IDS)) or []:
                    granted[result.entity._moId] = {a.privId for a in result.privAvailability or [] if a.isGranted}
            return Answer(session.userName,
                          {label: tuple(p for p in PRIVILEGE_IDS if p not in granted.get(entity._moId, set()))
                           for label, entity in where}, tuple(unseen))
        return self.session.run(ask)

    async def assess(self) -> tuple[Decision, bool]:
        try:
            answer = await asyncio.to_thread(self.read)
        except Exception as e:  # noqa: BLE001 - a check that cannot be made is an answer too (after_error)
            return after_error(e, self.decision)
        self.acting_line = (f"vCenter user {answer.user} holds every privilege the product needs on "
                            f"{', '.join(answer.missing) or ROOT}")
        return decide(answer), False
