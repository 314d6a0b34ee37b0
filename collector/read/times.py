"""Times and durations as the reading API takes them: epoch ms, datetime, date, ISO or relative text."""

from __future__ import annotations

import datetime as _dt
import re
import time
from typing import Any

from collector.store.layout import DAY_MS

__all__ = ["duration_ms", "opt_time", "parse_time"]

_REL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$")


def parse_time(value: Any, *, now_ms: int | None = None) -> int:
    """Epoch ms (UTC) from an int (ms), float (s), datetime, date, ISO text or relative text.

    Relative text (``"90s"``, ``"30m"``, ``"1h"``, ``"2d"``, ``"1w"``) means that long before now.
    ISO text without an offset is UTC; ``"Z"`` is accepted.
    """
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(round(value * 1000))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, _dt.date):
        return int(_dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)
    if isinstance(value, str):
        m = _REL_RE.match(value)
        if m:
            n, unit = float(m.group(1)), m.group(2)
            mult = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}[unit]
            now = _now_ms() if now_ms is None else now_ms
            return now - int(n * mult)
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            d = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a time: {value!r} (epoch ms, ISO like 2026-01-10T23:30Z, or 30m/1h/2d)") from None
        return parse_time(d)
    raise TypeError(f"not a time: {value!r}")


def duration_ms(value: Any) -> int:
    """Milliseconds from an int (ms), a :class:`datetime.timedelta` or text like ``"2h"``."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, _dt.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, str) and _REL_RE.match(value):
        return -parse_time(value, now_ms=0)
    raise ValueError(f"not a duration: {value!r} (ms, timedelta, or 90s/30m/1h/2d)")


def opt_time(value: Any) -> int | None:
    return None if value is None else parse_time(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
