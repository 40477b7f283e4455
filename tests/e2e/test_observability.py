"""What operators see: one trace per operation (bridge → queue → workflow → activities → vCenter task) with its
ID on the object, Kubernetes Events, Prometheus metrics, and readable workflows in Temporal."""

from __future__ import annotations

import urllib.request

from kubernetes import client
from temporalio.client import Client

from api.names import TRACE_ID_ANNOTATION, EventReason
from testbed.product import Product
from testbed.vms import create_vm, eventually, get_snapshot, snapshot_manifest
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready


def trace_of(spans: list[dict], trace_id: str) -> dict[str, dict]:
    return {s["context"]["span_id"]: s for s in spans if s["context"]["trace_id"] == f"0x{trace_id}"}


def ancestry(span: dict, by_id: dict[str, dict]) -> list[str]:
    names = [span["name"]]
    while span.get("parent_id") in by_id:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


def path_to_root(product: Product, trace_id: str, leaf: str) -> list[str] | None:
    """Span names from `leaf` up to the trace's root, once the root is a bridge span. Workflow spans are
    exported when their workflow completes, so the chain fills in a little after the object changes."""
    by_id = trace_of(product.spans(), trace_id)
    for span in by_id.values():
        if span["name"] == leaf:
            path = ancestry(span, by_id)
            if path[-1].startswith("bridge "):
                return path
    return None


def scrape(process) -> str:
    port = process.env["VMSNAP_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


async def test_a_create_is_one_trace_with_events_metrics_and_a_readable_workflow(
        product: Product, kube_api, namespace, vcsim, sim_vm, temporal_client: Client):
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.set_tools_running(sim_vm, True)
    create(kube_api, namespace, snapshot_manifest("traced", "my-vm", memory=True, queisce={"timeout": "10min"}))
    snapshot = eventually(lambda: ready(kube_api, namespace, "traced"))

    # the trace: its ID is on the object, and it runs from the bridge down to the vCenter task
    trace_id = snapshot.metadata.annotations[TRACE_ID_ANNOTATION]
    task_path = eventually(lambda: path_to_root(product, trace_id, "vCenter task: create snapshot"),
                           what="the vCenter task span in the object's trace, under the bridge's span")
    assert "RunActivity:vsphere_create_snapshot" in task_path
    assert "RunWorkflow:CreateSnapshot" in task_path
    assert any(name.startswith("queue CreateSnapshot") for name in task_path)
    activities = {s["name"] for s in trace_of(product.spans(), trace_id).values()}
    assert {"RunActivity:kube_prepare_snapshot", "RunActivity:vsphere_store_snapshot_extra_config",
            "RunActivity:kube_update_snapshot_status"} <= activities

    # Kubernetes Events tell the story in `kubectl describe`
    def reasons():
        events = client.CoreV1Api(kube_api).list_namespaced_event(
            namespace, field_selector="involvedObject.name=traced").items
        return {e.reason for e in events}
    eventually(lambda: {EventReason.SNAPSHOT_CREATED, EventReason.CSI_VOLUMES_SYNCED,
                        EventReason.SNAPSHOT_READY} <= reasons(), what="events recorded")

    # metrics: Temporal's own and ours, on the worker; the bridge's on the bridge
    worker_metrics = scrape(product.processes[0])
    assert 'vmsnap_operations' in worker_metrics and 'kind="create"' in worker_metrics
    assert "vmsnap_vcenter_task_seconds" in worker_metrics
    assert "temporal_activity_execution_latency" in worker_metrics
    bridge_metrics = scrape(product.processes[1])
    assert 'vmsnap_bridge_operations_sent_total{operation="CreateSnapshot"}' in bridge_metrics

    # the Temporal UI: a summary a human reads, and search attributes to find every operation on the VM
    workflow_id = created_workflow_id(kube_api, namespace, "traced")
    description = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert await description.static_summary() == "snapshot traced of my-vm: memory, quiesce 10m"
    found = [w.id async for w in temporal_client.list_workflows(
        f"VirtualMachine = 'my-vm' AND KubernetesNamespace = '{namespace}' AND SnapshotOperation = 'CreateSnapshot'")]
    assert found == [workflow_id]
    assert get_snapshot(kube_api, namespace, "traced").is_ready


def test_a_revert_is_one_trace_from_the_vm_change_to_the_vcenter_task(product: Product, kube_api, namespace, vcsim,
                                                                      sim_vm):
    from tests.e2e.test_revert_delete import revert
    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    create(kube_api, namespace, snapshot_manifest("target", "my-vm", memory=True))
    eventually(lambda: ready(kube_api, namespace, "target"))
    vm = revert(kube_api, namespace, "target")

    trace_id = vm.metadata.annotations[TRACE_ID_ANNOTATION]
    task_path = eventually(lambda: path_to_root(product, trace_id, "vCenter task: revert to snapshot"),
                           what="the vCenter revert task span in the VM's trace, under the bridge's span")
    assert task_path[-1] == "bridge MODIFIED virtualmachines", task_path
    assert "RunActivity:vsphere_revert_snapshot" in task_path and "RunWorkflow:RevertSnapshot" in task_path
    # events are written in the background: they follow the revert, not necessarily before it is visible
    eventually(lambda: EventReason.SNAPSHOT_REVERTED in {e.reason for e in client.CoreV1Api(
        kube_api).list_namespaced_event(namespace, field_selector="involvedObject.name=my-vm").items},
        what="the SnapshotReverted event on the VM")
