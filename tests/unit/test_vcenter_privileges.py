"""The vCenter role as one list (runtime/vsphere_privileges.py REQUIRED, deploy/vcenter/role.yaml and the commands of
docs/vcenter-privileges.md), and the worker's decision from what vCenter answers about its session's privileges.
tests/e2e/test_vcenter_privileges.py runs the worker against the test bed's simulator with a user lacking some."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
import yaml
from pyVmomi import vim, vmodl

from runtime.gates import Decision, Gates
from runtime.settings import Settings
from runtime.vsphere_privileges import (
    DOC,
    PRIVILEGE_IDS,
    REQUIRED,
    ROOT,
    SETTING,
    Answer,
    VCenterPrivileges,
    after_error,
    decide,
    places,
)

REPO = Path(__file__).resolve().parents[2]
ROLE = yaml.safe_load((REPO / "deploy" / "vcenter" / "role.yaml").read_text())
DOCS = (REPO / DOC).read_text()
EXPLICIT = [p.id for p in REQUIRED if not p.implicit]


def test_role_yaml_is_the_list_the_worker_checks():
    assert [(p["id"], p["needed_by"], p.get("implicit", False)) for p in ROLE["privileges"]] == \
        [(p.id, p.needed_by, p.implicit) for p in REQUIRED]
    assert set(ROLE["privileges"][0]) <= {"id", "needed_by", "implicit"}
    assert len(set(PRIVILEGE_IDS)) == len(PRIVILEGE_IDS)


def test_the_implicit_ones_are_those_vcenter_puts_in_every_role():
    assert {p.id for p in REQUIRED if p.implicit} == {"System.Anonymous", "System.View", "System.Read"}


def test_the_docs_commands_create_the_role_with_exactly_these_privileges():
    (govc,) = re.findall(r"^govc role\.create (\S+) (.+)$", DOCS, re.M)
    assert govc[0] == ROLE["name"] and govc[1].split() == EXPLICIT
    (powercli,) = re.findall(r"^New-VIRole -Name (\S+) -Privilege \(Get-VIPrivilege -Id (\S+)\)$", DOCS, re.M)
    assert powercli[0] == ROLE["name"] and powercli[1].split(",") == EXPLICIT
    for privilege in PRIVILEGE_IDS:  # the table names each one
        assert f"`{privilege}`" in DOCS


def test_every_privilege_says_where_the_code_needs_it():
    for p in REQUIRED:
        assert re.search(r"\b(activities|runtime|worker)/[\w/]+\.py\b", p.needed_by), p.id
        for path in re.findall(r"\b((?:activities|runtime|worker)/[\w/]+\.py)\b", p.needed_by):
            assert (REPO / path).is_file(), path


def test_everything_held_acts():
    assert decide(Answer("alice@vsphere.local", {ROOT: ()})) == Decision(True)


def test_missing_privileges_stand_aside_naming_them_and_the_role():
    decision = decide(Answer("alice@vsphere.local", {ROOT: ("VirtualMachine.State.CreateSnapshot",
                                                             "Global.CancelTask")}))
    assert not decision.act and decision.warning is None
    assert decision.reason == ("vCenter user alice@vsphere.local lacks on the root folder: "
                               "VirtualMachine.State.CreateSnapshot, Global.CancelTask (the role: "
                               "docs/vcenter-privileges.md)")


def test_each_path_says_what_it_lacks_and_a_path_vcenter_does_not_show_is_named():
    decision = decide(Answer("svc", {"/DC0/vm/a": ("Global.CancelTask",), "/DC0/vm/b": ()}, unseen=("/DC0/vm/c",)))
    assert decision.reason == (f"vCenter user svc lacks on /DC0/vm/a: Global.CancelTask; cannot see /DC0/vm/c "
                               f"(named in {SETTING}: no such inventory path, or nothing there it may read) "
                               f"(the role: {DOC})")
    assert decide(Answer("svc", {"/DC0/vm/a": (), "/DC0/vm/b": ()})).act


def test_the_places_setting():
    assert places("") == places("/") == places(" , ") == ()
    assert places("/DC0/vm/a, /DC0/vm/b ,") == ("/DC0/vm/a", "/DC0/vm/b")


@pytest.mark.parametrize("error", [vmodl.fault.MethodNotFound(msg="no such method"), vmodl.fault.NotSupported(),
                                   vmodl.fault.NotImplemented()])
def test_a_vcenter_that_cannot_answer_acts_with_a_warning_and_is_not_asked_sooner(error):
    decision, soon = after_error(error, None)
    assert decision.act and decision.reason is None and not soon
    assert decision.warning.startswith("acting without knowing whether the vCenter user holds the product's "
                                       "privileges: they could not be checked (")
    assert type(error).__name__.split(".")[-1] in decision.warning and DOC in decision.warning


@pytest.mark.parametrize("error", [vim.fault.NoPermission(privilegeId="System.View"), ConnectionRefusedError(111, "x"),
                                   vim.fault.InvalidLogin()])
def test_a_check_that_failed_keeps_the_previous_decision_and_is_asked_again_soon(error):
    at_start, soon = after_error(error, None)
    assert at_start.act and at_start.warning and soon
    aside = decide(Answer("alice", {ROOT: ("Global.CancelTask",)}))
    assert after_error(error, aside) == (aside, True)
    assert after_error(error, Decision(True)) == (Decision(True), True)


def test_the_settings(monkeypatch):
    for name in ("VMSNAP_PREREQUISITES_CHECK_SECONDS", SETTING):
        monkeypatch.delenv(name, raising=False)
    assert Settings().prerequisites_check_seconds == 60.0 and Settings().vcenter_privileges_on == ""
    monkeypatch.setenv(SETTING, "/DC0/vm/a,/DC0/vm/b")
    monkeypatch.setenv("VMSNAP_PREREQUISITES_CHECK_SECONDS", "5")
    assert Settings().vcenter_privileges_on == "/DC0/vm/a,/DC0/vm/b" and Settings().prerequisites_check_seconds == 5


class Answers:
    """Stands in for VCenterPrivileges.read: the next answer, or the error to raise."""

    def __init__(self, answer: Answer | Exception):
        self.answer = answer

    def __call__(self) -> Answer:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_granting_the_role_resumes_at_the_next_check_and_each_change_is_logged_once(caplog):
    gate = VCenterPrivileges(None, period=0.05)  # type: ignore[arg-type]
    answers = Answers(Answer("alice", {ROOT: ("Global.CancelTask",)}))
    gate.read = answers  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, "vmsnap.vcenter_privileges")
    assert gate.not_ready() == "checking the vCenter user's privileges" and not gate.acting
    await gate.check()
    assert not gate.acting and gate.not_ready().startswith("vCenter user alice lacks on the root folder")
    gate.start()
    try:
        await asyncio.sleep(0.2)  # checked again, same answer: no new line
        answers.answer = Answer("alice", {ROOT: ()})
        await asyncio.wait_for(Gates(gate).until(acting=True), 5)
        assert gate.not_ready() is None
        answers.answer = OSError("vCenter unreachable")  # the previous decision stands, nothing logged
        await asyncio.sleep(0.2)
        assert gate.acting
    finally:
        await gate.stop()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "vmsnap.vcenter_privileges"]
    assert lines == [("ERROR", f"vCenter user alice lacks on the root folder: Global.CancelTask (the role: {DOC})"),
                     ("INFO", "vCenter user alice holds every privilege the product needs on the root folder")]


async def test_a_check_that_cannot_be_made_at_start_acts_with_one_warning(caplog):
    gate = VCenterPrivileges(None, period=0.05)  # type: ignore[arg-type]
    gate.read = Answers(vmodl.fault.MethodNotFound(msg="HasPrivilegeOnEntities"))  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, "vmsnap.vcenter_privileges")
    await gate.check()
    gate.start()
    try:
        await asyncio.sleep(0.2)
    finally:
        await gate.stop()
    assert gate.acting and gate.not_ready() is None
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "vmsnap.vcenter_privileges"]
    assert len(lines) == 1 and lines[0][0] == "WARNING" and "MethodNotFound: HasPrivilegeOnEntities" in lines[0][1]
