"""The webhooks this service serves: name, URL path and the resource each admits. Both the server (its
routes) and the webhook configurations (their rules and client paths) are built from this one table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from api.group_snapshot_names import (
    GROUP_SNAPSHOT_GROUP,
    GROUP_SNAPSHOT_KIND,
    GROUP_SNAPSHOT_LABEL,
    GROUP_SNAPSHOT_PLURAL,
    GROUP_SNAPSHOT_SINGULAR,
    GROUP_SNAPSHOT_VERSION,
)
from api.names import (
    FAILURE_DEADLINE_ANNOTATION,
    GROUP,
    QUIESCE_FALLBACK_ANNOTATION,
    SERVED_VERSIONS,
    SNAPSHOT_KIND,
    SNAPSHOT_PLURAL,
    SNAPSHOT_SINGULAR,
    VERSION,
    VM_KIND,
    VM_PLURAL,
    VM_SINGULAR,
)
from api.schedule_names import SCHEDULE_GROUP, SCHEDULE_KIND, SCHEDULE_PLURAL, SCHEDULE_SINGULAR, SCHEDULE_VERSION


class WebhookType(StrEnum):
    MUTATING = "mutate"
    VALIDATING = "validate"


@dataclass(frozen=True)
class Webhook:
    type: WebhookType
    kind: str
    singular: str
    plural: str
    # (name, CEL expression) pairs: the apiserver calls the webhook only when all are true
    match_conditions: tuple[tuple[str, str], ...] = ()
    # VM Operator's group by default; VirtualMachineSnapshotSchedule is in ours
    group: str = GROUP
    version: str = VERSION
    served_versions: tuple[str, ...] = SERVED_VERSIONS
    operations: tuple[str, ...] = ("CREATE", "UPDATE")
    # a second webhook of one type for one resource (the member deletes): its path and name say which
    action: str = ""

    @property
    def path(self) -> str:
        """controller-runtime's convention, with the version the webhook is written for (the hub, as VM Operator's):
        /mutate-vmoperator-vmware-com-v1alpha6-virtualmachinesnapshot. It admits every served version."""
        suffix = f"-{self.action}" if self.action else ""
        return f"/{self.type}-{self.group.replace('.', '-')}-{self.version}-{self.singular}{suffix}"

    @property
    def name(self) -> str:
        """Fully qualified, as the apiserver requires; it is what users read in a refusal ("admission webhook
        "vmsnap.validating.virtualmachinesnapshot.v1alpha6.vmoperator.vmware.com" denied the request")."""
        adjective = self.action or ("mutating" if self.type is WebhookType.MUTATING else "validating")
        return f"vmsnap.{adjective}.{self.singular}.{self.version}.{self.group}"



def _or_empty(document: str, field: str) -> str:
    return f"(has({document}.{field}) ? {document}.{field} : {{}})"


def _annotation(document: str, key: str) -> str:
    annotations = f"{document}.metadata.annotations"
    return f"(has({annotations}) && '{key}' in {annotations} ? {annotations}['{key}'] : '')"


# An UPDATE reaches the snapshot webhooks only when it changes what they judge: the spec, the labels (the vm-name
# label) or one of the annotations that govern a create. Every other update — annotations and finalizers written by
# the worker, by the vSphere CSI driver's handshake, by VM Operator — never waits on a bridge, so in-flight
# operations finish while none answers.
SNAPSHOT_JUDGED_CHANGE = ("judged-fields-changed", " || ".join([
    "request.operation != 'UPDATE'",
    f"{_or_empty('object', 'spec')} != {_or_empty('oldObject', 'spec')}",
    f"{_or_empty('object', 'metadata.labels')} != {_or_empty('oldObject', 'metadata.labels')}",
    *(f"{_annotation('object', key)} != {_annotation('oldObject', key)}"
      for key in (FAILURE_DEADLINE_ANNOTATION, QUIESCE_FALLBACK_ANNOTATION))]))

SNAPSHOT_MUTATING = Webhook(WebhookType.MUTATING, SNAPSHOT_KIND, SNAPSHOT_SINGULAR, SNAPSHOT_PLURAL,
                            match_conditions=(SNAPSHOT_JUDGED_CHANGE,))
SNAPSHOT_VALIDATING = Webhook(WebhookType.VALIDATING, SNAPSHOT_KIND, SNAPSHOT_SINGULAR, SNAPSHOT_PLURAL,
                              match_conditions=(SNAPSHOT_JUDGED_CHANGE,))
# Every VM rule is about a revert that is asked (a cleared or absent currentSnapshotName is always allowed), so
# the apiserver skips the webhook for every other VM write: VM Operator's own updates never wait on the bridge.
VM_VALIDATING = Webhook(WebhookType.VALIDATING, VM_KIND, VM_SINGULAR, VM_PLURAL, match_conditions=(
    ("revert-requested", "has(object.spec) && has(object.spec.currentSnapshotName) && "
                         "object.spec.currentSnapshotName != ''"),))

# The spec checks CEL cannot make (cron, IANA time zone, quiesce bounds, spread window against the interval)
SCHEDULE_VALIDATING = Webhook(WebhookType.VALIDATING, SCHEDULE_KIND, SCHEDULE_SINGULAR, SCHEDULE_PLURAL,
                              group=SCHEDULE_GROUP, version=SCHEDULE_VERSION, served_versions=(SCHEDULE_VERSION,))

# The group's spec and each member VM as a single snapshot's admission judges it
GROUP_SNAPSHOT_VALIDATING = Webhook(WebhookType.VALIDATING, GROUP_SNAPSHOT_KIND, GROUP_SNAPSHOT_SINGULAR,
                                    GROUP_SNAPSHOT_PLURAL, group=GROUP_SNAPSHOT_GROUP, version=GROUP_SNAPSHOT_VERSION,
                                    served_versions=(GROUP_SNAPSHOT_VERSION,))
# A group's member deleted on its own is refused naming the group; the apiserver calls it only for the deletes of
# objects carrying the group label, so no other delete ever waits on a bridge
MEMBER_DELETE_VALIDATING = Webhook(WebhookType.VALIDATING, SNAPSHOT_KIND, SNAPSHOT_SINGULAR, SNAPSHOT_PLURAL,
                                   operations=("DELETE",), action="member-delete", match_conditions=(
                                       ("group-member", "has(oldObject.metadata.labels) && "
                                                        f"'{GROUP_SNAPSHOT_LABEL}' in oldObject.metadata.labels"),))

MUTATING_WEBHOOKS = (SNAPSHOT_MUTATING,)
VALIDATING_WEBHOOKS = (SNAPSHOT_VALIDATING, VM_VALIDATING, SCHEDULE_VALIDATING, GROUP_SNAPSHOT_VALIDATING,
                       MEMBER_DELETE_VALIDATING)

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
