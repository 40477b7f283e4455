"""The worker process: one vCenter session re-established when vCenter ends it, health endpoints, and a
SIGTERM that drains and exits cleanly while the operation finishes on another worker."""

from __future__ import annotations

import asyncio
import urllib.request

from pyVim.connect import Disconnect
from pyVmomi import vim

from activities.vsphere.properties import retrieve, virtual_machine
from runtime.settings import Settings
from runtime.vsphere import VSphereSession
from testbed.product import Product
from testbed.vms import connect, create_vm, eventually, snapshot_manifest, vsphere_snapshot_names
from tests.e2e.test_create_snapshot import create, created_workflow_id, ready
from tests.e2e.test_durability import SLOW_TASK_SECONDS, wait_for_running_task


def test_vcenter_session_is_reused_and_reestablished_after_expiry(vcsim, sim_vm):
    session = VSphereSession(Settings(VSPHERE_URL=vcsim.url, VSPHERE_INSECURE=True))
    moref = vcsim.control.vms()[sim_vm]

    def power(si: vim.ServiceInstance) -> str:
        return str(retrieve(si, virtual_machine(si, moref), ["runtime.powerState"])["runtime.powerState"])

    first_si = session.service_instance()
    assert session.run(power) and session.service_instance() is first_si  # one login, reused
    key = first_si.content.sessionManager.currentSession.key
    admin = connect(vcsim)
    try:
        admin.content.sessionManager.TerminateSession([key])               # vCenter ends our session
    finally:
        Disconnect(admin)
    assert session.run(power)                                              # logged in again, call succeeded
    assert session.service_instance() is not first_si
    session.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_sigterm_drains_and_another_worker_finishes(product: Product, kube_api, namespace, vcsim, sim_vm,
                                                          temporal_client):
    worker = product.processes[0]
    health = f"http://127.0.0.1:{worker.env['VMSNAP_HEALTH_PORT']}"
    assert get(f"{health}/healthz")[0] == 200 and get(f"{health}/readyz")[0] == 200

    create_vm(kube_api, vcsim, namespace, "my-vm", sim_vm)
    vcsim.control.delay("CreateSnapshotEx_Task", sim_vm, SLOW_TASK_SECONDS, count=1)
    create(kube_api, namespace, snapshot_manifest("drained", "my-vm"))
    workflow_id = await asyncio.to_thread(eventually, lambda: created_workflow_id(kube_api, namespace, "drained"))
    await asyncio.wait_for(wait_for_running_task(temporal_client, workflow_id), timeout=120)

    await asyncio.to_thread(worker.stop, 60)                               # SIGTERM: drain, then exit
    assert worker.popen.returncode == 0, worker.log.read_text()[-2000:]
    assert "shutting down" in worker.log.read_text()
    product.start_worker()
    await asyncio.to_thread(eventually, lambda: ready(kube_api, namespace, "drained"), 240, "Ready")
    assert vsphere_snapshot_names(vcsim, sim_vm) == ["drained"]
