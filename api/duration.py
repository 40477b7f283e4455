"""The quiesce timeout: parse the forms users write, normalise to vSphere's whole minutes, check vSphere's bounds.

Accepted forms (case-insensitive, optional spaces around numbers and units):
  * Go durations, as VM Operator accepts them: `10m`, `1h30m`, `90s`, `1.5h`, `0` (units ns, us, µs, ms, s, m, h);
  * the same with words: `10min`, `10mins`, `10 minutes`, `1 hour 30 minutes`, `2 hrs`, `90 sec`;
  * ISO-8601 durations: `PT10M`, `PT1H30M`, `P1DT2H` (days, hours, minutes, seconds; no years, months, weeks,
    whose length is not fixed).
A leading sign is recognised only to refuse negative values with a message that says so.

Rounding: vSphere takes whole minutes, so a timeout with seconds is rounded UP to the next whole minute (`90s` is
2 minutes, `4m1s` is 5). Rounding up never gives the guest less time than the user asked for. The bounds are
checked on the rounded value, because that is what vSphere receives.

Pure stdlib and deterministic, so workflows may call it. The webhook calls `quiesce_timeout_problem`.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .limits import DEFAULT_QUIESCE_TIMEOUT_MINUTES, MAX_QUIESCE_TIMEOUT_MINUTES, MIN_QUIESCE_TIMEOUT_MINUTES
from .names import SPEC_QUIESCE_TIMEOUT_PATH

# The grammar is written once, as a regular expression in the common subset of Python's `re` and RE2 (the regex
# engine of CEL's matches()): no backslashes, no lookarounds. The CRD's CEL rule on the timeout uses this exact
# string, and a unit test checks that the CRD still does, so admission and the workers agree on what parses.
_NUMBER = "(?:[0-9]*[.])?[0-9]+"  # 10, 1.5, .5 (not Go's rare "1.": digits must follow the point)
_UNIT = "(?:ns|us|µs|μs|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)"
_UNITS_FORM = f"{_NUMBER} *{_UNIT}(?: *{_NUMBER} *{_UNIT})*"
_ISO_TIME = f"T(?:{_NUMBER}H(?:{_NUMBER}M)?(?:{_NUMBER}S)?|{_NUMBER}M(?:{_NUMBER}S)?|{_NUMBER}S)"
_ISO_FORM = f"P(?:{_NUMBER}D(?:{_ISO_TIME})?|{_ISO_TIME})"
TIMEOUT_PATTERN = f"(?i)^ *[-+]?(?:0|{_UNITS_FORM}|{_ISO_FORM}) *$"

ACCEPTED_FORMS = ("Go durations (10m, 1h30m, 90s), words (10min, 10 minutes, 1 hour) "
                  "or ISO-8601 (PT10M, PT1H30M)")

_TIMEOUT_RE = re.compile(TIMEOUT_PATTERN)
# Extraction only, on text the pattern above has accepted. The lookahead makes each unit match whole
# (`10min` is minutes, never `10m` followed by garbage), which the anchored pattern achieves by itself.
_UNITS_COMPONENT_RE = re.compile(f"({_NUMBER}) *({_UNIT})(?![a-zµμ])", re.IGNORECASE)
_ISO_PARTS_RE = re.compile(
    f"P(?:(?P<days>{_NUMBER})D)?(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?"
    f"(?:(?P<seconds>{_NUMBER})S)?)?", re.IGNORECASE)
_BARE_NUMBER_RE = re.compile(f" *[-+]?{_NUMBER} *")
_ISO_MONTHS_RE = re.compile(f" *[-+]?P{_NUMBER}M.*", re.IGNORECASE)

_SECONDS_PER_UNIT: dict[str, Fraction] = {
    **dict.fromkeys(("ns",), Fraction(1, 10**9)),
    **dict.fromkeys(("us", "µs", "μs"), Fraction(1, 10**6)),
    **dict.fromkeys(("ms",), Fraction(1, 10**3)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), Fraction(1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), Fraction(60)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), Fraction(3600)),
}
_ISO_SECONDS_PER_PART = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


# why a quiesce timeout must be positive, said when it is not
QUIESCE_TIMEOUT_NEEDED = (f"vSphere needs a quiesce timeout of {MIN_QUIESCE_TIMEOUT_MINUTES} to "
                          f"{MAX_QUIESCE_TIMEOUT_MINUTES} minutes")


def parse_duration_seconds(text: str, *, field: str = SPEC_QUIESCE_TIMEOUT_PATH,
                           needed: str = QUIESCE_TIMEOUT_NEEDED) -> Fraction:
    """The exact length of `text` in seconds. ValueError, naming `field`, if it is malformed, zero or negative
    (then saying `needed`: why the field must be a positive duration)."""
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a string such as 10m, not {type(text).__name__} {text!r}")
    body = text.strip(" ")
    if not body:
        raise ValueError(f"{field} is empty: write a duration such as 10m; accepted: {ACCEPTED_FORMS}")
    if not _TIMEOUT_RE.fullmatch(text):
        raise ValueError(_malformed_message(text, field))
    negative = body[0] == "-"
    unsigned = body.lstrip("+-").strip(" ")
    seconds = _iso_seconds(unsigned) if unsigned[0] in "pP" else _units_seconds(unsigned)
    if seconds == 0:
        raise ValueError(f"{field} {text!r} is zero: {needed}")
    if negative:
        raise ValueError(f"{field} {text!r} is negative: {needed}")
    return seconds


def minutes_rounded_up(seconds: Fraction) -> int:
    """Whole minutes, rounding any part of a minute up: vSphere's unit, never shorter than asked."""
    return math.ceil(seconds / 60)


