"""What an operator view covers: the venues asked for on the command line, and the clock."""

from __future__ import annotations

import time
from typing import Any


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def selected_venues(settings: Any, args: Any) -> list[str]:
    """``--venue`` (repeatable, duplicates dropped), else every configured venue."""
    return list(dict.fromkeys(getattr(args, "venue", None) or settings.venues))
