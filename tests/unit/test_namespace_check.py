"""The decision from the Temporal namespace's search attributes (runtime/namespace_check.py), and the gates it is one
of (runtime/gates.py): a process acts only while every gate does, /readyz gives the first reason. The e2e test
(tests/e2e/test_namespace_check.py) runs the worker on a fresh namespace of the real dev server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesResponse
from temporalio.service import RPCError, RPCStatusCode

from runtime import search_attributes
from runtime.gates import Decision, Gate, Gates
from runtime.namespace_check import WANTED, SearchAttributesCheck, add_commands, after_error, decide, type_name

KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
TEXT = IndexedValueType.INDEXED_VALUE_TYPE_TEXT
NAMES = [key.name for key in search_attributes.ALL]
ALL_KEYWORD = {name: KEYWORD for name in NAMES}


def rpc_error(status: RPCStatusCode, message: str = "no") -> RPCError:
    return RPCError(message, status, b"")


def test_the_wanted_ones_are_the_five_keywords_the_workflows_write():
    assert list(WANTED) == NAMES and len(NAMES) == 5 and set(WANTED.values()) == {KEYWORD}


def test_all_five_of_type_keyword_acts_whatever_else_is_there():
    assert decide("ns", ALL_KEYWORD) == Decision(True)
    assert decide("ns", {**ALL_KEYWORD, "CustomIntField": IndexedValueType.INDEXED_VALUE_TYPE_INT}) == Decision(True)


def test_missing_ones_stand_aside_naming_them_with_the_commands_that_add_them():
    decision = decide("team-a", {"CustomKeywordField": KEYWORD})
    assert not decision.act and decision.warning is None
    assert decision.reason.startswith(f"standing aside: Temporal namespace team-a lacks the search attributes "
                                      f"{', '.join(NAMES)}, which the product's workflows need. Add them (")
    for name in NAMES:  # one CLI call each (with several --name flags the CLI registers only the first), one tcld
        assert (f"temporal operator search-attribute create --namespace team-a --name {name} --type Keyword"
                in decision.reason)
        assert f'--search-attribute "{name}=Keyword"' in decision.reason
    assert decision.reason.count("tcld namespace search-attributes add --namespace team-a ") == 1


def test_one_of_another_type_says_it_cannot_change():
    decision = decide("ns", {**ALL_KEYWORD, "Snapshot": TEXT})
    assert not decision.act
    assert "Temporal namespace ns has Snapshot of type Text, not Keyword: a search attribute's type cannot change" \
        in decision.reason
    assert "temporal operator search-attribute remove --namespace ns --name Snapshot" in decision.reason
    assert "lacks" not in decision.reason


def test_type_names_as_the_cli_writes_them():
    assert [type_name(t) for t in (KEYWORD, TEXT, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
                                   IndexedValueType.INDEXED_VALUE_TYPE_DATETIME, 99)] == \
        ["Keyword", "Text", "KeywordList", "Datetime", "type 99"]
    assert add_commands("n", ["Snapshot"]) == (
        "self-hosted: temporal operator search-attribute create --namespace n --name Snapshot --type Keyword; "
        'Temporal Cloud: tcld namespace search-attributes add --namespace n --search-attribute "Snapshot=Keyword"')


@pytest.mark.parametrize("status", [RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED])
def test_listing_refused_acts_with_a_warning_that_nothing_was_checked(status):
    decision, soon = after_error("ns", rpc_error(status, "Request unauthorized."), None)
    assert decision.act and decision.reason is None and not soon
    assert decision.warning.startswith("acting without knowing whether Temporal namespace ns has the search "
                                       "attributes the product's workflows need (KubernetesNamespace, ")
    assert f"listing them was refused ({status.name}: Request unauthorized.)" in decision.warning


def test_no_such_namespace_stands_aside_naming_it():
    decision, _ = after_error("gone", rpc_error(RPCStatusCode.NOT_FOUND, "Namespace gone is not found."), None)
    assert not decision.act and decision.reason.startswith("standing aside: Temporal has no namespace gone")


@pytest.mark.parametrize("error", [rpc_error(RPCStatusCode.UNAVAILABLE, "connection refused"),
                                   rpc_error(RPCStatusCode.INTERNAL), TimeoutError("slow")])
def test_no_answer_keeps_the_previous_decision_and_stands_aside_at_start(error):
    at_start, soon = after_error("ns", error, None)
    assert not at_start.act and soon
    assert at_start.reason.startswith("standing aside until it can tell whether Temporal namespace ns has the "
                                      "product's search attributes (")
    missing = decide("ns", {})
    assert after_error("ns", error, Decision(True)) == (Decision(True), True)
    assert after_error("ns", error, missing) == (missing, True)


class FakeOperatorService:
    def __init__(self):
        self.answer: dict[str, int] | Exception = {}
        self.requests = []

    async def list_search_attributes(self, request, *, retry, timeout):
        self.requests.append((request.namespace, retry))
        if isinstance(self.answer, Exception):
            raise self.answer
        return ListSearchAttributesResponse(custom_attributes=self.answer)


class FakeClient:
    namespace = "team-a"

    def __init__(self):
        self.operator_service = FakeOperatorService()


async def test_the_check_asks_the_clients_namespace_once_per_period_and_logs_each_change_once(caplog):
    client = FakeClient()
    gate = SearchAttributesCheck(client, period=0.05)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, "vmsnap.namespace_check")
    await gate.check()
    assert not gate.acting and "lacks the search attributes" in gate.not_ready()
    assert client.operator_service.requests == [("team-a", False)]  # no SDK retries: the gate asks again itself
    gate.start()
    try:
        await asyncio.sleep(0.2)
        client.operator_service.answer = dict(ALL_KEYWORD)
        await asyncio.wait_for(Gates(gate).until(acting=True), 5)
    finally:
        await gate.stop()
    lines = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records if r.name == "vmsnap.namespace_check"]
    assert lines == [("ERROR", "standing aside"),
                     ("INFO", "Temporal namespace team-a has the product's search attributes")]


# --- the gates together ------------------------------------------------------------------------------------------

class Fixed(Gate):
    """A gate whose next decision the test sets."""

    log = logging.getLogger("vmsnap.test_gate")
    what = "the test's gate"
    acting_line = "the test's gate acts"

    def __init__(self, decision: Decision):
        super().__init__(period=0.02)
        self.next = decision

    async def assess(self) -> tuple[Decision, bool]:
        return self.next, False


async def test_the_process_acts_only_while_every_gate_does_and_readyz_gives_the_first_reason():
    first, second = Fixed(Decision(True)), Fixed(Decision(False, reason="second says no"))
    gates = Gates(first, second)
    assert not gates.acting and gates.not_ready() == "checking the test's gate"  # nothing checked yet
    await gates.check()
    assert not gates.acting and gates.not_ready() == "second says no"
    gates.start()
    try:
        first.next = Decision(False, reason="first says no")
        await asyncio.sleep(0.1)
        assert gates.not_ready() == "first says no"  # the first gate's reason, in the order given
        first.next = second.next = Decision(True, warning="acting anyway")
        await asyncio.wait_for(gates.until(acting=True), 5)
        assert gates.not_ready() is None
        second.next = Decision(False, reason="second again")
        await asyncio.wait_for(gates.until(acting=False), 5)  # one gate is enough to stand aside
        assert gates.not_ready() == "second again"
    finally:
        await gates.stop()


async def test_a_gate_whose_check_raises_keeps_checking(caplog):
    gate = Fixed(Decision(True))
    await gate.check()
    calls = 0

    async def broken() -> tuple[Decision, bool]:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug")
    gate.assess = broken  # type: ignore[method-assign]
    gate.start()
    try:
        await asyncio.sleep(0.15)
    finally:
        await gate.stop()
    assert calls >= 2 and gate.acting
    assert "checking the test's gate failed" in caplog.text
