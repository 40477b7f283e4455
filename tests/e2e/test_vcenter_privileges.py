"""The worker's start-up check of its vCenter privileges (runtime/vsphere_privileges.py), with the real worker process
on the test bed's simulator.

The simulator answers AuthorizationManager.HasPrivilegeOnEntities from the roles and permissions set on it, as
vCenter does (testbed/go/vcsim/authz.go; upstream vcsim says "granted" to everything). Each test makes a user of its
own (any user name logs in to the simulator), a role of its own through AuthorizationManager.AddAuthorizationRole,
and grants it with SetEntityPermissions; the worker logs in as that user. What this proves: the worker asks about its
own session, names what vCenter says is missing, stands aside (no polling, /readyz 503) and resumes once the role is
complete, without a restart; and a grant on a folder only is checked there when VMSNAP_VCENTER_PRIVILEGES_ON names
it. What it cannot prove: that vCenter refuses the calls themselves without these privileges (the simulator does not
enforce permissions on any call), nor what a real vCenter answers for groups (the simulator has no group membership).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from pyVmomi import vim

from runtime.vsphere_privileges import DOC, REQUIRED, ROOT, SETTING
from testbed.product import Product
from testbed.vms import eventually
from tests.e2e.test_vm_operator_coexistence import becomes, log_of
from tests.fixtures.health import watch_logs

EXPLICIT = [p.id for p in REQUIRED if not p.implicit]
WITHHELD = ["VirtualMachine.State.CreateSnapshot", "Global.CancelTask"]


@dataclass
class Grant:
    """A user of the simulator with a role of its own granted on one entity (propagating)."""

    vsphere: vim.ServiceInstance
    user: str
    role_id: int
    entity: vim.ManagedEntity

    @property
    def manager(self) -> vim.AuthorizationManager:
        return self.vsphere.content.authorizationManager

    def set_privileges(self, privileges: list[str]) -> None:
        role = next(r for r in self.manager.roleList if r.roleId == self.role_id)
        self.manager.UpdateAuthorizationRole(roleId=self.role_id, newName=role.name, privIds=privileges)


@pytest.fixture
def grant(vsphere, vcsim) -> Iterator[Callable[..., Grant]]:
    """grant(privileges, on=entity) -> Grant: a new user and role; both removed after the test."""
    if not vcsim.simulated:
        pytest.skip("needs the simulator, where any user name logs in and roles are made freely")
    manager = vsphere.content.authorizationManager
    made: list[Grant] = []

    def make(privileges: list[str], on: vim.ManagedEntity | None = None) -> Grant:
        entity = on or vsphere.content.rootFolder
        name = f"vmsnap-test-{uuid.uuid4().hex[:8]}"
        manager.AddAuthorizationRole(name=name, privIds=privileges)
        role_id = next(r.roleId for r in manager.roleList if r.name == name)  # vcsim's answer is always 0
        # vcsim's SetEntityPermissions replaces the entity's permissions (vCenter's adds): keep the others
        others = list(manager.RetrieveEntityPermissions(entity=entity, inherited=False) or [])
        user = f"{name}@vsphere.local"
        manager.SetEntityPermissions(entity=entity, permission=others + [vim.AuthorizationManager.Permission(
            principal=user, group=False, roleId=role_id, propagate=True)])
        made.append(Grant(vsphere, user, role_id, entity))
        return made[-1]

    yield make
    for g in made:
        manager.RemoveEntityPermission(entity=g.entity, user=g.user, isGroup=False)
        manager.RemoveAuthorizationRole(roleId=g.role_id, failIfUsed=False)


@pytest.fixture
def product_here(product_env: dict[str, str], tmp_path) -> Iterator[Product]:
    """Workers that check their privileges every second."""
    running = Product(tmp_path, {**product_env, "VMSNAP_PREREQUISITES_CHECK_SECONDS": "1"})
    watch_logs(lambda: {p.part: p.log for p in running.processes})
    yield running
    running.stop()


def url_as(url: str, user: str) -> str:
    """VSPHERE_URL with another user name (the simulator takes any password)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:secret@{parts.hostname}:{parts.port}"))


@pytest.mark.timeout(240)
def test_a_user_lacking_privileges_stands_aside_until_the_role_is_complete(grant, product_here, vcsim):
    alice = grant([p for p in EXPLICIT if p not in WITHHELD])
    worker = product_here.start_worker(VSPHERE_URL=url_as(vcsim.url, alice.user))
    reason = (f"vCenter user {alice.user} lacks on the root folder: {', '.join(WITHHELD)} (the role: {DOC})")
    assert becomes(worker, 503) == reason
    text = log_of(worker)
    assert text.count(reason) == 1  # one line, however often it is checked
    assert "not polling task queue" in text and "worker polling task queue" not in text

    alice.set_privileges(EXPLICIT)  # granting the role: the next check lets it act, no restart
    assert becomes(worker, 200) == "ok"
    eventually(lambda: "worker polling task queue" in log_of(worker), 30, "polling")
    assert f"vCenter user {alice.user} holds every privilege the product needs on {ROOT}" in log_of(worker)

    alice.set_privileges([p for p in EXPLICIT if p != "VirtualMachine.Config.AdvancedConfig"])  # taken away again
    assert becomes(worker, 503) == (f"vCenter user {alice.user} lacks on the root folder: "
                                    f"VirtualMachine.Config.AdvancedConfig (the role: {DOC})")
    eventually(lambda: "standing aside: draining" in log_of(worker), 60, "the drain")


@pytest.mark.timeout(240)
def test_a_role_granted_on_a_folder_only_is_checked_where_the_setting_says(grant, product_here, vcsim, vsphere):
    folder_path = "/DC0/vm"
    folder = vsphere.content.searchIndex.FindByInventoryPath(folder_path.lstrip("/"))
    bob = grant(EXPLICIT, on=folder)
    as_bob = url_as(vcsim.url, bob.user)

    on_root = product_here.start_worker(VSPHERE_URL=as_bob)  # the default: asked about the root folder
    reason = becomes(on_root, 503)
    assert reason.startswith(f"vCenter user {bob.user} lacks on the root folder: {', '.join(EXPLICIT)}")

    on_folder = product_here.start_worker(VSPHERE_URL=as_bob, **{SETTING: f"{folder_path},/DC0/vm/no-such-folder"})
    assert becomes(on_folder, 503) == (f"vCenter user {bob.user} cannot see /DC0/vm/no-such-folder (named in "
                                       f"{SETTING}: no such inventory path, or nothing there it may read) (the role: "
                                       f"{DOC})")
    on_folder.stop()
    on_folder = product_here.start_worker(VSPHERE_URL=as_bob, **{SETTING: folder_path})
    assert becomes(on_folder, 200) == "ok"
    eventually(lambda: "worker polling task queue" in log_of(on_folder), 30, "polling")
