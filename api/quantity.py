"""Kubernetes resource quantities: parse PVC requests and VM sizes, print byte counts as the guide shows them.

The guide prints `storage.requested[].total` as `25Gi` and `storage.used` as `"12226581330"`:
  * `format_binary_bytes`: the largest binary suffix that divides the count exactly, else a plain integer (VM
    Operator prints BinarySI when the count is a multiple of 1024);
  * `format_plain_bytes`: always the plain integer, for `used` (a measured size, rarely a round number).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
# Kubernetes' quantity grammar: sign, number, then a binary suffix, a decimal suffix or a decimal exponent.
# QUANTITY_PATTERN is the CRDs' `pattern` for quantity fields (RE2 and Python agree on it); _QUANTITY_RE is the
# same grammar with groups, to read the parts.
QUANTITY_PATTERN = "^[+-]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?")


def parse_quantity(quantity: str | int) -> Fraction:
    """The exact value of a Kubernetes quantity ("10Gi", "500M", "1e3", "1.5", 1024). ValueError if malformed."""
    if isinstance(quantity, bool) or not isinstance(quantity, (str, int)):
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    if isinstance(quantity, int):
        return Fraction(quantity)
    match = _QUANTITY_RE.fullmatch(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (examples: 10Gi, 500M, 1e3, 1024)")
    value = Fraction(match["number"])
    if match["exponent"] is not None:
        value *= Fraction(10) ** int(match["exponent"])
    else:
        suffix = match["suffix"] or ""
        value *= _BINARY_SUFFIXES.get(suffix) or _DECIMAL_SUFFIXES[suffix]
    return -value if match["sign"] == "-" else value


def quantity_bytes(quantity: str | int) -> int:
    """A quantity as a whole number of bytes, rounding up like Kubernetes' Quantity.Value()."""
    return math.ceil(parse_quantity(quantity))


def format_binary_bytes(count: int) -> str:
    """`26843545600` → "25Gi"; a count that is not a multiple of 1024 → its plain integer."""
    if count != 0:
        for suffix, size in reversed(_BINARY_SUFFIXES.items()):
            if count % size == 0:
                return f"{count // size}{suffix}"
    return str(count)


def format_plain_bytes(count: int) -> str:
    """`12226581330` → "12226581330"."""
    return str(count)
