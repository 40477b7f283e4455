"""Standing aside for VM Operator's own VirtualMachineSnapshot controller (runtime/coexistence.py), with the real
bridge and worker processes, on a kube-apiserver serving VM Operator's OWN Capabilities CRD
(tests/testdata/vm-operator/iaas.vmware.com_capabilities.yaml, verbatim) and the capability written where the
Supervisor writes it: `status.supervisor["supports_VM_service_VM_snapshots"].activated`, through the status
subresource, beside the build-time `spec.supervisor[]` entry.

The Capabilities object and the ConfigMap are cluster-wide state (the first is cluster-scoped, the second in
kube-system), so these tests start a control plane of their own (etcd + kube-apiserver, once for the module) with
that CRD and this product's CRDs, and leave the session's apiserver untouched. The processes re-check every second
(VMSNAP_VM_OPERATOR_CHECK_SECONDS=1), so one process goes through the states."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.names import (
    CAPABILITIES_CONFIG_MAP_NAME,
    CAPABILITIES_CONFIG_MAP_NAMESPACE,
    CAPABILITIES_GROUP,
    CAPABILITIES_PLURAL,
    CAPABILITIES_VERSION,
    GROUP,
    SNAPSHOT_PLURAL,
    SUPERVISOR_CAPABILITIES_NAME,
    VERSION,
    VM_OPERATOR_SNAPSHOT_CAPABILITY,
)
from contract.payloads import VMRef, vm_queue_workflow_id
from runtime.coexistence import ALLOW_SETTING
from testbed.kube import ControlPlane, install_crds, product_crd_files
from testbed.process import Process
from testbed.product import Product
from testbed.vms import eventually, snapshot_manifest
from tests.fixtures.health import watch, watch_logs

CAPABILITIES_CRD = Path(__file__).parents[1] / "testdata" / "vm-operator" / "iaas.vmware.com_capabilities.yaml"
ON_IN_CAPABILITIES = (f"standing aside: VM Operator's own VirtualMachineSnapshot controller is on (Capabilities "
                      f"{SUPERVISOR_CAPABILITIES_NAME} ({CAPABILITIES_GROUP}): status.supervisor."
                      f"{VM_OPERATOR_SNAPSHOT_CAPABILITY}.activated is true), and two controllers would take every "
                      f"snapshot twice. Switch off the Supervisor capability {VM_OPERATOR_SNAPSHOT_CAPABILITY}, or set "
                      f"{ALLOW_SETTING}=true if VM Operator's controller leaves these objects alone")
ON_IN_CONFIG_MAP = (f"ConfigMap {CAPABILITIES_CONFIG_MAP_NAMESPACE}/{CAPABILITIES_CONFIG_MAP_NAME}: "
                    f'data.{VM_OPERATOR_SNAPSHOT_CAPABILITY} is "true"')


@pytest.fixture(scope="module")
def supervisor(testbed_dir: Path, request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    plane = ControlPlane(testbed_dir / f"coexistence-{uuid.uuid4().hex[:6]}", controller_manager=False).start()
    watch(request, plane.watched())
    try:
        with config.new_client_from_config(str(plane.kubeconfig)) as api:
            install_crds(api, [CAPABILITIES_CRD, *product_crd_files()])
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def supervisor_api(supervisor: ControlPlane) -> Iterator[client.ApiClient]:
    """The control plane's admin client; the test's Capabilities object and ConfigMap are removed after it."""
    api = config.new_client_from_config(str(supervisor.kubeconfig))
    yield api
    set_capability(api, None)
    set_config_map(api, None)
    api.close()


@pytest.fixture
def product_here(supervisor: ControlPlane, product_env: dict[str, str], tmp_path: Path) -> Iterator[Product]:
    running = Product(tmp_path, {**product_env, "KUBECONFIG": str(supervisor.kubeconfig),
                                 "VMSNAP_VM_OPERATOR_CHECK_SECONDS": "1", "VMSNAP_RESYNC_SECONDS": "2"})
    watch_logs(lambda: {p.part: p.log for p in running.processes})
    yield running
    running.stop()


def set_capability(api: client.ApiClient, activated: bool | None) -> None:
    """The Capabilities object as the Supervisor has it: the capability in spec (enabled, a build-time state) and
    its effective state in status, written through the status subresource. None: no object."""
    custom = client.CustomObjectsApi(api)
    args = (CAPABILITIES_GROUP, CAPABILITIES_VERSION, CAPABILITIES_PLURAL)
    if activated is None:
        try:
            custom.delete_cluster_custom_object(*args, SUPERVISOR_CAPABILITIES_NAME)
        except ApiException as e:
            if e.status != 404:
                raise
        return
    try:
        obj = custom.get_cluster_custom_object(*args, SUPERVISOR_CAPABILITIES_NAME)
    except ApiException as e:
        if e.status != 404:
            raise
        obj = custom.create_cluster_custom_object(*args, {
            "apiVersion": f"{CAPABILITIES_GROUP}/{CAPABILITIES_VERSION}", "kind": "Capabilities",
            "metadata": {"name": SUPERVISOR_CAPABILITIES_NAME},
            "spec": {"supervisor": [{"name": VM_OPERATOR_SNAPSHOT_CAPABILITY, "type": "Supervisor", "enabled": True},
                                    {"name": "supports_VM_service_VM_groups", "type": "Supervisor", "enabled": True}]}})
    obj["status"] = {"supervisor": {VM_OPERATOR_SNAPSHOT_CAPABILITY: {"activated": activated},
                                    "supports_VM_service_VM_groups": {"activated": True}}}
    written = custom.replace_cluster_custom_object_status(*args, SUPERVISOR_CAPABILITIES_NAME, obj)
    assert written["status"]["supervisor"][VM_OPERATOR_SNAPSHOT_CAPABILITY] == {"activated": activated}


def set_config_map(api: client.ApiClient, value: str | None) -> None:
    core = client.CoreV1Api(api)
    try:
        core.delete_namespaced_config_map(CAPABILITIES_CONFIG_MAP_NAME, CAPABILITIES_CONFIG_MAP_NAMESPACE)
    except ApiException as e:
        if e.status != 404:
            raise
    if value is not None:
        core.create_namespaced_config_map(CAPABILITIES_CONFIG_MAP_NAMESPACE, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=CAPABILITIES_CONFIG_MAP_NAME),
            data={VM_OPERATOR_SNAPSHOT_CAPABILITY: value, "MultipleCL_For_TKG_Supported": "true"}))


def readyz(process: Process) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.env['VMSNAP_HEALTH_PORT']}/readyz", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def becomes(process: Process, status: int, timeout: float = 60) -> str:
    """/readyz's answer once it has this status."""
    answer = eventually(lambda: (r := readyz(process))[0] == status and r, timeout, f"/readyz {status}")
    return answer[1]  # type: ignore[index]


