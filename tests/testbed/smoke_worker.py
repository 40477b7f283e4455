"""A throwaway worker for the Temporal smoke test: one workflow, one heartbeating activity that resumes
from its last checkpoint. Run as `python -m tests.testbed.smoke_worker ADDRESS TASK_QUEUE`."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

STEPS = 30


@activity.defn
async def count_steps(steps: int) -> dict:
    details = activity.info().heartbeat_details
    start = details[0] if details else 0
    for step in range(start, steps):
        activity.heartbeat(step)
        await asyncio.sleep(0.2)
    return {"attempt": activity.info().attempt, "resumed_from": start}


@workflow.defn
class CountSteps:
    @workflow.run
    async def run(self, steps: int) -> dict:
        return await workflow.execute_activity(
            count_steps, steps, start_to_close_timeout=timedelta(minutes=2), heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)))


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[CountSteps], activities=[count_steps]):
        print("worker running", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
