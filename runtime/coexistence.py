"""Standing aside for VM Operator's own VirtualMachineSnapshot controller (one of the process's gates:
runtime/gates.py).

On a Supervisor, VM Operator has a snapshot controller of its own, turned on by the Supervisor capability
supports_VM_service_VM_snapshots. It acts on the same VirtualMachineSnapshot objects and adds the same finalizer:
with both controllers acting, every snapshot would be taken twice in vSphere. So the worker and the bridge read the
capability where VM Operator reads it (its pkg/config/capabilities), at start and every
`VMSNAP_VM_OPERATOR_CHECK_SECONDS` (a Supervisor upgrade can turn it on):

* the cluster-scoped Capabilities object `supervisor-capabilities` (iaas.vmware.com/v1alpha1):
  `status.supervisor["supports_VM_service_VM_snapshots"].activated`, the effective state the Supervisor's capability
  controller computes (the flag in `spec.supervisor[]` is only `enabled`, a build-time state);
* the ConfigMap `kube-system/wcp-cluster-capabilities` of older Supervisors: `data["supports_VM_service_VM_snapshots"]`,
  true as Go's strconv.ParseBool reads it.

What the reads find, and what the process does (`decide`):

* the capability on in either: it stands aside. Not ready, the reason in /readyz and in one log line; the worker
  does not poll its task queues; the bridge hands nothing to Temporal and its webhook admits everything unchanged
  (bridge/main.py says why it fails open).
* both read, the capability absent or off — or no such object, no ConfigMap, no Capabilities API at all (404): it
  acts; what was not found is logged once.
* a read forbidden (403): it stands aside, as it cannot tell. The product's own RBAC grants exactly these two reads
  (deploy/base/rbac/vm-operator-capabilities.yaml), so a 403 means someone took that grant away or did not apply
  it: a platform operator would rather see pods that are not ready and name the missing permission than find every
  VM's snapshots taken twice.
* a read that failed otherwise (timeout, 5xx): the previous decision stands (at start, it stands aside until a
  read answers); checked again within `RETRY_SECONDS`.
* `VMSNAP_ALLOW_BESIDE_VM_OPERATOR_SNAPSHOTS=true`: it acts whatever was found, and logs a warning saying what.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.names import (
    CAPABILITIES_CONFIG_MAP_NAME,
    CAPABILITIES_CONFIG_MAP_NAMESPACE,
    CAPABILITIES_CRD_NAME,
    CAPABILITIES_GROUP,
    CAPABILITIES_PLURAL,
    CAPABILITIES_VERSION,
    SUPERVISOR_CAPABILITIES_NAME,
    VM_OPERATOR_SNAPSHOT_CAPABILITY,
)
from runtime import gates
from runtime.gates import RETRY_SECONDS, Gate
from runtime.kube import Kube, KubeError

log = logging.getLogger("vmsnap.coexistence")

ALLOW_SETTING = "VMSNAP_ALLOW_BESIDE_VM_OPERATOR_SNAPSHOTS"
RBAC_FILE = "deploy/base/rbac/vm-operator-capabilities.yaml"

CAPABILITIES_SOURCE = f"Capabilities {SUPERVISOR_CAPABILITIES_NAME} ({CAPABILITIES_GROUP})"
CONFIG_MAP_SOURCE = f"ConfigMap {CAPABILITIES_CONFIG_MAP_NAMESPACE}/{CAPABILITIES_CONFIG_MAP_NAME}"
STATUS_PATH = f"status.supervisor.{VM_OPERATOR_SNAPSHOT_CAPABILITY}.activated"
DATA_PATH = f"data.{VM_OPERATOR_SNAPSHOT_CAPABILITY}"
CONTROLLER = "VM Operator's own VirtualMachineSnapshot controller"
# Go's strconv.ParseBool, which VM Operator applies to the ConfigMap's values
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


class Seen(StrEnum):
    ON = "on"                  # the capability is activated
    OFF = "off"                # read: the capability is absent or not activated
    ABSENT = "absent"          # no such object (or no such API): 404
    FORBIDDEN = "forbidden"    # 403: this process may not read it
    FAILED = "failed"          # no answer, or another error


@dataclass(frozen=True)
class Finding:
    """What one read found."""

    source: str
    seen: Seen
    detail: str

    def __str__(self) -> str:
        return f"{self.source}: {self.detail}"


@dataclass(frozen=True)
class Decision(gates.Decision):
    """`warning`: acting although something was found (the override)."""

    unread: tuple[str, ...] = ()    # what could not be read, taken as off (logged once)

    def note(self) -> str | None:
        return f"could not read, taken as off: {'; '.join(self.unread)}" if self.unread else None


# --- what a read means ---------------------------------------------------------------------------------------

def from_capabilities(obj: dict[str, Any] | None) -> Finding:
    """The Capabilities object as VM Operator reads it (updateCapabilitiesFeaturesFromCRD: the status only)."""
    if obj is None:
        return Finding(CAPABILITIES_SOURCE, Seen.ABSENT,
                       f"not found (no such object, or no such API: CRD {CAPABILITIES_CRD_NAME} not installed)")
    supervisor = (obj.get("status") or {}).get("supervisor") or {}
    state = supervisor.get(VM_OPERATOR_SNAPSHOT_CAPABILITY) if isinstance(supervisor, dict) else None
    if not isinstance(state, dict):
        return Finding(CAPABILITIES_SOURCE, Seen.OFF, f"no {STATUS_PATH}")
    activated = state.get("activated") is True
    return Finding(CAPABILITIES_SOURCE, Seen.ON if activated else Seen.OFF,
                   f"{STATUS_PATH} is {str(activated).lower()}")


def from_config_map(obj: dict[str, Any] | None) -> Finding:
    """The older Supervisors' ConfigMap: the capability's value, true as Go's strconv.ParseBool reads it."""
    if obj is None:
        return Finding(CONFIG_MAP_SOURCE, Seen.ABSENT, "not found")
    data = obj.get("data") or {}
    if VM_OPERATOR_SNAPSHOT_CAPABILITY not in data:
        return Finding(CONFIG_MAP_SOURCE, Seen.OFF, f"no {DATA_PATH}")
    value = data[VM_OPERATOR_SNAPSHOT_CAPABILITY]
    return Finding(CONFIG_MAP_SOURCE, Seen.ON if value in GO_TRUE else Seen.OFF, f'{DATA_PATH} is "{value}"')


