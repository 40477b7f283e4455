"""api.duration: every accepted form, the rounding, every refusal, and agreement with the CRD's CEL pattern."""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

import pytest

from api import names
from api.duration import (
    ACCEPTED_FORMS,
    TIMEOUT_PATTERN,
    format_minutes,
    minutes_rounded_up,
    parse_duration_seconds,
    parse_timeout_minutes,
    quiesce_minutes_or_default,
    quiesce_timeout_bounds_problem,
    quiesce_timeout_problem,
)
from api.limits import DEFAULT_QUIESCE_TIMEOUT_MINUTES, MAX_QUIESCE_TIMEOUT_MINUTES, MIN_QUIESCE_TIMEOUT_MINUTES


@pytest.mark.parametrize("text, seconds", [
    # Go durations
    ("10m", 600), ("1h30m", 5400), ("90s", 90), ("1h", 3600), ("1.5h", 5400), (".5h", 1800), ("2h45m30s", 9930),
    ("300000ms", 300), ("5000000us", 5), ("5000000µs", 5), ("5000000μs", 5), ("1000000000ns", 1), ("+10m", 600),
    # words
    ("10min", 600), ("10mins", 600), ("10 minutes", 600), ("1 minute", 60), ("1 hour", 3600), ("2 hours", 7200),
    ("2 hrs", 7200), ("1hr", 3600), ("90 sec", 90), ("90secs", 90), ("30 seconds", 30), ("1 second", 1),
    ("1 hour 30 minutes", 5400), ("1h 30m", 5400), ("1h30min", 5400),
    # ISO-8601
    ("PT10M", 600), ("PT1H30M", 5400), ("PT90S", 90), ("PT1H", 3600), ("PT0.5H", 1800), ("P1D", 86400),
    ("P1DT2H", 93600), ("PT1H2M3S", 3723), ("PT2M30S", 150),
    # case and surrounding spaces
    ("10MIN", 600), ("10Min", 600), ("pt10m", 600), ("1H", 3600), ("  10m  ", 600),
])
def test_accepted_forms(text: str, seconds: int) -> None:
    assert parse_duration_seconds(text) == seconds


def test_the_guides_timeout_is_ten_minutes() -> None:
    assert parse_timeout_minutes("10min") == 10


def test_fractions_are_exact() -> None:
    # float arithmetic would make 0.1h slightly more than 6 minutes and round it up to 7
    assert parse_duration_seconds("0.1h") == 360
    assert parse_timeout_minutes("0.1h") == 6
    assert parse_duration_seconds("1ns") == Fraction(1, 10**9)


@pytest.mark.parametrize("text, minutes", [
    ("5m", 5), ("90s", 2), ("4m1s", 5), ("4m59.5s", 5), ("60s", 1), ("61s", 2), ("1ns", 1), ("PT0.5M", 1),
    ("240m", 240), ("240m1s", 241), ("4h", 240),
])
def test_seconds_round_up_to_whole_minutes(text: str, minutes: int) -> None:
    assert parse_timeout_minutes(text) == minutes


def test_minutes_rounded_up() -> None:
    assert minutes_rounded_up(Fraction(600)) == 10
    assert minutes_rounded_up(Fraction(601)) == 11
    assert minutes_rounded_up(Fraction(1, 2)) == 1


@pytest.mark.parametrize("text", ["", " ", "   "])
def test_empty_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration_seconds(text)
    assert str(refused.value).startswith(f"{names.SPEC_QUIESCE_TIMEOUT_PATH} is empty")
    assert ACCEPTED_FORMS in str(refused.value)


@pytest.mark.parametrize("text", [
    "10x", "ten minutes", "10 m s", "m10", "1h30", "10m30", "PT", "P", "PT10", "P1DT", "10d", "1 day", "10mm",
    "1..5h", "1.h", ".h", "--10m", "10m-", "10 minutes and 5 seconds", "10_m", "1e3s", "PT10M10H", "P1W", "10 PT",
])
def test_malformed_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration_seconds(text)
    assert str(refused.value) == f"{names.SPEC_QUIESCE_TIMEOUT_PATH} {text!r} is not a duration: accepted forms " \
                                 f"are {ACCEPTED_FORMS}"


@pytest.mark.parametrize("text", ["10", "1.5", " 30 "])
def test_a_number_without_unit_gets_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: .*; a number needs a unit: write .*m for minutes"):
        parse_duration_seconds(text)


@pytest.mark.parametrize("text", ["P10M", "p10m", "P1M2D"])
def test_iso_months_get_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="an M before the T means months: write PT10M for 10 minutes"):
        parse_duration_seconds(text)


@pytest.mark.parametrize("text", ["0", "0s", "0m", "0.0h", "PT0M", "P0D", "-0", "+0m", "0h0m0s"])
def test_zero_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration_seconds(text)
    assert str(refused.value) == (f"{names.SPEC_QUIESCE_TIMEOUT_PATH} {text!r} is zero: vSphere needs a quiesce "
                                  f"timeout of 5 to 240 minutes")


@pytest.mark.parametrize("text", ["-10m", "-PT10M", "-10 minutes", " -1h"])
def test_negative_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration_seconds(text)
    assert str(refused.value) == (f"{names.SPEC_QUIESCE_TIMEOUT_PATH} {text!r} is negative: vSphere needs a "
                                  f"quiesce timeout of 5 to 240 minutes")


