"""The guide's examples (seed/virtualmachinesnapshot-guide.md), copied verbatim, apply unchanged with
`kubectl apply` through the webhooks, and the snapshots come out with the finalizer and the VM-name label.

The guide has four manifests (three snapshots, one VM); its other YAML blocks are status excerpts without
apiVersion, kind or metadata, which the service writes and nobody applies."""

from __future__ import annotations

from pathlib import Path

from api.names import SNAPSHOT_FINALIZER, VM_NAME_LABEL
from tests.admission.kube_objects import Objects, kubectl_apply
from tests.guide_examples import (
    GUIDE_SNAPSHOT_QUIESCED,
    GUIDE_SNAPSHOT_WITH_MEMORY,
    GUIDE_SNAPSHOT_WITHOUT_MEMORY,
    GUIDE_VM_REVERT,
)

# Not from the guide: the VM must exist, without a revert asked, before the guide's revert example applies.
EXISTING_VM = """\
apiVersion: vmoperator.vmware.com/v1alpha5
kind: VirtualMachine
metadata:
  name: my-vm
spec:
  powerState: PoweredOn
"""


def test_the_guides_examples_apply_unchanged(objects: Objects, kubeconfig: Path):
    namespace = objects.namespace
    assert kubectl_apply(kubeconfig, namespace, EXISTING_VM).returncode == 0

    for manifest in (GUIDE_SNAPSHOT_WITHOUT_MEMORY, GUIDE_SNAPSHOT_WITH_MEMORY, GUIDE_SNAPSHOT_QUIESCED):
        applied = kubectl_apply(kubeconfig, namespace, manifest)
        assert applied.returncode == 0, applied.stderr
        assert "Warning" not in applied.stderr

    for name in ("snap-1", "snap-2", "snap-3"):
        snapshot = objects.get_snapshot(name)
        assert snapshot["metadata"]["finalizers"] == [SNAPSHOT_FINALIZER]
        assert snapshot["metadata"]["labels"][VM_NAME_LABEL] == "my-vm"
    assert objects.get_snapshot("snap-2")["spec"]["memory"] is True
    assert objects.get_snapshot("snap-3")["spec"]["queisce"] == {"timeout": "10min"}

    reverted = kubectl_apply(kubeconfig, namespace, GUIDE_VM_REVERT)
    assert reverted.returncode == 0, reverted.stderr
    assert objects.get_vm("my-vm")["spec"]["currentSnapshotName"] == "snap-1"


def test_applying_the_guides_examples_again_changes_nothing(objects: Objects, kubeconfig: Path):
    namespace = objects.namespace
    for manifest in (GUIDE_SNAPSHOT_WITHOUT_MEMORY, GUIDE_SNAPSHOT_QUIESCED):
        assert kubectl_apply(kubeconfig, namespace, manifest).returncode == 0
    versions = {n: objects.get_snapshot(n)["metadata"]["resourceVersion"] for n in ("snap-1", "snap-3")}

    for manifest in (GUIDE_SNAPSHOT_WITHOUT_MEMORY, GUIDE_SNAPSHOT_QUIESCED):
        again = kubectl_apply(kubeconfig, namespace, manifest)
        assert again.returncode == 0, again.stderr
        assert "unchanged" in again.stdout

    assert {n: objects.get_snapshot(n)["metadata"]["resourceVersion"] for n in versions} == versions
