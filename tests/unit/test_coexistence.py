"""The decision to act or stand aside for VM Operator's own VirtualMachineSnapshot controller (runtime/coexistence.py),
from what the two reads found, with and without the override. tests/e2e/test_vm_operator_coexistence.py runs the
processes against a real apiserver serving VM Operator's own Capabilities CRD."""

from __future__ import annotations

import asyncio
import logging

import pytest
from kubernetes.client.rest import ApiException

from api.names import VM_OPERATOR_SNAPSHOT_CAPABILITY as KEY
from runtime.coexistence import (
    ALLOW_SETTING,
    CAPABILITIES_SOURCE,
    CONFIG_MAP_SOURCE,
    RBAC_FILE,
    Coexistence,
    Decision,
    Finding,
    Seen,
    decide,
    from_capabilities,
    from_config_map,
    from_error,
)
from runtime.gates import Gates
from runtime.settings import Settings


def capabilities(activated: bool | None, *, spec_enabled: bool = True) -> dict:
    """The object as the Supervisor writes it: the build-time flag in spec, the effective one in status."""
    obj: dict = {"metadata": {"name": "supervisor-capabilities"},
                 "spec": {"supervisor": [{"name": KEY, "type": "Supervisor", "enabled": spec_enabled}]}}
    if activated is not None:
        obj["status"] = {"supervisor": {KEY: {"activated": activated}, "supports_VM_service_VM_groups":
                                        {"activated": True}}}
    return obj


def config_map(value: str | None) -> dict:
    return {"metadata": {"name": "wcp-cluster-capabilities"}, "data": {} if value is None else {KEY: value}}


def error(status: int) -> ApiException:
    return ApiException(status=status, reason={403: "Forbidden", 500: "Internal Server Error"}.get(status, "?"))


@pytest.mark.parametrize(("obj", "seen"), [
    (capabilities(True), Seen.ON),
    (capabilities(False), Seen.OFF),
    (capabilities(None), Seen.OFF),                      # enabled in spec, not activated (no status yet): off
    (capabilities(None, spec_enabled=True) | {"status": {"supervisor": {}}}, Seen.OFF),
    ({"metadata": {}, "spec": {}}, Seen.OFF),
    (None, Seen.ABSENT),
])
def test_the_capabilities_object_is_read_as_vm_operator_reads_it_from_the_status(obj, seen):
    finding = from_capabilities(obj)
    assert finding.seen is seen and finding.source == CAPABILITIES_SOURCE


@pytest.mark.parametrize(("value", "seen"), [
    ("true", Seen.ON), ("True", Seen.ON), ("TRUE", Seen.ON), ("1", Seen.ON), ("t", Seen.ON),  # Go's ParseBool
    ("false", Seen.OFF), ("yes", Seen.OFF), ("", Seen.OFF), (None, Seen.OFF),
])
def test_the_older_config_map_is_read_as_go_parses_a_bool(value, seen):
    assert from_config_map(config_map(value)).seen is seen
    assert from_config_map(None).seen is Seen.ABSENT


def test_errors_are_forbidden_or_failed():
    assert from_error(CONFIG_MAP_SOURCE, error(403)).seen is Seen.FORBIDDEN
    assert from_error(CONFIG_MAP_SOURCE, error(500)).seen is Seen.FAILED
    assert from_error(CONFIG_MAP_SOURCE, TimeoutError("read timed out")).seen is Seen.FAILED


def test_nothing_found_acts_and_says_what_could_not_be_read():
    decision = decide([from_capabilities(None), from_config_map(None)], allow=False)
    assert decision.act and decision.reason is None and decision.warning is None
    assert [line.split(":")[0] for line in decision.unread] == [CAPABILITIES_SOURCE, CONFIG_MAP_SOURCE]
    assert decide([from_capabilities(capabilities(False)), from_config_map(config_map("false"))], False) == \
        Decision(True)


@pytest.mark.parametrize("findings", [
    [from_capabilities(capabilities(True)), from_config_map(None)],
    [from_capabilities(None), from_config_map(config_map("true"))],
    [from_capabilities(capabilities(False)), from_config_map(config_map("true"))],  # either is enough
])
def test_the_capability_on_in_either_place_stands_aside_saying_what_to_switch_off(findings):
    decision = decide(findings, allow=False)
    assert not decision.act and decision.warning is None
    on = next(f for f in findings if f.seen is Seen.ON)
    assert str(on) in decision.reason
    assert f"Switch off the Supervisor capability {KEY}" in decision.reason and ALLOW_SETTING in decision.reason