@pytest.mark.parametrize("value", [10, 10.0, None, ["10m"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(names.SPEC_QUIESCE_TIMEOUT_PATH)} must be a string"):
        parse_duration_seconds(value)  # type: ignore[arg-type]


def test_messages_name_the_field_given() -> None:
    with pytest.raises(ValueError, match=r"^spec\.queisce\.timeout '10x' is not a duration"):
        parse_duration_seconds("10x", field=names.SPEC_QUEISCE_TIMEOUT_PATH)


def test_bounds() -> None:
    assert quiesce_timeout_bounds_problem(MIN_QUIESCE_TIMEOUT_MINUTES) is None
    assert quiesce_timeout_bounds_problem(10) is None
    assert quiesce_timeout_bounds_problem(MAX_QUIESCE_TIMEOUT_MINUTES) is None
    assert quiesce_timeout_bounds_problem(4) == (
        "4 minutes is below vSphere's minimum quiesce timeout of 5 minutes (vSphere accepts 5 to 240 minutes)")
    assert quiesce_timeout_bounds_problem(1) == (
        "1 minute is below vSphere's minimum quiesce timeout of 5 minutes (vSphere accepts 5 to 240 minutes)")
    assert quiesce_timeout_bounds_problem(241) == (
        "241 minutes is above vSphere's maximum quiesce timeout of 240 minutes (vSphere accepts 5 to 240 minutes)")


def test_quiesce_timeout_problem_is_the_whole_admission_check() -> None:
    assert quiesce_timeout_problem(None) is None  # quiesce: {} takes the default
    assert quiesce_timeout_problem("10min") is None
    assert quiesce_timeout_problem("4m1s") is None  # rounds up to 5
    assert quiesce_timeout_problem("3m") == (
        "spec.quiesce.timeout '3m': 3 minutes is below vSphere's minimum quiesce timeout of 5 minutes "
        "(vSphere accepts 5 to 240 minutes)")
    assert quiesce_timeout_problem("90s") == (
        "spec.quiesce.timeout '90s' (rounded up to whole minutes): 2 minutes is below vSphere's minimum quiesce "
        "timeout of 5 minutes (vSphere accepts 5 to 240 minutes)")
    assert quiesce_timeout_problem("PT5H", field=names.SPEC_QUEISCE_TIMEOUT_PATH) == (
        "spec.queisce.timeout 'PT5H': 300 minutes is above vSphere's maximum quiesce timeout of 240 minutes "
        "(vSphere accepts 5 to 240 minutes)")
    assert quiesce_timeout_problem("10x").startswith("spec.quiesce.timeout '10x' is not a duration")
    assert quiesce_timeout_problem("0m").startswith("spec.quiesce.timeout '0m' is zero")


def test_default_applies_only_without_a_timeout() -> None:
    assert DEFAULT_QUIESCE_TIMEOUT_MINUTES == 10
    assert quiesce_minutes_or_default(None) == DEFAULT_QUIESCE_TIMEOUT_MINUTES
    assert quiesce_minutes_or_default("PT30M") == 30
    with pytest.raises(ValueError):
        quiesce_minutes_or_default("")


@pytest.mark.parametrize("minutes, text", [(10, "10m"), (5, "5m"), (60, "1h"), (90, "1h30m"), (240, "4h")])
def test_format_minutes(minutes: int, text: str) -> None:
    assert format_minutes(minutes) == text
    assert parse_timeout_minutes(text) == minutes


# --- the CEL pattern in the CRD and this parser must agree -------------------------------------------------------

def test_pattern_is_portable_to_cel() -> None:
    # Written into a single-quoted CEL string and run by RE2: no escapes, no quotes, no lookarounds, no backrefs.
    assert "\\" not in TIMEOUT_PATTERN and "'" not in TIMEOUT_PATTERN and '"' not in TIMEOUT_PATTERN
    assert not re.search(r"\(\?[=!<]", TIMEOUT_PATTERN)


def _verdict(text: str) -> str:
    try:
        parse_duration_seconds(text)
        return "ok"
    except ValueError as refused:
        message = str(refused)
        for kind in ("is zero", "is negative", "is not a duration", "is empty"):
            if kind in message:
                return kind
        raise AssertionError(f"unexpected message for {text!r}: {message}")


def _assert_agrees(text: str) -> None:
    admitted_by_cel = re.fullmatch(TIMEOUT_PATTERN, text) is not None
    verdict = _verdict(text)
    if admitted_by_cel:
        assert verdict in ("ok", "is zero", "is negative"), (text, verdict)
    else:
        assert verdict in ("is not a duration", "is empty"), (text, verdict)


def test_pattern_and_parser_agree_on_systematic_inputs() -> None:
    numbers = ["0", "1", "10", "007", ".5", "1.5", "1.", ".", ""]
    units = ["ns", "us", "µs", "μs", "ms", "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute",
             "minutes", "h", "hr", "hrs", "hour", "hours", "d", "x", "M", "MIN", "H", ""]
    for number, space, unit in itertools.product(numbers, ["", " "], units):
        single = f"{number}{space}{unit}"
        _assert_agrees(single)
        _assert_agrees(f"-{single}")
        _assert_agrees(f"1h{space}{single}")
    for days, hours, minutes, seconds in itertools.product(["", "1D", "1.5D"], ["", "2H"], ["", "3M", ".5M"],
                                                           ["", "4S", "4.5S"]):
        time = f"{hours}{minutes}{seconds}"
        for text in (f"P{days}T{time}", f"P{days}{time}", f"PT{days}{time}", f"p{days}t{time}".lower()):
            _assert_agrees(text)


def test_pattern_and_parser_agree_on_random_inputs() -> None:
    alphabet = list("0123456789.0123456789 +-msMShHdDtTpPinuteosecrµ")
    chooser = random.Random(20251027)
    for _ in range(20000):
        _assert_agrees("".join(chooser.choice(alphabet) for _ in range(chooser.randint(0, 12))))
