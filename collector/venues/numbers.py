"""Lenient number and time guards shared by the venue modules.

Venue payloads send the same quantity as an int, a float or numeric text, and sometimes as junk.
These helpers turn such a value into a plain Python number or None (or raise ValueError where the
caller must refuse the whole object), so each venue module keeps only its own field mapping.
Exact decimal text for prices and sizes lives in collector.model.decimals, not here: these values
(liquidity, counts, timestamps) are never written as decimal text.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from collector.model.decimals import dec_text

# Past year 33,000: junk, and too big for int64 consumers (orjson cannot write larger integers).
_MAX_EXPIRY_MS = Decimal(10) ** 15
_SECONDS_BELOW = Decimal(10) ** 12  # an epoch value below this is seconds, not ms


def finite_float(value: Any) -> float | None:
    """A finite float from an int, float or numeric text; None when absent, bool, junk or inf/nan."""
    if value is None or type(value) is bool:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def as_int(value: Any) -> int | None:
    """int or integral numeric text (surrounding spaces allowed) -> int; None for anything else."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def lenient_time_ms(value: Any) -> int | None:
    """Lenient ISO-8601 (``Z``, fractions, date only, space separator, ``+00``) -> epoch ms.

    Naive values are taken as UTC. Numbers are epoch seconds, or ms when > 1e11.
    None when absent or unparseable.
    """
    if value is None or type(value) is bool:
        return None
    if type(value) in (int, float):
        if not math.isfinite(value) or abs(value) > 1e17:
            return None
        return int(value if abs(value) > 1e11 else value * 1000)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:  # "Z" with odd fractions etc.: retry without the zone suffix
            dt = datetime.fromisoformat(text.rstrip("Zz"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return int(dt.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):  # e.g. year 1 shifted out of range by its offset
        return None


def epoch_ms(value: Any, field: str) -> int | None:
    """An epoch timestamp (ms, or seconds when below 1e12; int, float or numeric text) -> ms.

    None when absent or ""; ValueError (naming ``field``) for a bool, another type, junk text, a
    negative or non-finite number, or a value past the int64-safe bound.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} is a bool")
    if isinstance(value, (int, float)):
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        d = Decimal(dec_text(value))  # ValueError on junk / negative
    else:
        raise ValueError(f"{field} has a bad type")
    if not d.is_finite() or d < 0:
        raise ValueError(f"{field} is not a finite non-negative number")
    if d < _SECONDS_BELOW:
        d *= 1000
    if d >= _MAX_EXPIRY_MS:
        raise ValueError(f"{field} out of range")
    return int(d)
