"""A misspelt field in a VirtualMachineSnapshot's spec: what happens depends on the client's fieldValidation.

The snapshot CRD prunes unknown spec fields (no x-kubernetes-preserve-unknown-fields). `kubectl apply` asks for
strict field validation (kubectl's default --validate=strict), so the apiserver refuses the object and names the
field. A client that does not ask (the python client's default) gets the apiserver's default, Warn: the object
is stored WITHOUT the field, and the only trace is a Warning response header, which the python client does not
show. The misspelling never reaches the webhooks either way (pruning happens when the body is decoded).
"""

from __future__ import annotations

from pathlib import Path

from tests.admission.kube_objects import Objects, kubectl, kubectl_apply, refused, snapshot_manifest

MISSPELT = snapshot_manifest("snap", vm_name="my-vm", memroy=True)


def test_kubectl_apply_refuses_a_misspelt_spec_field(objects: Objects, kubeconfig: Path):
    applied = kubectl_apply(kubeconfig, objects.namespace, MISSPELT)

    assert applied.returncode != 0
    assert 'strict decoding error: unknown field "spec.memroy"' in applied.stderr
    listed = kubectl(kubeconfig, objects.namespace, "get", "virtualmachinesnapshots", "-o", "name")
    assert listed.stdout.strip() == ""


def test_the_python_client_stores_the_object_without_the_misspelt_field(objects: Objects):
    response = objects.create_snapshot(MISSPELT, _preload_content=False)

    assert (response.headers.get("Warning") or "").endswith(r'"unknown field \"spec.memroy\""')
    stored = objects.get_snapshot("snap")
    assert stored["spec"] == {"vmName": "my-vm"}  # no memroy, and memory was never set: a snapshot without memory


def test_the_python_client_refuses_it_when_asked_for_strict_validation(objects: Objects):
    refusal = refused(lambda: objects.create_snapshot(MISSPELT, field_validation="Strict"))

    assert refusal.code == 400
    assert 'unknown field "spec.memroy"' in refusal.message
