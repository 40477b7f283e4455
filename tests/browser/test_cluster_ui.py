"""The Temporal UI server beside the four-service cluster (testbed/temporal_ui.py: what operators run with a
self-hosted Temporal), in a real browser: the same checks as on the dev server's UI (tests/browser/scenarios.py), with
the product on the cluster and its objects linked to this UI. Marked `cluster`; those on the session's cluster run in
its session. And `make dev --temporal cluster`, whose stack is its own, prints a UI address that works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from testbed.temporal_cluster import TemporalCluster
from tests.browser import scenarios
from tests.fixtures.product import take_sim_vm

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


@pytest.fixture
def temporal_ui_url(temporal_cluster: TemporalCluster) -> str:
    return temporal_cluster.ui_url


@pytest.fixture
def product_env(product_env: dict[str, str], temporal_cluster: TemporalCluster) -> dict[str, str]:
    return {**product_env, "TEMPORAL_ADDRESS": temporal_cluster.address}


@pytest.fixture
async def cluster_client(temporal_cluster: TemporalCluster) -> AsyncIterator[Client]:
    yield await Client.connect(temporal_cluster.address, namespace=temporal_cluster.namespace,
                               data_converter=pydantic_data_converter)


async def test_a_ready_create_shows_its_summary_steps_and_details(ui, shoot, cluster_client, product, kube_api,
                                                                   namespace, vcsim, sim_vm):
    await scenarios.ready_create_reads_well(ui, shoot, cluster_client, kube_api, namespace, vcsim, sim_vm)


async def test_the_list_by_virtual_machine_shows_exactly_its_operations(ui, shoot, cluster_client, product,
                                                                        kube_api, namespace, vcsim):
    await scenarios.list_by_vm_shows_its_operations(ui, shoot, cluster_client, kube_api, namespace, vcsim,
                                                    (take_sim_vm(vcsim), take_sim_vm(vcsim)))


async def test_a_held_quiesced_create_shows_running_at_its_step(ui, shoot, cluster_client, product, kube_api,
                                                                namespace, vcsim, sim_vm):
    await scenarios.held_create_shows_running_step(ui, shoot, cluster_client, kube_api, namespace, vcsim, sim_vm)


async def test_a_failed_create_shows_the_words_of_its_condition(ui, shoot, product, kube_api, namespace, vcsim,
                                                                sim_vm):
    await scenarios.failed_create_shows_the_conditions_words(ui, shoot, kube_api, namespace, vcsim, sim_vm)


@pytest.mark.timeout(900)
async def test_make_dev_with_the_cluster_prints_a_working_ui_address(page, shoot, tmp_path):
    """`make dev DEV_ARGS="--temporal cluster"`: the printed Temporal UI address is the UI server beside the cluster,
    the env file's TEMPORAL_UI_URL names it, and it shows the product's workflows (the worker's tree watch)."""
    import re

    from tests.browser.ui import TemporalUI
    from tests.e2e.test_dev_stack import DevCommand

    dev = DevCommand(tmp_path, "--temporal", "cluster")
    dev.start()
    try:
        await asyncio.to_thread(dev.wait_up)
        printed = re.search(r"Temporal UI\s+(http://\S+) \(the UI server beside the cluster\)", dev.text())
        assert printed, dev.text()
        assert dev.env()["TEMPORAL_UI_URL"] == printed[1]
        assert "temporal-ui" in dev.parts()
        cluster_ui = TemporalUI(page, printed[1])
        await cluster_ui.open(cluster_ui.workflow_list_url("WorkflowType = 'SnapshotTreeWatch'"))
        await cluster_ui.shows("snapshot-tree-watch/", "2.58.1")
        await shoot("list")
    finally:
        assert await asyncio.to_thread(dev.interrupt) == 0, dev.text()
