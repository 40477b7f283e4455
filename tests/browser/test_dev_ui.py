"""The dev server's Temporal UI (the one `make dev` opens), in a real browser: what an operator sees of the product's
operations (tests/browser/scenarios.py)."""

from __future__ import annotations

import pytest

from tests.browser import scenarios
from tests.fixtures.product import take_sim_vm

pytestmark = pytest.mark.browser


async def test_a_ready_create_shows_its_summary_steps_and_details(ui, shoot, temporal_client, product, kube_api,
                                                                   namespace, vcsim, sim_vm):
    await scenarios.ready_create_reads_well(ui, shoot, temporal_client, kube_api, namespace, vcsim, sim_vm)


async def test_the_list_by_virtual_machine_shows_exactly_its_operations(ui, shoot, temporal_client, product,
                                                                        kube_api, namespace, vcsim):
    await scenarios.list_by_vm_shows_its_operations(ui, shoot, temporal_client, kube_api, namespace, vcsim,
                                                    (take_sim_vm(vcsim), take_sim_vm(vcsim)))


async def test_a_held_quiesced_create_shows_running_at_its_step(ui, shoot, temporal_client, product, kube_api,
                                                                namespace, vcsim, sim_vm):
    await scenarios.held_create_shows_running_step(ui, shoot, temporal_client, kube_api, namespace, vcsim, sim_vm)


async def test_a_failed_create_shows_the_words_of_its_condition(ui, shoot, product, kube_api, namespace, vcsim,
                                                                sim_vm):
    await scenarios.failed_create_shows_the_conditions_words(ui, shoot, kube_api, namespace, vcsim, sim_vm)


async def test_a_schedule_page_shows_its_spec_and_recent_runs(ui, shoot, temporal_client, product, kube_api,
                                                              namespace):
    await scenarios.schedule_page_shows_spec_and_runs(ui, shoot, temporal_client, kube_api, namespace)


async def test_after_a_worker_kill_the_retried_attempt_shows(ui, shoot, temporal_client, product, kube_api, namespace,
                                                             vcsim, sim_vm):
    await scenarios.retried_attempt_shows_after_a_worker_kill(ui, shoot, temporal_client, product, kube_api,
                                                              namespace, vcsim, sim_vm)
