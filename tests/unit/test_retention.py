"""Retention rules (api/retention.py): counts, grandfather-father-son periods in the schedule's time zone, DST
changes, month ends, maxAge as a cap; failed snapshots by keepFailed alone."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from api.retention import RetentionRules, Taken, failed_to_prune, to_keep, to_prune

UTCZ = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def series(start: datetime, step: timedelta, n: int) -> list[Taken]:
    return [Taken(f"s{i:03d}", start + i * step) for i in range(n)]


def names(snapshots: list[Taken], *indexes: int) -> set[str]:
    return {snapshots[i].name for i in indexes}


def test_keep_last_keeps_the_newest_n():
    snaps = series(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 10)
    assert to_keep(snaps, RetentionRules(keep_last=3), snaps[-1].at, UTCZ) == names(snaps, 7, 8, 9)
    assert to_prune(snaps, RetentionRules(keep_last=3), snaps[-1].at, UTCZ) == [s.name for s in snaps[:7]]


def test_fewer_snapshots_than_the_rules_keep_everything():
    snaps = series(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 2)
    assert to_prune(snaps, RetentionRules(keep_last=5, daily=7), snaps[-1].at, UTCZ) == []


def test_daily_keeps_the_newest_of_each_of_the_last_n_days():
    # every 6 hours for 4 days: the newest of each day is the 18:00 one
    snaps = series(datetime(2026, 3, 1, tzinfo=UTC), timedelta(hours=6), 16)
    assert to_keep(snaps, RetentionRules(daily=3), snaps[-1].at, UTCZ) == names(snaps, 15, 11, 7)


def test_rules_combine_as_a_union():
    snaps = series(datetime(2026, 3, 1, tzinfo=UTC), timedelta(hours=6), 16)
    assert to_keep(snaps, RetentionRules(keep_last=2, daily=3), snaps[-1].at, UTCZ) == names(snaps, 15, 14, 11, 7)


def test_days_are_the_schedule_time_zones_days():
    # 23:30 UTC is 00:30 the next day in Paris (winter, UTC+1)
    snaps = [Taken("a", datetime(2026, 1, 10, 22, 0, tzinfo=UTC)),
             Taken("b", datetime(2026, 1, 10, 23, 30, tzinfo=UTC))]
    assert to_keep(snaps, RetentionRules(daily=1), snaps[-1].at, UTCZ) == {"b"}
    assert to_keep(snaps, RetentionRules(daily=2), snaps[-1].at, UTCZ) == {"b"}       # one UTC day
    assert to_keep(snaps, RetentionRules(daily=2), snaps[-1].at, PARIS) == {"a", "b"}  # two Paris days


def test_month_ends_in_the_time_zone():
    # the last instant of January in UTC is already February in Paris
    jan31 = Taken("jan31", datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    late = Taken("late", datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    feb = Taken("feb", datetime(2026, 2, 15, 12, 0, tzinfo=UTC))
    snaps = [jan31, late, feb]
    assert to_keep(snaps, RetentionRules(monthly=2), feb.at, UTCZ) == {"late", "feb"}
    assert to_keep(snaps, RetentionRules(monthly=2), feb.at, PARIS) == {"jan31", "feb"}


def test_monthly_over_short_and_leap_months():
    # the last day of each month of 2028 (a leap year: February 29) and the first of the next, at noon UTC
    ends = [datetime(2028, m, calendar.monthrange(2028, m)[1], 12, tzinfo=UTC) for m in range(1, 13)]
    snaps = [Taken(f"end-{d:%m}", d) for d in ends] + [Taken(f"first-{d:%m}", d + timedelta(days=1)) for d in ends]
    assert ends[1].day == 29
    now = snaps[-1].at  # 2029-01-01
    # the three newest months: January 2029, December, November; the newest of each
    assert to_keep(snaps, RetentionRules(monthly=3), now, UTCZ) == {"first-12", "end-12", "end-11"}
    # 13 months hold a snapshot: keeping 13 keeps one per month, each month's last
    kept = to_keep(snaps, RetentionRules(monthly=13), now, UTCZ)
    assert kept == {"first-12"} | {f"end-{m:02d}" for m in range(1, 13)}


def test_weekly_uses_iso_weeks():
    # Sunday 2026-01-04 is the last day of ISO week 1; Monday 2026-01-05 starts week 2
    sunday = Taken("sun", datetime(2026, 1, 4, 12, tzinfo=UTC))
    saturday = Taken("sat", datetime(2026, 1, 3, 12, tzinfo=UTC))
    monday = Taken("mon", datetime(2026, 1, 5, 12, tzinfo=UTC))
    assert to_keep([saturday, sunday, monday], RetentionRules(weekly=2), monday.at, UTCZ) == {"sun", "mon"}


def test_dst_spring_forward_day_is_one_day():
    # New York, 2026-03-08: 02:00 → 03:00; every hour of that 23-hour day falls in one daily bucket
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    snaps = series(start, timedelta(hours=1), 23)
    assert {s.at.astimezone(NEW_YORK).date() for s in snaps} == {start.astimezone(NEW_YORK).date()}
    assert to_keep(snaps, RetentionRules(daily=1), snaps[-1].at, NEW_YORK) == names(snaps, 22)
    assert len(to_keep(snaps, RetentionRules(hourly=48), snaps[-1].at, NEW_YORK)) == 23


def test_dst_fall_back_repeated_hour_is_two_hours():
    # New York, 2026-11-01: 01:00-02:00 happens twice (EDT then EST)
    first = Taken("edt", datetime(2026, 11, 1, 5, 30, tzinfo=UTC))   # 01:30 EDT
    second = Taken("est", datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST
    assert first.at.astimezone(NEW_YORK).hour == second.at.astimezone(NEW_YORK).hour == 1
    assert to_keep([first, second], RetentionRules(hourly=2), second.at, NEW_YORK) == {"edt", "est"}
    assert to_keep([first, second], RetentionRules(hourly=1), second.at, NEW_YORK) == {"est"}
    # a 25-hour day is still one day
    day = series(datetime(2026, 11, 1, 4, 0, tzinfo=UTC), timedelta(hours=1), 25)
    assert to_keep(day, RetentionRules(daily=1), day[-1].at, NEW_YORK) == names(day, 24)


def test_max_age_alone_keeps_everything_younger():
    now = datetime(2026, 5, 1, tzinfo=UTC)
    snaps = series(now - timedelta(days=10), timedelta(days=1), 11)
    assert to_keep(snaps, RetentionRules(max_age=timedelta(days=3)), now, UTCZ) == names(snaps, 7, 8, 9, 10)


def test_max_age_caps_the_counts():
    now = datetime(2026, 5, 1, tzinfo=UTC)
    snaps = series(now - timedelta(days=10), timedelta(days=1), 11)
    assert to_keep(snaps, RetentionRules(daily=7, max_age=timedelta(days=2)), now, UTCZ) == names(snaps, 8, 9, 10)


def test_what_keeps_nothing():
    assert not RetentionRules().keeps_something
    assert not RetentionRules(keep_last=0, daily=0).keeps_something
    assert not RetentionRules(max_age=timedelta(0)).keeps_something
    assert RetentionRules(monthly=1).keeps_something
    assert RetentionRules(max_age=timedelta(hours=1)).keeps_something


def test_keep_failed_keeps_the_newest_n_failures_and_prunes_the_rest_oldest_first():
    failed = series(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1), 5)
    shuffled = [failed[i] for i in (3, 0, 4, 1, 2)]
    assert failed_to_prune(shuffled, 1) == [s.name for s in failed[:4]], "the newest failure stays"
    assert failed_to_prune(shuffled, 2) == [s.name for s in failed[:3]]
    assert failed_to_prune(shuffled, 0) == [s.name for s in failed]
    assert failed_to_prune(shuffled, 5) == failed_to_prune(shuffled, 32) == []
    assert failed_to_prune([], 1) == []
    # two failures of one scheduled time (not made by one schedule, but the order is total): by name
    twins = [Taken("b", failed[0].at), Taken("a", failed[0].at)]
    assert failed_to_prune(twins, 1) == ["a"]
