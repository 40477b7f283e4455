"""The VirtualMachine object (vmoperator.vmware.com, v1alpha5 and v1alpha6 alike): typed for the fields this
service reads and writes.

VM Operator's VirtualMachine has many more fields (class, image, network, bootstrap, …). Every model here keeps
them (extra="allow") and writes them back unchanged, because a revert writes the VM's spec, labels and annotations
and must not lose what we do not model.
"""

from __future__ import annotations

from pydantic import Field

from .conditions import Condition, get_condition
from .messages import SNAPSHOT_OF_VKS_NODE_FORBIDDEN, unsupported_scsi_sharing_mode
from .meta import ApiModel, KubeObject, QuantityText
from .names import API_VERSION, CAPI_CLUSTER_ROLE_LABELS, VM_KIND, ControllerSharingMode, PowerState, VMConditionType
from .quantity import format_plain_bytes
from .virtualmachinesnapshot import SnapshotReference


class InstanceVolumeClaim(ApiModel):
    storage_class: str | None = Field(default=None, alias="storageClass")
    size: QuantityText | None = None


class PersistentVolumeClaimSource(ApiModel):
    claim_name: str | None = Field(default=None, alias="claimName")
    read_only: bool | None = Field(default=None, alias="readOnly")
    # Set when the PVC is backed by instance storage: size and storage class are here, not on a PVC.
    instance_volume_claim: InstanceVolumeClaim | None = Field(default=None, alias="instanceVolumeClaim")


class VolumeSpec(ApiModel):
    name: str
    persistent_volume_claim: PersistentVolumeClaimSource | None = Field(default=None, alias="persistentVolumeClaim")


class SCSIControllerSpec(ApiModel):
    bus_number: int | None = Field(default=None, alias="busNumber")
    # None (the default when absent), Physical or Virtual; vSphere cannot snapshot a VM with a shared bus.
    sharing_mode: str | None = Field(default=None, alias="sharingMode")
    type: str | None = None

    @property
    def blocks_snapshots(self) -> bool:
        return self.sharing_mode not in (None, ControllerSharingMode.NONE)


class HardwareSpec(ApiModel):
    scsi_controllers: list[SCSIControllerSpec] | None = Field(default=None, alias="scsiControllers")


class VirtualMachineSpec(ApiModel):
    # Setting it asks for a revert to the VirtualMachineSnapshot of that name; cleared once the revert succeeds.
    current_snapshot_name: str | None = Field(default=None, alias="currentSnapshotName")
    power_state: PowerState | None = Field(default=None, alias="powerState")
    storage_class: str | None = Field(default=None, alias="storageClass")
    class_name: str | None = Field(default=None, alias="className")
    volumes: list[VolumeSpec] | None = None
    hardware: HardwareSpec | None = None


class VolumeStatus(ApiModel):
    name: str
    # Classic (a disk of the VM itself, e.g. the boot disk) or Managed (a PVC).
    type: str | None = None
    requested: QuantityText | None = None
    limit: QuantityText | None = None
    used: QuantityText | None = None
    disk_uuid: str | None = Field(default=None, alias="diskUUID")
    attached: bool | None = None


class MemoryAllocationStatus(ApiModel):
    total: QuantityText | None = None
    reservation: QuantityText | None = None


class HardwareStatus(ApiModel):
    memory: MemoryAllocationStatus | None = None


class VMSnapshotUsage(ApiModel):
    """status.storage.usage.snapshots: what all the VM's snapshots hold (VM Operator's GetAllSnapshotSize)."""

    # Their memory files, .vmsn files and the delta disks of the VM's own (non-FCD) disks.
    vm: QuantityText | None = None
    # The delta disks of FCD-backed volumes (PVCs).
    volume: QuantityText | None = None


class VMStorageUsage(ApiModel):
    # VM Operator also reports total, disks and other here; kept as they are (extra="allow").
    snapshots: VMSnapshotUsage | None = None


class VMStorageStatus(ApiModel):
    # VM Operator also reports total and requested here; kept as they are (extra="allow").
    usage: VMStorageUsage | None = None


class VirtualMachineStatus(ApiModel):
    unique_id: str | None = Field(default=None, alias="uniqueID")  # the vSphere VM's MoRef value, e.g. vm-42
    instance_uuid: str | None = Field(default=None, alias="instanceUUID")
    bios_uuid: str | None = Field(default=None, alias="biosUUID")
    power_state: PowerState | None = Field(default=None, alias="powerState")
    volumes: list[VolumeStatus] | None = None
    hardware: HardwareStatus | None = None
    current_snapshot: SnapshotReference | None = Field(default=None, alias="currentSnapshot")
    root_snapshots: list[SnapshotReference] | None = Field(default=None, alias="rootSnapshots")
    storage: VMStorageStatus | None = None
    conditions: list[Condition] | None = None

    def set_snapshot_usage(self, vm_bytes: int, volume_bytes: int) -> bool:
        """Write status.storage.usage.snapshots (byte counts printed as status.storage.used is on a snapshot);
        True if that changed it. The other fields of status.storage are left as they are."""
        wanted = (format_plain_bytes(vm_bytes), format_plain_bytes(volume_bytes))
        storage = self.storage or VMStorageStatus()
        usage = storage.usage or VMStorageUsage()
        snapshots = usage.snapshots or VMSnapshotUsage()
        if (snapshots.vm, snapshots.volume) == wanted:
            return False
        snapshots.vm, snapshots.volume = wanted
        usage.snapshots, storage.usage, self.storage = snapshots, usage, storage
        return True


class VirtualMachine(KubeObject):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = VM_KIND
    spec: VirtualMachineSpec = Field(default_factory=VirtualMachineSpec)
    status: VirtualMachineStatus = Field(default_factory=VirtualMachineStatus)

    @property
    def is_vks_node(self) -> bool:
        """A VKS/TKG cluster node (CAPI label present, any value): never snapshotted nor reverted."""
        return any(key in (self.metadata.labels or {}) for key in CAPI_CLUSTER_ROLE_LABELS)

    @property
    def snapshot_blocking_scsi_buses(self) -> list[tuple[int, str]]:
        """(bus number, sharing mode) of the SCSI controllers whose bus sharing (Physical or Virtual) vSphere
        cannot snapshot; a controller without a bus number counts by its position."""
        hardware = self.spec.hardware
        controllers = (hardware.scsi_controllers if hardware else None) or ()
        return [(c.bus_number if c.bus_number is not None else position, str(c.sharing_mode))
                for position, c in enumerate(controllers) if c.blocks_snapshots]

    @property
    def requested_snapshot_name(self) -> str | None:
        """The snapshot a revert is asked to (spec.currentSnapshotName), None when no revert is asked."""
        name = self.spec.current_snapshot_name
        return name if name and name.strip() else None

    @property
    def revert_condition(self) -> Condition | None:
        return get_condition(self.status.conditions, VMConditionType.SNAPSHOT_REVERT_SUCCEEDED)

    def volume_spec(self, name: str) -> VolumeSpec | None:
        return next((v for v in self.spec.volumes or () if v.name == name), None)


def snapshot_refusals(vm: VirtualMachine) -> list[str]:
    """Why vSphere (or the product) will not snapshot this VM, as a single snapshot's admission says it: a VKS/TKG
    node, a SCSI controller sharing its bus. Empty when it can be snapshotted."""
    refusals = [SNAPSHOT_OF_VKS_NODE_FORBIDDEN] if vm.is_vks_node else []
    return refusals + [unsupported_scsi_sharing_mode(bus, mode) for bus, mode in vm.snapshot_blocking_scsi_buses]
