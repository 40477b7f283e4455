"""The fixture of the workflow tests: workers with fake activities on the session's Temporal dev server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.workflows.fakes import Harness, harness


@pytest.fixture
async def wf(temporal_client: Client) -> AsyncIterator[Harness]:
    """Workers with the fakes on a task queue of their own, and a VM of its own (`wf.vm`)."""
    async with harness(temporal_client) as h:
        yield h
