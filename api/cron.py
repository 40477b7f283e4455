"""The schedule expressions a VirtualMachineSnapshotSchedule accepts: parse, check, and the shortest interval
between two runs (what the spread window is checked against).

Accepted, as Temporal's schedules accept them:
  * five-field cron: `minute hour day-of-month month day-of-week`, with `*`, `?`, numbers, ranges `a-b`, steps
    `*/s` `a-b/s` `a/s`, lists `a,b`, month names `jan`-`dec`, weekday names `sun`-`sat` (0 and 7 are Sunday);
  * the macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`;
  * `@every DURATION` (robfig/cron's and Temporal's extension, e.g. `@every 6h`, `@every 30s`): a fixed interval
    counted from the Unix epoch, so it is the one way to run more often than once a minute.
Times are wall-clock times in the schedule's time zone. Pure stdlib, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from .duration import parse_duration_seconds
from .schedule_names import SPEC_SCHEDULE_PATH

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
EVERY = "@every"
MIN_EVERY_SECONDS = 1

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_WEEKDAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# every weekday falls on every date within 28 years (the Gregorian calendar's 400-year cycle aside), and 2000-2027
# holds leap days: enough days to see every gap a five-field expression can make
_SCAN_START, _SCAN_DAYS = date(2000, 1, 1), 28 * 366


@dataclass(frozen=True)
class ParsedSchedule:
    """A checked expression: `cron` (five fields, macros expanded) or `every_seconds`; and the shortest time
    between two runs, in seconds."""

    cron: str | None
    every_seconds: int | None
    min_interval_seconds: int


def parse_schedule(text: str, *, field: str = SPEC_SCHEDULE_PATH) -> ParsedSchedule:
    """ValueError, naming `field`, if `text` is not an accepted expression or never fires."""
    body = " ".join(str(text).split())
    if not body:
        raise ValueError(f"{field} is empty: write a cron expression such as '0 2 * * *' or '@every 6h'")
    lowered = body.lower()
    if lowered.startswith(EVERY + " ") or lowered == EVERY:
        duration = body[len(EVERY):].strip()
        if not duration:
            raise ValueError(f"{field} {text!r}: @every needs a duration, e.g. '@every 6h'")
        seconds = parse_duration_seconds(duration, field=field)
        if seconds < MIN_EVERY_SECONDS or seconds.denominator != 1:
            raise ValueError(f"{field} {text!r}: @every needs a whole number of seconds, at least "
                             f"{MIN_EVERY_SECONDS}")
        return ParsedSchedule(cron=None, every_seconds=int(seconds), min_interval_seconds=int(seconds))
    if lowered.startswith("@"):
        if lowered not in MACROS:
            raise ValueError(f"{field} {text!r}: unknown macro; accepted: {', '.join(MACROS)}, @every DURATION")
        body = MACROS[lowered]
    parts = body.split(" ")
    if len(parts) != len(_FIELDS):
        raise ValueError(f"{field} {text!r} has {len(parts)} fields; a cron expression has 5: minute hour "
                         f"day-of-month month day-of-week (or use @every DURATION)")
    sets = [_parse_field(part, name, low, high, field, text) for part, (name, low, high) in zip(parts, _FIELDS)]
    minutes, hours, days, months, weekdays = sets
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    times = sorted(h * 60 + m for h in hours for m in minutes)
    day_restricted, weekday_restricted = parts[2] not in ("*", "?"), parts[4] not in ("*", "?")
    matching: list[int] = []
    for offset in range(_SCAN_DAYS):
        day = _SCAN_START + timedelta(days=offset)
        if day.month not in months:
            continue
        in_month, in_week = day.day in days, (day.isoweekday() % 7) in weekdays
        # both restricted: either matches (classic cron); this is also the shorter interval, so the spread window
        # check errs on the safe side whichever way a scheduler reads it
        if (in_month or in_week) if day_restricted and weekday_restricted else (in_month and in_week):
            matching.append(offset)
    if not matching:
        raise ValueError(f"{field} {text!r} never fires (no such date)")
    gaps = [b - a for a, b in zip(times, times[1:])]
    gaps += [(d2 - d1) * 1440 - times[-1] + times[0] for d1, d2 in zip(matching, matching[1:])]
    return ParsedSchedule(cron=" ".join(parts), every_seconds=None, min_interval_seconds=min(gaps) * 60)


def _parse_field(part: str, name: str, low: int, high: int, field: str, text: str) -> set[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _parse_item(item, name, low, high, field, text)
    return values


def _parse_item(item: str, name: str, low: int, high: int, field: str, text: str) -> set[int]:
    def bad(why: str) -> ValueError:
        return ValueError(f"{field} {text!r}: {name} {item!r} {why}")

    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise bad("has a step that is not a positive number")
        step = int(step_text)
    if base in ("*", "?"):
        start, end = low, high
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = _value(first, name, low, high, bad), _value(last, name, low, high, bad)
        if start > end:
            raise bad("is a range that ends before it starts")
    else:
        start = _value(base, name, low, high, bad)
        end = high if step_text else start
    return set(range(start, end + 1, step))


def _value(text: str, name: str, low: int, high: int, bad: Callable[[str], ValueError]) -> int:
    lowered = text.lower()
    if name == "month" and lowered in _MONTHS:
        return _MONTHS[lowered]
    if name == "day-of-week" and lowered in _WEEKDAYS:
        return _WEEKDAYS[lowered]
    if not lowered.isdigit():
        raise bad("is not a number" + (" or a name" if name in ("month", "day-of-week") else ""))
    value = int(lowered)
    if not low <= value <= high:
        raise bad(f"is out of range {low}-{high}")
    return value
