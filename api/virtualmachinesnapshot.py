"""The VirtualMachineSnapshot object (vmoperator.vmware.com, v1alpha5 and v1alpha6 alike), as users write it and
as we report it."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from .conditions import Condition, get_condition, is_true
from .duration import format_minutes, quiesce_minutes_or_default, quiesce_timeout_problem
from .limits import MAX_VM_NAME_LENGTH, VM_NAME_PATTERN
from .messages import QUIESCE_ALIAS_CONFLICT, VM_NAME_NOT_A_VM_NAME, VM_NAME_TOO_LONG_FOR_LABEL
from .meta import ApiModel, KubeObject, QuantityText
from .names import (
    API_VERSION,
    CREATE_FAILED_REASONS,
    CSI_VOLUME_SYNC_ANNOTATION,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_KIND,
    SPEC_QUEISCE_TIMEOUT_PATH,
    SPEC_QUIESCE_TIMEOUT_PATH,
    VM_NAME_LABEL,
    PowerState,
    SnapshotConditionType,
    SnapshotReferenceType,
)


class SnapshotReference(ApiModel):
    """One snapshot in a VM's tree: `{type: Managed, name}` or `{type: Unmanaged}` (made directly in vCenter)."""

    type: SnapshotReferenceType = Field(default=SnapshotReferenceType.MANAGED, validate_default=True)
    name: str | None = None

    @model_validator(mode="after")
    def _unmanaged_name_is_empty(self) -> SnapshotReference:
        # VM Operator's schema requires the name (its Go type has no omitempty): "" for an Unmanaged snapshot,
        # however it was read (an older write left it out)
        if self.type == SnapshotReferenceType.UNMANAGED and self.name is None:
            self.name = ""
        return self

    @classmethod
    def managed(cls, name: str) -> SnapshotReference:
        return cls(type=SnapshotReferenceType.MANAGED, name=name)

    @classmethod
    def unmanaged(cls) -> SnapshotReference:
        return cls(type=SnapshotReferenceType.UNMANAGED, name="")


def vm_name_problems(vm_name: str) -> list[str]:
    """Admission's check of spec.vmName (the CRD's CEL rules say the same): the refusals, none when it is a
    VirtualMachine name short enough to be the vm-name label's value. An empty name is left to the rule that
    requires one."""
    problems: list[str] = []
    if vm_name and re.fullmatch(VM_NAME_PATTERN, vm_name) is None:
        problems.append(VM_NAME_NOT_A_VM_NAME)
    if len(vm_name) > MAX_VM_NAME_LENGTH:
        problems.append(VM_NAME_TOO_LONG_FOR_LABEL)
    return problems


class QuiesceSpec(ApiModel):
    # Kept as the user's text ("10min", "PT10M", "10m"); see api.duration for what parses.
    timeout: str | None = None


class VirtualMachineSnapshotSpec(ApiModel):
    vm_name: str | None = Field(default=None, alias="vmName")
    description: str | None = None
    memory: bool | None = None
    quiesce: QuiesceSpec | None = None
    # The guide's third example spells it so; both spellings mean the same, and both set must agree.
    queisce: QuiesceSpec | None = None

    @model_validator(mode="after")
    def _quiesce_spellings_agree(self) -> VirtualMachineSnapshotSpec:
        # Same rule as the CRD's CEL: equal as written (`10m` and `10min` as two values is confusing, so refused).
        if self.quiesce is not None and self.queisce is not None and self.quiesce.timeout != self.queisce.timeout:
            raise ValueError(QUIESCE_ALIAS_CONFLICT)
        return self

    @property
    def effective_quiesce(self) -> QuiesceSpec | None:
        """The quiesce spec under either spelling; None means no quiescing."""
        return self.quiesce if self.quiesce is not None else self.queisce

    @property
    def quiesce_timeout_path(self) -> str:
        """The field path of the timeout as the user spelled it, for messages."""
        return SPEC_QUIESCE_TIMEOUT_PATH if self.quiesce is not None or self.queisce is None \
            else SPEC_QUEISCE_TIMEOUT_PATH

    @property
    def includes_memory(self) -> bool:
        return bool(self.memory)

    @property
    def quiesced(self) -> bool:
        return self.effective_quiesce is not None

    @property
    def quiesce_minutes(self) -> int | None:
        """Whole minutes to pass to vSphere (default applied for `quiesce: {}`), None without quiesce.

        ValueError, naming the field, if the timeout does not parse. Bounds are not checked here (see
        `quiesce_problem`): an object that bypassed the webhook still yields a number, and vSphere's refusal
        becomes a condition on the snapshot.
        """
        quiesce = self.effective_quiesce
        if quiesce is None:
            return None
        return quiesce_minutes_or_default(quiesce.timeout, field=self.quiesce_timeout_path)

    def quiesce_problem(self) -> str | None:
        """Admission's check of the quiesce timeout: None if fine, else the refusal naming the field."""
        quiesce = self.effective_quiesce
        if quiesce is None:
            return None
        return quiesce_timeout_problem(quiesce.timeout, field=self.quiesce_timeout_path)


