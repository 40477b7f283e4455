"""deploy/overlays/namespaced on a control plane of its own: its identities installed for real (the ClusterRoles
bound by RoleBindings in the scope's namespace only), asked of the real authorizer — each ServiceAccount gets exactly
what its code needs in that namespace (test_rbac.BASE_NEEDED: this overlay has no schedules) and nothing in any
other, nor cluster-wide — and then the worker and the bridge, authenticated as those accounts with the overlay's
VMSNAP_WATCH_NAMESPACE, take the guide's snapshot in the scope and leave one in another namespace alone, without a
single refused call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from testbed.csi_driver import CSIDriverStandIn
from testbed.kube import ControlPlane, install_crds
from testbed.product import Product
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest, vsphere_snapshot_names
from tests.deploy.conftest import INSTALLED_KINDS, account_kubeconfig, install_identities
from tests.deploy.manifests import DEPLOY, build
from tests.deploy.test_rbac import BASE_NEEDED, granted
from tests.e2e.test_create_snapshot import create, ready
from tests.fixtures.health import watch, watch_logs
from tests.fixtures.product import take_sim_vm

NAMESPACE = "vmsnap-system"
OVERLAY = build("namespaced")
(SCOPE,) = [o["data"]["namespace"] for o in OVERLAY
            if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "vmsnap-scope"]
ELSEWHERE = "team-b"
VM_CRD = DEPLOY / "overlays" / "standalone" / "crds" / "vmoperator.vmware.com_virtualmachines.yaml"


@pytest.fixture(scope="module")
def scoped(testbed_dir: Path, tmp_path_factory, request: pytest.FixtureRequest) -> Iterator[tuple[ControlPlane,
                                                                                                   client.ApiClient]]:
    """A control plane with the overlay's CRDs, identities and scope ConfigMap, and the namespaces SCOPE and
    ELSEWHERE."""
    plane = ControlPlane(testbed_dir / f"namespaced-{uuid.uuid4().hex[:6]}", controller_manager=False).start()
    watch(request, plane.watched())
    try:
        api = config.new_client_from_config(str(plane.kubeconfig))
        install_crds(api, [*sorted((DEPLOY / "base" / "crds").glob("*.yaml")), VM_CRD])
        directory = tmp_path_factory.mktemp("namespaced")
        for name in (SCOPE, ELSEWHERE):
            client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        objects = [o for o in OVERLAY if o["kind"] in (*INSTALLED_KINDS, "ConfigMap")]
        install_identities(plane.kubeconfig, objects, directory / "identities.yaml")
        yield plane, api
        api.close()
    finally:
        plane.stop()


@pytest.mark.parametrize("account", sorted(BASE_NEEDED))
def test_the_account_gets_what_its_code_calls_in_the_scope_only(account, scoped, tmp_path):
    plane, api = scoped
    as_account = config.new_client_from_config(str(account_kubeconfig(api, plane.kubeconfig, tmp_path, NAMESPACE,
                                                                      account)))
    assert granted(as_account, SCOPE) == BASE_NEEDED[account]
    for where in (ELSEWHERE, NAMESPACE, "kube-system", ""):  # "": all namespaces at once
        assert granted(as_account, where) == {}, f"{account} in namespace {where or '(all)'}"


def test_the_scope_is_one_value_carried_everywhere():
    """scope.yaml names the namespace once; the RoleBindings, both processes and every webhook take it from there."""
    bindings = {o["metadata"]["name"]: o["metadata"]["namespace"] for o in OVERLAY if o["kind"] == "RoleBinding"
                and o["metadata"]["name"] in BASE_NEEDED}
    assert bindings == {account: SCOPE for account in BASE_NEEDED}
    assert not [o for o in OVERLAY if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] in BASE_NEEDED]
    for deployment in (o for o in OVERLAY if o["kind"] == "Deployment"):
        (env,) = [e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                  if e["name"] == "VMSNAP_WATCH_NAMESPACE"]
        assert env["valueFrom"]["configMapKeyRef"] == {"name": "vmsnap-scope", "key": "namespace"}
    for configuration in (o for o in OVERLAY if o["kind"].endswith("WebhookConfiguration")):
        for webhook in configuration["webhooks"]:
            assert webhook["namespaceSelector"] == {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [SCOPE]}]}
    assert SCOPE not in yaml.safe_dump_all([o for o in OVERLAY if o["kind"] not in (
        "ConfigMap", "RoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")])


@pytest.mark.timeout(240)
def test_the_processes_act_in_the_scope_and_leave_another_namespace_alone(scoped, product_env, tmp_path, vcsim):
    plane, api = scoped
    accounts = {account: account_kubeconfig(api, plane.kubeconfig, tmp_path, NAMESPACE, account)
                for account in BASE_NEEDED}
    product = Product(tmp_path, {**product_env, "VMSNAP_WATCH_NAMESPACE": SCOPE, "VMSNAP_RESYNC_SECONDS": "2"})
    watch_logs(lambda: {p.part: p.log for p in product.processes})
    csi = CSIDriverStandIn(api).start()
    try:
        product.start_worker(KUBECONFIG=str(accounts["vmsnap-worker"]))
        product.start_bridge(KUBECONFIG=str(accounts["vmsnap-bridge"]))
        in_scope, elsewhere = take_sim_vm(vcsim), take_sim_vm(vcsim)
        create_vm(api, vcsim, SCOPE, "my-vm", in_scope)
        create_vm(api, vcsim, ELSEWHERE, "my-vm", elsewhere)
        create(api, ELSEWHERE, snapshot_manifest("snap-1", "my-vm"))
        create(api, SCOPE, snapshot_manifest("snap-1", "my-vm"))
        eventually(lambda: ready(api, SCOPE, "snap-1"), what="the scope's snapshot Ready")
        assert vsphere_snapshot_names(vcsim, in_scope) == ["snap-1"]
        # made first: a bridge that saw it (one watch delivers in resourceVersion order) would have had the worker
        # put its finalizer on long before the scope's snapshot went through vCenter and the CSI handshake
        untouched = get_snapshot(api, ELSEWHERE, "snap-1")
        assert not untouched.metadata.finalizers and not untouched.status.conditions
        assert vsphere_snapshot_names(vcsim, elsewhere) == []
    finally:
        product.stop()
        csi.stop()
    for process in product.processes:
        assert "Forbidden" not in process.log.read_text(errors="replace"), f"a refused call in {process.log}"
    # no components/schedules in this overlay: no such kind, no grant, and the bridge says it follows none
    assert "not following VirtualMachineSnapshotSchedules: listing virtualmachinesnapshotschedules.vmsnap.io is " \
           "not granted" in \
        product.processes[1].log.read_text(errors="replace")
