"""Exact decimal text for venue numbers.

Venue prices and sizes arrive as strings ("0.414"), JSON numbers (0.14) or raw integers
(Limitless sizes in 10^-decimals units). We never round-trip them through binary floats
on the way to disk: each value becomes canonical decimal text (no exponent, no trailing
zeros) that is written verbatim as a JSON number, so "0.414" is written 0.414.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_PLAIN = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def _strip(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def dec_text(value: object) -> str:
    """Canonical non-negative decimal text for a venue number; ValueError on junk.

    Accepts str, int and float (not bool). Floats use their shortest round-trip repr,
    which is the venue's own text for any value with <= 15 significant digits.
    """
    tv = type(value)
    if tv is str:
        if _PLAIN.fullmatch(value):  # fast path: the common "0.414" / "3100"
            return _strip(value)
        return _slow(value.strip())
    if tv is int:
        if value < 0:
            raise ValueError(f"negative number {value!r}")
        return str(value)
    if tv is float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a finite non-negative number: {value!r}")
        return _slow(repr(value))
    raise ValueError(f"not a number: {value!r}")


def _slow(text: str) -> str:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a number: {text!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"not a finite non-negative number: {text!r}")
    check_magnitude(d, text[:40])
    return fmt(d)


MAX_ADJUSTED_EXP = 40  # |exponent| bound of a venue number in scientific notation


def check_magnitude(d: Decimal, shown: str) -> None:
    """ValueError("number out of range: <shown>") for a finite non-zero ``d`` whose exponent is
    beyond +-MAX_ADJUSTED_EXP: "1e999999999" would expand to a billion digits of canonical text."""
    if d and not -MAX_ADJUSTED_EXP <= d.adjusted() <= MAX_ADJUSTED_EXP:
        raise ValueError(f"number out of range: {shown!r}")


def fmt(d: Decimal) -> str:
    """Decimal -> canonical text without exponent ("1E+3" -> "1000", "0.4150" -> "0.415")."""
    if d == 0:
        return "0"
    return _strip(format(d, "f"))


def scaled_text(raw: object, decimals: int) -> str:
    """Raw integer units (e.g. Limitless size 222000000 with 6 decimals) -> "222"."""
    return fmt(Decimal(dec_text(raw)).scaleb(-decimals))


def mid_text(bid: str, ask: str) -> str:
    return fmt((Decimal(bid) + Decimal(ask)) / 2)


def spread_text(bid: str, ask: str) -> str:
    d = Decimal(ask) - Decimal(bid)
    return "-" + fmt(-d) if d < 0 else fmt(d)
