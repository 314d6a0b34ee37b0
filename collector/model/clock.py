"""Wall-clock time as the records carry it: integer milliseconds since the Unix epoch.

The one definition of ``now_ms`` for the code base. Scheduling never uses it (it runs on
``time.monotonic()``); it only stamps records and compares against stored epoch times.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch, from the integer clock (no float rounding)."""
    return time.time_ns() // 1_000_000
