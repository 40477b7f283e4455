"""The guide's YAML (seed/virtualmachinesnapshot-guide.md), verbatim: the contract the tests hold the product to."""


GUIDE_SNAPSHOT_WITHOUT_MEMORY = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-1
spec:
  description: "Snapshot of my-vm without memory"
  vmName: my-vm
"""

GUIDE_SNAPSHOT_WITH_MEMORY = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-2
spec:
  description: "Snapshot of my-vm with memory"
  vmName: my-vm
  memory: true
"""

GUIDE_SNAPSHOT_QUIESCED = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachineSnapshot
metadata:
  name: snap-3
spec:
  description: "Snapshot of my-vm with a consistent state of the guest filesystem"
  vmName: my-vm
  memory: true
  queisce:
    timeout: 10min
"""

GUIDE_VM_REVERT = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachine
metadata:
  name: my-vm
spec:
  currentSnapshotName: snap-1
"""

GUIDE_VM_STATUS_AFTER_REVERT = """\
status:
  currentSnapshot:
    type: Managed
    name: snap-1
"""

GUIDE_SNAPSHOT_STATUS = """\
status:
  children:
  - name: snap-2
    type: Managed
  conditions:
  - lastTransitionTime: "2025-10-27T14:55:26Z"
    message: ""
    reason: "True"
    status: "True"
    type: VirtualMachineSnapshotCSISynced
  - lastTransitionTime: "2025-10-27T14:55:26Z"
    message: ""
    reason: "True"
    status: "True"
    type: VirtualMachineSnapshotCreated
  - lastTransitionTime: "2025-10-27T14:55:26Z"
    message: ""
    reason: "True"
    status: "True"
    type: VirtualMachineSnapshotReady
  powerState: PoweredOn
  storage:
    requested:
    - storageClass: wcpglobal-storage-profile
      total: 25Gi
    used: "12226581330"
  uniqueID: snapshot-226
"""

# The guide elides the rest of the VM status with "..." lines; they are dropped before parsing.
GUIDE_VM_STATUS_TREE = """\
status:
...
  currentSnapshot:
    name: snap-2
    type: Managed
...
  rootSnapshots:
  - name: snap-1
    type: Managed
...
"""


# the guide's three snapshot manifests, as one stream for `kubectl apply -f -`
GUIDE_SNAPSHOTS = "---\n".join((GUIDE_SNAPSHOT_WITHOUT_MEMORY, GUIDE_SNAPSHOT_WITH_MEMORY, GUIDE_SNAPSHOT_QUIESCED))
