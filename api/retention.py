"""Which of a schedule's snapshots of one VM to keep: a pure function of the snapshots' times, the rules, the
time zone and `now` (grandfather-father-son, as restic's and borg's `prune`).

Rules (any may be combined; a snapshot is kept when any count rule keeps it):
  * keepLast N: the N newest;
  * hourly / daily / weekly / monthly N: the newest snapshot of each of the N newest hours / days / ISO weeks /
    months that hold a snapshot, in the schedule's time zone (wall-clock periods: a DST day of 23 or 25 hours is
    one day; the hour repeated when clocks go back is two hours, told apart by their UTC offset);
  * maxAge: a cap, not a count: nothing older is kept, whatever a count rule says; alone, it keeps everything
    younger.
Only Ready snapshots the schedule made are given to it; whoever calls it also never deletes a snapshot a VM's
spec.currentSnapshotName names.

Failed snapshots (objects whose create failed: no vSphere snapshot behind them) have a rule of their own,
keepFailed N: the N newest failed objects of each VM stay (so the newest failure stays visible), the older ones are
pruned; the count rules and maxAge above never see them, and a snapshot still being made is neither Ready nor
failed, so no rule ever prunes it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class RetentionRules:
    keep_last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    max_age: timedelta | None = None

    @property
    def keeps_something(self) -> bool:
        counts = (self.keep_last, self.hourly, self.daily, self.weekly, self.monthly)
        if self.max_age is not None and self.max_age <= timedelta(0):
            return False
        return any(n > 0 for n in counts) or self.max_age is not None

    @property
    def has_counts(self) -> bool:
        return any(n > 0 for n in (self.keep_last, self.hourly, self.daily, self.weekly, self.monthly))


@dataclass(frozen=True)
class Taken:
    """One snapshot: its name and when it was taken (an aware datetime)."""

    name: str
    at: datetime


def _hour(local: datetime) -> Hashable:
    return (local.date(), local.hour, local.utcoffset())


def _day(local: datetime) -> Hashable:
    return local.date()


def _week(local: datetime) -> Hashable:
    iso = local.isocalendar()
    return (iso.year, iso.week)


def _month(local: datetime) -> Hashable:
    return (local.year, local.month)


def to_keep(snapshots: Sequence[Taken], rules: RetentionRules, now: datetime, zone: ZoneInfo) -> set[str]:
    """The names to keep; every other name is to be pruned."""
    newest_first = sorted(snapshots, key=lambda s: (s.at, s.name), reverse=True)
    if rules.has_counts:
        keep = {s.name for s in newest_first[:rules.keep_last]}
        periods: tuple[tuple[int, Callable[[datetime], Hashable]], ...] = (
            (rules.hourly, _hour), (rules.daily, _day), (rules.weekly, _week), (rules.monthly, _month))
        for count, period in periods:
            seen: set[Hashable] = set()
            for snapshot in newest_first:
                if len(seen) >= count:
                    break
                key = period(snapshot.at.astimezone(zone))
                if key not in seen:
                    seen.add(key)
                    keep.add(snapshot.name)
    else:
        keep = {s.name for s in newest_first} if rules.max_age is not None else set()
    if rules.max_age is not None:
        keep = {s.name for s in newest_first if s.name in keep and now - s.at <= rules.max_age}
    return keep


def to_prune(snapshots: Sequence[Taken], rules: RetentionRules, now: datetime, zone: ZoneInfo) -> list[str]:
    """The names to delete, oldest first."""
    keep = to_keep(snapshots, rules, now, zone)
    return [s.name for s in sorted(snapshots, key=lambda s: (s.at, s.name)) if s.name not in keep]


def failed_to_prune(failed: Sequence[Taken], keep: int) -> list[str]:
    """Of one VM's failed snapshots, the names to delete, oldest first: all but the `keep` newest."""
    oldest_first = sorted(failed, key=lambda s: (s.at, s.name))
    return [s.name for s in oldest_first[:max(0, len(oldest_first) - max(0, keep))]]