def parse_timeout_minutes(text: str, *, field: str = SPEC_QUIESCE_TIMEOUT_PATH) -> int:
    """`text` as whole minutes (rounded up). ValueError if malformed, zero or negative; bounds are not checked."""
    return minutes_rounded_up(parse_duration_seconds(text, field=field))


def quiesce_timeout_bounds_problem(minutes: int) -> str | None:
    """None if vSphere accepts `minutes` as a quiesce timeout, else a sentence naming the bound it breaks."""
    accepted = f"vSphere accepts {MIN_QUIESCE_TIMEOUT_MINUTES} to {MAX_QUIESCE_TIMEOUT_MINUTES} minutes"
    if minutes < MIN_QUIESCE_TIMEOUT_MINUTES:
        return (f"{_minutes_phrase(minutes)} is below vSphere's minimum quiesce timeout of "
                f"{MIN_QUIESCE_TIMEOUT_MINUTES} minutes ({accepted})")
    if minutes > MAX_QUIESCE_TIMEOUT_MINUTES:
        return (f"{_minutes_phrase(minutes)} is above vSphere's maximum quiesce timeout of "
                f"{MAX_QUIESCE_TIMEOUT_MINUTES} minutes ({accepted})")
    return None


def quiesce_timeout_problem(text: str | None, *, field: str = SPEC_QUIESCE_TIMEOUT_PATH) -> str | None:
    """Admission's whole check of one timeout: None if fine (None text means the default), else the refusal."""
    if text is None:
        return None
    try:
        seconds = parse_duration_seconds(text, field=field)
    except ValueError as error:
        return str(error)
    minutes = minutes_rounded_up(seconds)
    problem = quiesce_timeout_bounds_problem(minutes)
    if problem is None:
        return None
    rounded = " (rounded up to whole minutes)" if seconds != minutes * 60 else ""
    return f"{field} {text!r}{rounded}: {problem}"


def quiesce_minutes_or_default(text: str | None, *, field: str = SPEC_QUIESCE_TIMEOUT_PATH) -> int:
    """The minutes to pass to vSphere for a quiesce spec whose timeout is `text` (None: the documented default)."""
    if text is None:
        return DEFAULT_QUIESCE_TIMEOUT_MINUTES
    return parse_timeout_minutes(text, field=field)


def format_minutes(minutes: int) -> str:
    """Short Go-style text for summaries and logs: 10 → "10m", 90 → "1h30m", 240 → "4h"."""
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours}h{rest}m"
    return f"{hours}h" if hours else f"{rest}m"


def _units_seconds(text: str) -> Fraction:
    if text == "0":  # Go's one unit-less duration
        return Fraction(0)
    return sum((Fraction(number) * _SECONDS_PER_UNIT[unit.lower()]
                for number, unit in _UNITS_COMPONENT_RE.findall(text)), Fraction(0))


def _iso_seconds(text: str) -> Fraction:
    parts = _ISO_PARTS_RE.fullmatch(text)
    assert parts is not None, f"TIMEOUT_PATTERN admitted {text!r}, which the ISO extractor cannot read"
    return sum((Fraction(value) * _ISO_SECONDS_PER_PART[name]
                for name, value in parts.groupdict().items() if value is not None), Fraction(0))


def _malformed_message(text: str, field: str) -> str:
    message = f"{field} {text!r} is not a duration: accepted forms are {ACCEPTED_FORMS}"
    if _BARE_NUMBER_RE.fullmatch(text):
        message += f"; a number needs a unit: write {text.strip(' ')}m for minutes"
    elif _ISO_MONTHS_RE.fullmatch(text):
        message += "; in ISO-8601 an M before the T means months: write PT10M for 10 minutes"
    return message


def _minutes_phrase(minutes: int) -> str:
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
