"""A scheduled run's calls to Temporal about its own Schedule: its next run time (for the object's status), the
pause after too many failed runs, and its removal when the object is gone."""

from __future__ import annotations

from datetime import datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contract.schedule_payloads import SchedulePause


class ScheduleTemporalActivities:
    def __init__(self, client: Client):
        self.client = client

    @activity.defn(name="temporal_schedule_next_run")
    async def next_run_time(self, schedule_id: str) -> datetime | None:
        try:
            description = await self.client.get_schedule_handle(schedule_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if description.schedule.state.paused:
            return None
        times = description.info.next_action_times
        return min(times) if times else None

    @activity.defn(name="temporal_pause_schedule")
    async def pause_schedule(self, pause: SchedulePause) -> None:
        await self.client.get_schedule_handle(pause.schedule_id).pause(note=pause.note)

    @activity.defn(name="temporal_delete_schedule")
    async def delete_schedule(self, schedule_id: str) -> None:
        try:
            await self.client.get_schedule_handle(schedule_id).delete()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
