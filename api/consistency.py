"""What a snapshot captured, from the snapshot vCenter made (its tree node) and the VM's power state, compared with
what the spec asked for: the Consistency condition's reason, status and message, and the Event that explains a
difference. Pure, so the create workflow decides it and the unit tests cover every case."""

from __future__ import annotations

from dataclasses import dataclass

from . import messages
from .names import ConsistencyReason, PowerState


@dataclass(frozen=True)
class Consistency:
    reason: ConsistencyReason
    # False: less than the spec asked for (quiescing was asked for and a running guest was not quiesced)
    as_asked: bool
    message: str
    # why the snapshot differs from the spec, for an Event (None: it is as asked); a Warning when less than asked
    difference: str | None = None

    @property
    def warning(self) -> bool:
        return not self.as_asked


def consistency(*, quiesced: bool, power_state: str, vm_power_state: str | None, asked_quiesce: bool,
                asked_memory: bool, quiesce_failure: str | None = None) -> Consistency:
    """`quiesced` and `power_state` are the tree node's (its state is the VM's when memory was captured, else
    PoweredOff); `vm_power_state` the VM's, read with the tree right after the task (None: not read);
    `quiesce_failure` why a quiesced attempt failed before this crash-consistent one (the fallback)."""
    memory = power_state != PowerState.POWERED_OFF
    powered_off = not quiesced and not memory and vm_power_state == PowerState.POWERED_OFF
    if quiesced:
        reason = (ConsistencyReason.APPLICATION_CONSISTENT_WITH_MEMORY if memory
                  else ConsistencyReason.APPLICATION_CONSISTENT)
        message = messages.CONSISTENCY_QUIESCED
    elif powered_off:
        reason, message = ConsistencyReason.POWERED_OFF, messages.CONSISTENCY_POWERED_OFF
    else:
        reason = ConsistencyReason.CRASH_CONSISTENT_WITH_MEMORY if memory else ConsistencyReason.CRASH_CONSISTENT
        message = messages.CONSISTENCY_NOT_QUIESCED
    if memory:
        message += messages.CONSISTENCY_WITH_MEMORY

    differences = []
    if asked_quiesce and not quiesced:
        if quiesce_failure is not None:
            differences.append(quiesce_failure)
        elif powered_off:
            differences.append(messages.QUIESCE_SKIPPED_POWERED_OFF)
        else:
            differences.append(messages.QUIESCE_NOT_DONE)
    if asked_memory and powered_off:
        differences.append(messages.MEMORY_SKIPPED_POWERED_OFF)
    difference = "; ".join(differences) or None
    as_asked = not (asked_quiesce and not quiesced and not powered_off)
    if difference and not powered_off:
        message = f"{message}; {difference}"
    elif difference:
        message = difference  # it says the VM was powered off already
    return Consistency(reason, as_asked, message, difference)
