"""Both versions VM Operator serves, through the REAL apiserver and the webhooks: a manifest written for
v1alpha5 (the guide's) or for v1alpha6 (VM Operator's storage version) applies, is mutated and judged alike, and
reads back in either version."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from api import messages
from api.names import (
    GROUP,
    SNAPSHOT_CRD_NAME,
    SNAPSHOT_FINALIZER,
    SNAPSHOT_PLURAL,
    SPEC_CURRENT_SNAPSHOT_NAME_PATH,
    SPEC_VM_NAME_PATH,
    VM_CRD_NAME,
    VM_NAME_LABEL,
    VM_NAME_LABEL_PATH,
    VM_PLURAL,
)
from tests.admission.kube_objects import Objects, kubectl, kubectl_apply, refused, snapshot_manifest, vm_manifest

VERSIONS = ("v1alpha5", "v1alpha6")


def written_in(version: str, manifest: dict) -> dict:
    return {**manifest, "apiVersion": f"{GROUP}/{version}"}


def read_in(objects: Objects, version: str, plural: str, name: str) -> dict:
    return objects.custom.get_namespaced_custom_object(GROUP, version, objects.namespace, plural, name)


@pytest.mark.parametrize("crd", [SNAPSHOT_CRD_NAME, VM_CRD_NAME])
def test_the_installed_crds_serve_both_versions_and_store_v1alpha6(kube_api: client.ApiClient, crd: str):
    installed = client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(crd)

    assert {v.name: (v.served, v.storage) for v in installed.spec.versions} == {
        "v1alpha5": (True, False), "v1alpha6": (True, True)}
    assert installed.spec.conversion.strategy == "None"


@pytest.mark.parametrize("written", VERSIONS)
def test_a_snapshot_written_in_either_version_is_admitted_and_reads_in_both(objects: Objects, kubeconfig: Path,
                                                                            written: str):
    manifest = written_in(written, snapshot_manifest("snap", vm_name="my-vm", memory=True,
                                                     quiesce={"timeout": "10m"}))

    applied = kubectl_apply(kubeconfig, objects.namespace, manifest)

    assert applied.returncode == 0, applied.stderr
    for version in VERSIONS:
        snapshot = read_in(objects, version, SNAPSHOT_PLURAL, "snap")
        assert snapshot["apiVersion"] == f"{GROUP}/{version}"
        assert snapshot["metadata"]["finalizers"] == [SNAPSHOT_FINALIZER]  # the mutating webhook ran
        assert snapshot["metadata"]["labels"] == {VM_NAME_LABEL: "my-vm"}
        assert snapshot["spec"] == {"vmName": "my-vm", "memory": True, "quiesce": {"timeout": "10m"}}
        listed = objects.custom.list_namespaced_custom_object(GROUP, version, objects.namespace, SNAPSHOT_PLURAL)
        assert [s["metadata"]["name"] for s in listed["items"]] == ["snap"]
    # kubectl's short name reads it too (in the preferred version)
    shown = kubectl(kubeconfig, objects.namespace, "get", "vmsnapshot", "snap", "-o", "jsonpath={.apiVersion}")
    assert shown.returncode == 0 and shown.stdout == f"{GROUP}/v1alpha6"


def test_snapshots_of_both_versions_live_side_by_side_and_change_in_either(objects: Objects):
    objects.custom.create_namespaced_custom_object(GROUP, "v1alpha5", objects.namespace, SNAPSHOT_PLURAL,
                                                   written_in("v1alpha5", snapshot_manifest("old", vm_name="my-vm")))
    objects.custom.create_namespaced_custom_object(GROUP, "v1alpha6", objects.namespace, SNAPSHOT_PLURAL,
                                                   written_in("v1alpha6", snapshot_manifest("new", vm_name="my-vm")))

    for version in VERSIONS:
        listed = objects.custom.list_namespaced_custom_object(GROUP, version, objects.namespace, SNAPSHOT_PLURAL)
        assert sorted(s["metadata"]["name"] for s in listed["items"]) == ["new", "old"]
    # written in one version, changed through the other
    objects.custom.patch_namespaced_custom_object(GROUP, "v1alpha6", objects.namespace, SNAPSHOT_PLURAL, "old",
                                                  {"spec": {"description": "changed as v1alpha6"}})
    assert read_in(objects, "v1alpha5", SNAPSHOT_PLURAL, "old")["spec"]["description"] == "changed as v1alpha6"


@pytest.mark.parametrize("written", VERSIONS)
def test_the_same_rules_refuse_in_either_version(objects: Objects, written: str):
    # the validating webhook (a wrong label)
    mislabelled = written_in(written, snapshot_manifest("snap", vm_name="my-vm", labels={VM_NAME_LABEL: "x"}))
    refusal = refused(lambda: objects.custom.create_namespaced_custom_object(
        GROUP, written, objects.namespace, SNAPSHOT_PLURAL, mislabelled))
    assert refusal.by_snapshot_webhook and refusal.fields == {VM_NAME_LABEL_PATH}

    # the CRD's CEL rules (a vmName that cannot be a VM's name)
    bad_name = written_in(written, snapshot_manifest("snap", vm_name="bad_vm!"))
    refusal = refused(lambda: objects.custom.create_namespaced_custom_object(
        GROUP, written, objects.namespace, SNAPSHOT_PLURAL, bad_name))
    assert refusal.by_schema and refusal.fields == {SPEC_VM_NAME_PATH}
    assert messages.VM_NAME_NOT_A_VM_NAME in refusal.message

    # immutability, changed through this version
    objects.custom.create_namespaced_custom_object(GROUP, written, objects.namespace, SNAPSHOT_PLURAL,
                                                   written_in(written, snapshot_manifest("snap", vm_name="my-vm")))
    refusal = refused(lambda: objects.custom.patch_namespaced_custom_object(
        GROUP, written, objects.namespace, SNAPSHOT_PLURAL, "snap", {"spec": {"memory": True}}))
    assert messages.MEMORY_IMMUTABLE in refusal.message


@pytest.mark.parametrize("written", VERSIONS)
def test_a_vm_written_in_either_version_reads_in_both_and_keeps_its_revert_rules(objects: Objects, written: str):
    objects.custom.create_namespaced_custom_object(GROUP, written, objects.namespace, VM_PLURAL,
                                                   written_in(written, vm_manifest("my-vm", powerState="PoweredOn")))

    for version in VERSIONS:
        vm = read_in(objects, version, VM_PLURAL, "my-vm")
        assert vm["apiVersion"] == f"{GROUP}/{version}" and vm["spec"] == {"powerState": "PoweredOn"}
    # the VM webhook judges this version's reverts: a snapshot of another VM is refused
    objects.create_snapshot(snapshot_manifest("of-other", vm_name="other-vm"))
    refusal = refused(lambda: objects.custom.patch_namespaced_custom_object(
        GROUP, written, objects.namespace, VM_PLURAL, "my-vm", {"spec": {"currentSnapshotName": "of-other"}}))
    assert refusal.by_vm_webhook and refusal.fields == {SPEC_CURRENT_SNAPSHOT_NAME_PATH}