def log_of(process: Process) -> str:
    return process.log.read_text(errors="replace")


async def queue_started(temporal: Client, vm: VMRef) -> bool:
    try:
        await temporal.get_workflow_handle(vm_queue_workflow_id(vm)).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


@pytest.mark.timeout(300)
async def test_the_bridge_stands_aside_while_vm_operators_snapshot_controller_is_on(
        supervisor_api, product_here, product_env, temporal_client):
    namespace = product_env["VMSNAP_WATCH_NAMESPACE"]
    client.CoreV1Api(supervisor_api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    set_capability(supervisor_api, True)
    bridge = product_here.start_bridge()
    assert await asyncio.to_thread(becomes, bridge, 503) == ON_IN_CAPABILITIES
    assert log_of(bridge).count(ON_IN_CAPABILITIES) == 1  # one line says the same, however often it is checked

    # a snapshot made meanwhile reaches nothing in Temporal: VM Operator's controller is the one acting
    client.CustomObjectsApi(supervisor_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SNAPSHOT_PLURAL, snapshot_manifest("while-aside", "my-vm"))
    vm = VMRef(namespace=namespace, name="my-vm")
    await asyncio.sleep(5)  # the watch event, two resyncs and three checks
    assert not await queue_started(temporal_client, vm)

    # switched off (activated false, the spec entry still enabled): ready, and the resync hands the snapshot over
    set_capability(supervisor_api, False)
    assert await asyncio.to_thread(becomes, bridge, 200) == "ok"
    deadline = time.monotonic() + 60
    while not await queue_started(temporal_client, vm):
        assert time.monotonic() < deadline, "the snapshot never reached Temporal once the bridge acted"
        await asyncio.sleep(0.5)
    assert "VM Operator's own VirtualMachineSnapshot controller is off: acting" in log_of(bridge)

    # the older Supervisors' ConfigMap says the same
    set_config_map(supervisor_api, "true")
    reason = await asyncio.to_thread(becomes, bridge, 503)
    assert reason.startswith("standing aside: VM Operator's own") and ON_IN_CONFIG_MAP in reason
    set_config_map(supervisor_api, "false")
    assert await asyncio.to_thread(becomes, bridge, 200) == "ok"


@pytest.mark.timeout(240)
def test_the_override_acts_beside_it_with_a_warning(supervisor_api, product_here):
    set_capability(supervisor_api, True)
    bridge = product_here.start_bridge(**{ALLOW_SETTING: "true"})
    assert becomes(bridge, 200) == "ok"
    warning = eventually(lambda: [line for line in log_of(bridge).splitlines()
                                  if f"{ALLOW_SETTING}=true: acting although" in line], 30, "the warning")
    assert len(warning) == 1 and "WARNING" in warning[0] and "activated is true" in warning[0]  # type: ignore[index]


@pytest.mark.timeout(240)
def test_nothing_found_acts_and_logs_what_could_not_be_read(supervisor_api, product_here):
    bridge = product_here.start_bridge()
    assert becomes(bridge, 200) == "ok"
    assert ("could not read, taken as off: Capabilities supervisor-capabilities (iaas.vmware.com): not found"
            in log_of(bridge))
    assert f"ConfigMap {CAPABILITIES_CONFIG_MAP_NAMESPACE}/{CAPABILITIES_CONFIG_MAP_NAME}: not found" in log_of(bridge)


@pytest.mark.timeout(240)
def test_the_worker_does_not_poll_while_it_is_on_and_polls_once_it_is_off(supervisor_api, product_here):
    set_capability(supervisor_api, True)
    worker = product_here.start_worker()
    assert becomes(worker, 503) == ON_IN_CAPABILITIES
    text = log_of(worker)
    assert "not polling task queue" in text and "worker polling task queue" not in text
    set_capability(supervisor_api, False)
    assert becomes(worker, 200) == "ok"
    eventually(lambda: "worker polling task queue" in log_of(worker), 30, "polling")
    # turned on again (an upgrade): the worker drains and stops polling
    set_capability(supervisor_api, True)
    assert becomes(worker, 503) == ON_IN_CAPABILITIES
    eventually(lambda: "standing aside: draining" in log_of(worker), 60, "the drain")
