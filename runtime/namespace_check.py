"""The Temporal namespace's search attributes, checked before the processes act (one of their gates:
runtime/gates.py).

The product's workflows are started with, and upsert, five custom Keyword search attributes
(runtime/search_attributes.py `ALL`). The product creates nothing in Temporal: the attributes are created once per
namespace, with `temporal operator search-attribute create` on a self-hosted Temporal, with `tcld namespace
search-attributes add` on Temporal Cloud. Without one, the bridge's workflow starts fail (INVALID_ARGUMENT) and so do
the workflows' upserts. So the worker and the bridge list the namespace's search attributes (OperatorService
ListSearchAttributes) at start and every `VMSNAP_PREREQUISITES_CHECK_SECONDS`. What they find, and what they do
(`decide`, `after_error`):

* all five, of type Keyword: act.
* one missing, or of another type: stand aside until they are there. Not ready, and one log line naming them and
  the commands that add them; the worker does not poll its task queues and the bridge hands nothing to Temporal
  (its webhook keeps serving, with its usual rules: the snapshots made meanwhile are handed over once it acts).
* listing refused (PERMISSION_DENIED, UNIMPLEMENTED: e.g. a Temporal Cloud API key whose role may not read the
  namespace's settings): act, with one warning that they were not checked.
* no such namespace (NOT_FOUND): stand aside, naming it.
* no answer (Temporal unreachable, another error): the previous decision stands (at start, stand aside until it
  answers); asked again within RETRY_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, RPCStatusCode

from runtime import search_attributes
from runtime.gates import RETRY_SECONDS, Decision, Gate
from runtime.temporal import outage_text

log = logging.getLogger("vmsnap.namespace_check")

LIST_TIMEOUT = timedelta(seconds=10)
# what Temporal may answer a client that may not list them
REFUSED = frozenset({RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED})
# name -> the type the product's workflows give it
WANTED: dict[str, int] = {key.name: int(key.indexed_value_type) for key in search_attributes.ALL}


def type_name(indexed_value_type: int) -> str:
    """Temporal's name of a search attribute type, as its CLI writes it: Keyword, Text, KeywordList..."""
    try:
        name = SearchAttributeIndexedValueType(indexed_value_type).name
    except ValueError:
        return f"type {indexed_value_type}"
    return "".join(part.capitalize() for part in name.split("_"))


def add_commands(namespace: str, names: list[str]) -> str:
    """The commands that add these attributes: one CLI call per attribute (with several --name flags, the CLI
    registers only the first), or one tcld call."""
    cli = "; ".join(f"temporal operator search-attribute create --namespace {namespace} --name {name} "
                    f"--type {type_name(WANTED[name])}" for name in names)
    cloud = " ".join(f'--search-attribute "{name}={type_name(WANTED[name])}"' for name in names)
    return f"self-hosted: {cli}; Temporal Cloud: tcld namespace search-attributes add --namespace {namespace} {cloud}"


def decide(namespace: str, custom: Mapping[str, int]) -> Decision:
    """From the namespace's custom search attributes (name -> IndexedValueType)."""
    missing = [name for name in WANTED if name not in custom]
    wrong = [name for name in WANTED if name in custom and custom[name] != WANTED[name]]
    if not missing and not wrong:
        return Decision(True)
    problems = []
    if missing:
        problems.append(f"lacks the search attributes {', '.join(missing)}, which the product's workflows need. Add "
                        f"{'it' if len(missing) == 1 else 'them'} ({add_commands(namespace, missing)})")
    if wrong:
        problems.append("has " + ", ".join(f"{name} of type {type_name(custom[name])}, not {type_name(WANTED[name])}"
                                           for name in wrong) +
                        ": a search attribute's type cannot change. Remove it (self-hosted: " +
                        "; ".join(f"temporal operator search-attribute remove --namespace {namespace} --name {name}"
                                  for name in wrong) +
                        "; Temporal Cloud, where it cannot be removed: rename it out of the way with tcld namespace "
                        "search-attributes rename) and add it again (" + add_commands(namespace, wrong) + ")")
    return Decision(False, reason=f"standing aside: Temporal namespace {namespace} " + "; it ".join(problems))


def after_error(namespace: str, error: BaseException, previous: Decision | None) -> tuple[Decision, bool]:
    """Listing them failed: the decision, and whether the failure is worth asking again soon."""
    if isinstance(error, RPCError) and error.status in REFUSED:
        return Decision(True, warning=f"acting without knowing whether Temporal namespace {namespace} has the "
                                      f"search attributes the product's workflows need ({', '.join(WANTED)}): "
                                      f"listing them was refused ({outage_text(error)})"), False
    if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
        return Decision(False, reason=f"standing aside: Temporal has no namespace {namespace} "
                                      f"({outage_text(error)})"), False
    if previous is not None:
        return previous, True
    return Decision(False, reason=f"standing aside until it can tell whether Temporal namespace {namespace} has the "
                                  f"product's search attributes ({outage_text(error)}); trying again every "
                                  f"{RETRY_SECONDS:.0f} s"), True


class SearchAttributesCheck(Gate):
    """The client's namespace has every attribute of search_attributes.ALL, of its type (the module's docstring
    has the table)."""

    log = log
    what = "the Temporal namespace's search attributes"

    def __init__(self, client: Client, *, period: float, retry: float = RETRY_SECONDS):
        super().__init__(period, retry)
        self.client = client
        self.acting_line = f"Temporal namespace {client.namespace} has the product's search attributes"

    async def assess(self) -> tuple[Decision, bool]:
        namespace = self.client.namespace
        try:
            listed = await self.client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace), retry=False, timeout=LIST_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - a list that failed is an answer too (after_error)
            return after_error(namespace, e, self.decision)
        return decide(namespace, dict(listed.custom_attributes)), False