class RequestedStorage(ApiModel):
    storage_class: str = Field(alias="storageClass")
    total: QuantityText


class SnapshotStorageStatus(ApiModel):
    # One entry per storage class: the worst case the snapshot may consume there.
    requested: list[RequestedStorage] | None = None
    # Bytes the snapshot's own files use, excluding delta disks of PVCs (FCDs), which CSI accounts for.
    used: QuantityText | None = None


class VirtualMachineSnapshotStatus(ApiModel):
    unique_id: str | None = Field(default=None, alias="uniqueID")
    power_state: PowerState | None = Field(default=None, alias="powerState")
    quiesced: bool | None = None
    children: list[SnapshotReference] | None = None
    storage: SnapshotStorageStatus | None = None
    conditions: list[Condition] | None = None


class VirtualMachineSnapshot(KubeObject):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = SNAPSHOT_KIND
    spec: VirtualMachineSnapshotSpec = Field(default_factory=VirtualMachineSnapshotSpec)
    status: VirtualMachineSnapshotStatus = Field(default_factory=VirtualMachineSnapshotStatus)

    @property
    def vm_name(self) -> str | None:
        return self.spec.vm_name

    @property
    def vm_name_label(self) -> str | None:
        return self.metadata.label(VM_NAME_LABEL)

    @property
    def csi_volume_sync(self) -> str | None:
        """The CSI handshake's state: None, "requested" or "completed" (see names.CSIVolumeSync)."""
        return self.metadata.annotation(CSI_VOLUME_SYNC_ANNOTATION)

    @property
    def has_finalizer(self) -> bool:
        return self.metadata.has_finalizer(SNAPSHOT_FINALIZER)

    @property
    def is_being_deleted(self) -> bool:
        return self.metadata.is_being_deleted

    @property
    def is_created(self) -> bool:
        return is_true(self.status.conditions, SnapshotConditionType.CREATED)

    @property
    def is_csi_synced(self) -> bool:
        return is_true(self.status.conditions, SnapshotConditionType.CSI_SYNCED)

    @property
    def is_ready(self) -> bool:
        return is_true(self.status.conditions, SnapshotConditionType.READY)

    @property
    def create_failure(self) -> Condition | None:
        """The Created condition of a create that failed for good (a reason of CREATE_FAILED_REASONS: the bridge
        never starts it again); None for one created or still being made."""
        created = self.condition(SnapshotConditionType.CREATED)
        if created is None or self.is_created or created.reason not in CREATE_FAILED_REASONS:
            return None
        return created

    def condition(self, condition_type: str) -> Condition | None:
        return get_condition(self.status.conditions, condition_type)

    def summary(self) -> str:
        """One line for humans (the Temporal UI): `snapshot snap-3 of my-vm: memory, quiesce 10m`."""
        traits = ["memory" if self.spec.includes_memory else "no memory"]
        if self.spec.quiesced:
            try:
                traits.append(f"quiesce {format_minutes(self.spec.quiesce_minutes or 0)}")
            except ValueError:
                traits.append("quiesce (invalid timeout)")
        return f"snapshot {self.name} of {self.vm_name}: {', '.join(traits)}"