def from_error(source: str, error: Exception) -> Finding:
    answered = KubeError.answered(error)
    if answered is not None and answered.status == 403:
        return Finding(source, Seen.FORBIDDEN, "reading it is forbidden (403)")
    what = (f"{answered.status} {answered.reason}" if answered is not None
            else f"{type(error).__name__}: {error}")
    return Finding(source, Seen.FAILED, f"could not be read ({what})")


def decide(findings: Iterable[Finding], allow: bool, previous: Decision | None = None) -> Decision:
    """Act, or stand aside and say why (the module's docstring has the table)."""
    findings = list(findings)
    on = [f for f in findings if f.seen is Seen.ON]
    forbidden = [f for f in findings if f.seen is Seen.FORBIDDEN]
    failed = [f for f in findings if f.seen is Seen.FAILED]
    unread = tuple(str(f) for f in findings if f.seen in (Seen.ABSENT, Seen.FORBIDDEN, Seen.FAILED))

    def listed(some: list[Finding]) -> str:
        return "; ".join(map(str, some))

    if on:
        if allow:
            return Decision(True, warning=f"{ALLOW_SETTING}=true: acting although {CONTROLLER} is on ({listed(on)});"
                                          f" if it acts on these objects too, every snapshot is taken twice",
                            unread=unread)
        return Decision(False, reason=f"standing aside: {CONTROLLER} is on ({listed(on)}), and two controllers would "
                                      f"take every snapshot twice. Switch off the Supervisor capability "
                                      f"{VM_OPERATOR_SNAPSHOT_CAPABILITY}, or set {ALLOW_SETTING}=true if VM Operator's"
                                      f" controller leaves these objects alone", unread=unread)
    if forbidden:
        if allow:
            return Decision(True, warning=f"{ALLOW_SETTING}=true: acting without knowing whether {CONTROLLER} is on "
                                          f"({listed(forbidden)})", unread=unread)
        return Decision(False, reason=f"standing aside: cannot tell whether {CONTROLLER} is on ({listed(forbidden)}). "
                                      f"Grant get on it ({RBAC_FILE}), or set {ALLOW_SETTING}=true if the capability "
                                      f"{VM_OPERATOR_SNAPSHOT_CAPABILITY} is off", unread=unread)
    if failed:
        if allow:
            return Decision(True, unread=unread)
        if previous is not None:
            return Decision(previous.act, reason=previous.reason, warning=previous.warning, unread=unread)
        return Decision(False, reason=f"standing aside until it can tell whether {CONTROLLER} is on "
                                      f"({listed(failed)}); trying again every {RETRY_SECONDS:.0f} s", unread=unread)
    return Decision(True, unread=unread)


# --- the check, at start and periodically ----------------------------------------------------------------------

class Coexistence(Gate):
    """The process's current decision (runtime/gates.py checks it again every `period` seconds). Reads run in a
    thread (the Kubernetes client blocks)."""

    log = log
    what = f"whether {CONTROLLER} is on"
    acting_line = f"{CONTROLLER} is off: acting"

    def __init__(self, kube: Kube, *, allow: bool, period: float, retry: float = RETRY_SECONDS):
        super().__init__(period, retry)
        self.kube, self.allow = kube, allow

    def read(self) -> list[Finding]:
        findings = []
        reads: tuple[tuple[str, Callable[[dict[str, Any] | None], Finding], Callable[[], dict[str, Any] | None]], ...]
        reads = (
            (CAPABILITIES_SOURCE, from_capabilities,
             lambda: self.kube.get_cluster_object(CAPABILITIES_PLURAL, SUPERVISOR_CAPABILITIES_NAME,
                                                  group=CAPABILITIES_GROUP, version=CAPABILITIES_VERSION)),
            (CONFIG_MAP_SOURCE, from_config_map,
             lambda: self.kube.get_config_map(CAPABILITIES_CONFIG_MAP_NAMESPACE, CAPABILITIES_CONFIG_MAP_NAME)))
        for source, parse, get in reads:
            try:
                findings.append(parse(get()))
            except Exception as e:  # noqa: BLE001 - what failed is part of the finding
                findings.append(from_error(source, e))
        return findings

    async def assess(self) -> tuple[Decision, bool]:
        findings = await asyncio.to_thread(self.read)
        previous = self.decision if isinstance(self.decision, Decision) else None
        return decide(findings, self.allow, previous), any(f.seen is Seen.FAILED for f in findings)
