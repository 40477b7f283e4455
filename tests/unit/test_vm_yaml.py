"""The VM object as a snapshot stores it in ExtraConfig (activities/vm_yaml.py, pure): YAML, gzip, base64, without
what changes when the VM does not (server-set metadata, the zone label, kubectl's last-applied annotation, the
status), and read back as tolerantly as VM Operator reads it."""

from __future__ import annotations

import base64
import copy
import gzip

import pytest
import yaml

from activities.vm_yaml import decode_vm_yaml, encode_vm_yaml
from api.names import LAST_APPLIED_CONFIGURATION_ANNOTATION, TOPOLOGY_ZONE_LABEL

VM = {
    "apiVersion": "vmoperator.vmware.com/v1alpha6",
    "kind": "VirtualMachine",
    "metadata": {
        "name": "web-1", "namespace": "team-a",
        "labels": {"app": "web", TOPOLOGY_ZONE_LABEL: "zone-a"},
        "annotations": {"owner": "alice", LAST_APPLIED_CONFIGURATION_ANNOTATION: '{"big": "json"}'},
        # set by the server, never the VM's intent
        "uid": "7d6c", "resourceVersion": "4711", "generation": 9, "creationTimestamp": "2025-01-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}], "finalizers": ["vmoperator.vmware.com/virtualmachine"],
        "ownerReferences": [{"kind": "Cluster", "name": "c"}], "deletionTimestamp": "2025-02-01T00:00:00Z",
        "deletionGracePeriodSeconds": 0,
    },
    "spec": {"className": "best-effort-small", "imageName": "ubuntu", "powerState": "PoweredOn",
             "storageClass": "gold", "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]},
    "status": {"uniqueID": "vm-17", "powerState": "PoweredOn"},
}


def test_the_stored_vm_is_its_intent_only():
    stored = decode_vm_yaml(encode_vm_yaml(VM))

    assert stored == {
        "apiVersion": "vmoperator.vmware.com/v1alpha6",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-1", "namespace": "team-a", "labels": {"app": "web"},
                     "annotations": {"owner": "alice"}},
        "spec": VM["spec"],
    }


def test_encoding_is_base64_of_gzip_and_the_same_for_the_same_vm():
    encoded = encode_vm_yaml(VM)

    compressed = base64.b64decode(encoded)
    assert compressed[:2] == b"\x1f\x8b"
    assert compressed[4:8] == bytes(4), "no time in the gzip header: a VM stored twice is stored the same"
    reordered = {**{k: VM[k] for k in reversed(list(VM))}, "spec": dict(reversed(list(VM["spec"].items())))}
    assert encode_vm_yaml(reordered) == encoded, "keys sorted"
    # only server-set fields differ: the stored copy is the same (a revert restores intent, not a resourceVersion)
    bumped = copy.deepcopy(VM)
    bumped["metadata"].update(resourceVersion="4712", generation=10)
    assert encode_vm_yaml(bumped) == encoded


def test_encoding_leaves_the_vm_as_it_was():
    original = copy.deepcopy(VM)
    encode_vm_yaml(VM)
    assert VM == original


def test_a_vm_without_labels_annotations_or_spec_still_encodes():
    stored = decode_vm_yaml(encode_vm_yaml({"apiVersion": "v", "kind": "VirtualMachine", "metadata": {"name": "x"}}))
    assert stored["spec"] == {} and stored["metadata"] == {"name": "x", "labels": {}, "annotations": {}}


PLAIN = yaml.safe_dump({"kind": "VirtualMachine", "spec": {"className": "small"}})


@pytest.mark.parametrize("stored", [
    PLAIN,
    base64.b64encode(PLAIN.encode()).decode(),
    base64.b64encode(gzip.compress(PLAIN.encode())).decode(),
    base64.b64encode(base64.b64encode(gzip.compress(PLAIN.encode()))).decode(),
], ids=["plain-yaml", "base64", "base64-gzip", "base64-twice"])
def test_decoding_takes_what_vm_operator_takes(stored):
    assert decode_vm_yaml(stored) == {"kind": "VirtualMachine", "spec": {"className": "small"}}


@pytest.mark.parametrize("stored", [
    yaml.safe_dump({"kind": "VirtualMachine", "metadata": {"name": "x"}}),
    base64.b64encode(gzip.compress(b"- a list\n- not a VM\n")).decode(),
    "just words",
], ids=["no-spec", "a-list", "a-string"])
def test_what_is_not_a_vm_is_refused(stored):
    with pytest.raises(ValueError, match="no spec"):
        decode_vm_yaml(stored)
