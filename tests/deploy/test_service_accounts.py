"""The real processes with nothing but the deployment's RBAC: the worker and the bridge (with its admission webhook
registered in the apiserver) authenticate as vmsnap-system's ServiceAccounts and carry a snapshot through create,
revert and delete; `vmsnap-import-vms` runs as an account granted vmsnap-vm-importer. Any permission the code
needs but the roles lack shows up as a 403 here: as an operation that never finishes, an Event that is missing
(events are best effort and only logged), or "Forbidden" in a process log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from kubernetes import client

from api.names import GROUP, SNAPSHOT_FINALIZER, SNAPSHOT_PLURAL, VERSION, VM_PLURAL
from bridge.admission import (
    DEFAULT_NAMESPACE_SELECTOR,
    IN_CLUSTER_USERS,
    SNAPSHOT_MUTATING,
    UrlReference,
    webhook_configurations,
)
from testbed.pki import CertificateAuthority
from testbed.process import free_port
from testbed.product import Product
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest, vsphere_snapshot_names
from tests.admission.conftest import RUN_LABEL, _register, _wait_until_in_force
from tests.admission.kube_objects import kubectl
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready
from tests.e2e.test_durability import wait_for_pending, wait_for_running_task
from tests.e2e.test_revert_delete import delete_snapshot, revert
from tests.fixtures.product import take_sim_vm
from worker.vm_importer import kubernetes_name

NAMESPACE = "vmsnap-system"


@pytest.fixture
def webhook_for(kube_api, namespace, tmp_path):
    """Serving cert for a bridge on loopback, and (once it runs) its webhook registered for this namespace only."""
    run = uuid.uuid4().hex[:8]
    authority = CertificateAuthority("vmsnap-deploy-test-ca")
    cert, key = authority.issue("vmsnap-webhook", dns=("localhost",), ips=("127.0.0.1",), server=True).write(
        tmp_path / "webhook", "tls")
    port = free_port()
    selector = {"matchLabels": {RUN_LABEL: run}, "matchExpressions": DEFAULT_NAMESPACE_SELECTOR["matchExpressions"]}
    # as deployed: the product's own UPDATEs skip the webhooks (bridge/admission/registration.py)
    mutating, validating = webhook_configurations(UrlReference(f"https://127.0.0.1:{port}"), authority.cert_pem,
                                                  configuration_name=f"vmsnap-deploy-test-{run}",
                                                  namespace_selector=selector, own_users=IN_CLUSTER_USERS)
    registration = client.AdmissionregistrationV1Api(kube_api)

    def register() -> None:
        client.CoreV1Api(kube_api).patch_namespace(namespace, {"metadata": {"labels": {RUN_LABEL: run}}})
        _register(registration, mutating, validating)
        _wait_until_in_force(kube_api, namespace)  # probes until both answer (the namespace label is cached)

    yield {"VMSNAP_WEBHOOK_CERT_FILE": str(cert), "VMSNAP_WEBHOOK_KEY_FILE": str(key),
           "VMSNAP_WEBHOOK_PORT": str(port)}, register
    for delete, body in ((registration.delete_mutating_webhook_configuration, mutating),
                         (registration.delete_validating_webhook_configuration, validating)):
        try:
            delete(body["metadata"]["name"])
        except client.ApiException as error:
            if error.status != 404:
                raise


def events_by_vmsnap(kube_api, namespace: str) -> set[tuple[str, str]]:
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    return {(e.involved_object.name, e.reason) for e in events if e.reporting_component == "vmsnap"}


def test_create_revert_delete_as_the_service_accounts(service_account_kubeconfig, webhook_for, product_env,
                                                      tmp_path, kube_api, namespace, vcsim, sim_vm, csi_driver):
    webhook_env, register_webhook = webhook_for
    product = Product(tmp_path, product_env)
    try:
        product.start_worker(KUBECONFIG=str(service_account_kubeconfig(NAMESPACE, "vmsnap-worker")))
        product.start_bridge(KUBECONFIG=str(service_account_kubeconfig(NAMESPACE, "vmsnap-bridge")), **webhook_env)
        register_webhook()

        create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
        # admission as the bridge: the mutating webhook adds the finalizer, the validating one reads the VM
        create(kube_api, namespace, snapshot_manifest("first", "my-vm"))
        assert SNAPSHOT_FINALIZER in get_snapshot(kube_api, namespace, "first").metadata.finalizers
        eventually(lambda: ready(kube_api, namespace, "first"), what="first Ready")
        create(kube_api, namespace, snapshot_manifest("second", "my-vm"))
        eventually(lambda: ready(kube_api, namespace, "second"), what="second Ready")

        # the VM webhook reads the named snapshot; the worker restores the VM and rewrites its status
        revert(kube_api, namespace, "first")
        delete_snapshot(kube_api, namespace, "second")
        delete_snapshot(kube_api, namespace, "first")

        recorded = eventually(lambda: (e := events_by_vmsnap(kube_api, namespace)) and
                              {name for name, _ in e} >= {"first", "second", "my-vm"} and e,
                              what="the worker's Events on both snapshots and the VM")
        assert recorded
    finally:
        product.stop()
    for process in product.processes:
        assert "Forbidden" not in process.log.read_text(errors="replace"), f"a refused call in {process.log}"


HELD_SECONDS = 20  # the simulator holds each vCenter task this long: in flight when the bridge goes


@pytest.mark.timeout(300)  # two held vCenter tasks, and the create's CSI handshake read by the worker's poll (60 s)
async def test_with_no_bridge_the_worker_finishes_what_is_in_flight(
        service_account_kubeconfig, webhook_for, product_env, tmp_path, kube_api, kubeconfig, namespace, vcsim,
        sim_vm, csi_driver, temporal_client):
    """Every bridge gone (a rollout gone wrong, a drained node) while a create and a delete are in flight: what they
    still write — the worker's annotations, status and finalizer removal, the CSI driver's handshake annotation —
    never reaches a webhook, so both finish; a user's create meanwhile is refused, naming the webhook the apiserver
    could not call."""
    webhook_env, register_webhook = webhook_for
    product = Product(tmp_path, product_env)
    try:
        product.start_worker(KUBECONFIG=str(service_account_kubeconfig(NAMESPACE, "vmsnap-worker")))
        bridge = product.start_bridge(KUBECONFIG=str(service_account_kubeconfig(NAMESPACE, "vmsnap-bridge")),
                                      **webhook_env)
        register_webhook()
        other_sim_vm = take_sim_vm(vcsim)
        create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
        create_vm(kube_api, vcsim, namespace, "other-vm", other_sim_vm)
        create(kube_api, namespace, snapshot_manifest("kept", "other-vm"))
        await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "kept"), what="kept Ready")
        kept_uid = get_snapshot(kube_api, namespace, "kept").metadata.uid

        # a delete and a create (of another VM: each VM's operations run one at a time), both held in vCenter
        vcsim.control.delay("RemoveSnapshot_Task", other_sim_vm, HELD_SECONDS, count=1)
        vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, HELD_SECONDS, count=1)
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                          SNAPSHOT_PLURAL, "kept")
        create(kube_api, namespace, snapshot_manifest("slow", "my-vm"))
        create_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "slow"))
        await asyncio.wait_for(asyncio.gather(
            wait_for_pending(temporal_client, f"delete-snapshot/{namespace}/kept/{kept_uid}",
                             "vsphere_remove_snapshot"),
            wait_for_running_task(temporal_client, create_id)), timeout=120)

        bridge.stop()  # no webhook answers from here on
        refused = kubectl(kubeconfig, namespace, "create", "-f", "-",
                          manifest=json.dumps(snapshot_manifest("meanwhile", "my-vm")))
        assert refused.returncode != 0
        assert f'failed calling webhook "{SNAPSHOT_MUTATING.name}"' in refused.stderr, refused.stderr

        await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "slow"), 240, "slow Ready")
        await asyncio.to_thread(eventually, lambda: not [
            i for i in client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, SNAPSHOT_PLURAL)["items"] if i["metadata"]["name"] == "kept"],
            what="kept deleted, its finalizer removed by the worker")
        assert vsphere_snapshot_names(vcsim, sim_vm) == ["slow"]
        assert vsphere_snapshot_names(vcsim, other_sim_vm) == []
    finally:
        product.stop()


def test_import_vms_as_the_importer_role(importer_kubeconfig, namespace, vcsim, sim_vm, kube_api):
    command = [str(os.path.join(os.path.dirname(sys.executable), "vmsnap-import-vms")), "--namespace", namespace,
               "--name", sim_vm]
    env = {**os.environ, "KUBECONFIG": str(importer_kubeconfig), "VSPHERE_URL": vcsim.url, "VSPHERE_INSECURE": "true"}
    created = subprocess.run(command, env=env, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    changed = subprocess.run([*command, "--storage-class", "gold"], env=env, capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr           # get, then merge-patch of the spec

    vm = client.CustomObjectsApi(kube_api).get_namespaced_custom_object(GROUP, VERSION, namespace, VM_PLURAL,
                                                                        kubernetes_name(sim_vm))
    assert vm["status"]["uniqueID"] == vcsim.control.vms()[sim_vm]   # the status patch
    assert vm["spec"]["storageClass"] == "gold"