def test_the_override_acts_with_a_warning():
    decision = decide([from_capabilities(capabilities(True)), from_config_map(None)], allow=True)
    assert decision.act and decision.reason is None
    assert decision.warning.startswith(f"{ALLOW_SETTING}=true: acting although") and "activated is true" in \
        decision.warning
    assert decide([from_capabilities(None), from_config_map(None)], allow=True) == \
        decide([from_capabilities(None), from_config_map(None)], allow=False)  # nothing found: no warning


def test_forbidden_stands_aside_naming_the_permission_unless_overridden():
    findings = [from_capabilities(None), from_error(CONFIG_MAP_SOURCE, error(403))]
    decision = decide(findings, allow=False)
    assert not decision.act and "cannot tell" in decision.reason and RBAC_FILE in decision.reason
    assert f"{CONFIG_MAP_SOURCE}: reading it is forbidden (403)" in decision.reason
    overridden = decide(findings, allow=True)
    assert overridden.act and "without knowing" in overridden.warning


def test_a_failed_read_keeps_the_previous_decision_and_stands_aside_at_start():
    failed = [from_error(CAPABILITIES_SOURCE, error(500)), from_config_map(None)]
    at_start = decide(failed, allow=False)
    assert not at_start.act and at_start.reason.startswith("standing aside until it can tell")
    acting, aside = Decision(True), decide([from_capabilities(capabilities(True))], allow=False)
    assert decide(failed, False, previous=acting).act
    assert decide(failed, False, previous=aside).reason == aside.reason
    assert decide(failed, allow=True).act


def test_the_capability_on_wins_over_a_failed_or_forbidden_read():
    decision = decide([from_capabilities(capabilities(True)), from_error(CONFIG_MAP_SOURCE, error(403))], False)
    assert not decision.act and "is on" in decision.reason


class FakeKube:
    def __init__(self):
        self.capabilities: dict | None | Exception = None
        self.config_map: dict | None | Exception = None

    def _answer(self, what):
        if isinstance(what, Exception):
            raise what
        return what

    def get_cluster_object(self, plural, name, *, group, version, timeout=None):
        assert (group, version, plural, name) == ("iaas.vmware.com", "v1alpha1", "capabilities",
                                                  "supervisor-capabilities")
        return self._answer(self.capabilities)

    def get_config_map(self, namespace, name, *, timeout=None):
        assert (namespace, name) == ("kube-system", "wcp-cluster-capabilities")
        return self._answer(self.config_map)


async def test_the_periodic_check_flips_the_decision_and_logs_each_change_once(caplog):
    kube = FakeKube()
    coexistence = Coexistence(kube, allow=False, period=0.05)  # type: ignore[arg-type]
    waiting = Gates(coexistence)
    assert not coexistence.acting and "checking" in coexistence.not_ready()
    caplog.set_level(logging.INFO, "vmsnap.coexistence")
    await coexistence.check()
    assert coexistence.acting and coexistence.not_ready() is None
    coexistence.start()
    try:
        kube.capabilities = capabilities(True)
        await asyncio.wait_for(waiting.until(acting=False), 5)
        assert "is on" in coexistence.not_ready()
        await asyncio.sleep(0.2)  # checked again, same answer: no new line
        kube.capabilities = capabilities(False)
        await asyncio.wait_for(waiting.until(acting=True), 5)
    finally:
        await coexistence.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "vmsnap.coexistence"]
    assert sum("is on" in line for line in lines) == 1
    assert [r.levelname for r in caplog.records if "is on" in r.getMessage()] == ["ERROR"]
    assert sum(line.startswith("could not read") for line in lines) == 2  # both absent; then the ConfigMap only


def test_the_setting(monkeypatch):
    monkeypatch.delenv(ALLOW_SETTING, raising=False)
    assert Settings().allow_beside_vm_operator_snapshots is False
    monkeypatch.setenv(ALLOW_SETTING, "true")
    assert Settings().allow_beside_vm_operator_snapshots is True


def test_a_finding_reads_as_one_line():
    assert str(Finding("X", Seen.ON, "y")) == "X: y"
