"""What the worker and the bridge check before they act, at start and again periodically: each check is a gate,
and a process acts only while every one of its gates says so.

* runtime/coexistence.py: VM Operator's own VirtualMachineSnapshot controller is off (worker and bridge);
* runtime/namespace_check.py: the Temporal namespace has the product's search attributes (worker and bridge);
* runtime/vsphere_privileges.py: the vCenter user holds the product's privileges (worker).

While a gate says no, the worker does not poll its task queues and the bridge hands nothing to Temporal; /readyz
answers 503 with the first gate's reason, in the order above.

A gate (`Gate`) only says how to read and decide (`assess`); what they share is here: the check at start and every
`period` seconds (every `retry` seconds after a read that failed), one log line per change of the decision (the
reason as an error, a warning as a warning, else the gate's `acting_line`; a decision's `note()` at info whenever it
changes), and telling its `Gates` of every decision. `Gates` combines them, and wakes whoever waits for the process
to act or to stand aside (`until`).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

# a read that failed is tried again this soon, however long the period
RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Decision:
    act: bool
    reason: str | None = None    # why the process stands aside: /readyz and one log line
    warning: str | None = None   # acting, with something to say: one warning line

    def note(self) -> str | None:
        """More to say, at info, whenever it changes (e.g. what could not be read)."""
        return None


class Gate(ABC):
    """One gate's current decision, checked again every `period` seconds (`start`)."""

    log: logging.Logger
    what: str          # what the check tells, e.g. "whether VM Operator's own ... is on"
    acting_line: str   # logged at info when the gate lets the process act without a warning

    def __init__(self, period: float, retry: float = RETRY_SECONDS):
        self.period, self.retry = period, retry
        self.decision: Decision | None = None
        self.listeners: list[Callable[[], None]] = []  # called on every check's decision
        self._task: asyncio.Task[None] | None = None
        self._failed = False  # the last check had a read that failed: the next one comes sooner

    @abstractmethod
    async def assess(self) -> tuple[Decision, bool]:
        """Read and decide (`self.decision` is the previous decision): the decision, and whether a read failed."""

    @property
    def acting(self) -> bool:
        return self.decision is not None and self.decision.act

    def not_ready(self) -> str | None:
        """Why the process stands aside for this gate, or None when it may act."""
        if self.decision is None:
            return f"checking {self.what}"
        return self.decision.reason

    async def check(self) -> Decision:
        decision, failed = await self.assess()
        self._set(decision, failed)
        return decision

    def _set(self, decision: Decision, failed: bool) -> None:
        before, self.decision, self._failed = self.decision, decision, failed
        if before is None or (before.act, before.reason, before.warning) != (decision.act, decision.reason,
                                                                            decision.warning):
            if decision.reason:
                self.log.error("%s", decision.reason)
            elif decision.warning:
                self.log.warning("%s", decision.warning)
            else:
                self.log.info("%s", self.acting_line)
        if (note := decision.note()) is not None and (before is None or before.note() != note):
            self.log.info("%s", note)
        for listener in self.listeners:
            listener()

    def start(self) -> None:
        """Check again every period (sooner after a failed read) until `stop`."""
        self._task = asyncio.create_task(self._run(), name=f"check {self.what}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(self.period, self.retry) if self._failed else self.period)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the check itself must never stop
                self.log.exception("checking %s failed", self.what)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Gates:
    """Several gates as one: acting while every one acts; not ready with the first one's reason."""

    def __init__(self, *gates: Gate):
        self.gates = gates
        self._acting = {True: asyncio.Event(), False: asyncio.Event()}
        for gate in gates:
            gate.listeners.append(self._changed)
        self._changed()

    @property
    def acting(self) -> bool:
        return all(gate.acting for gate in self.gates)

    def not_ready(self) -> str | None:
        return next((why for gate in self.gates if (why := gate.not_ready()) is not None), None)

    def _changed(self) -> None:
        acting = self.acting
        self._acting[acting].set()
        self._acting[not acting].clear()

    async def check(self) -> None:
        """Every gate once, side by side (at start)."""
        await asyncio.gather(*(gate.check() for gate in self.gates))

    async def until(self, acting: bool) -> None:
        await self._acting[acting].wait()

    def start(self) -> None:
        for gate in self.gates:
            gate.start()

    async def stop(self) -> None:
        await asyncio.gather(*(gate.stop() for gate in self.gates))
