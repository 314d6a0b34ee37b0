"""What an operator view covers: the venues asked for on the command line, and the clock."""

from __future__ import annotations

from typing import Any

from collector.model.clock import now_ms

__all__ = ["now_ms", "selected_venues"]


def selected_venues(settings: Any, args: Any) -> list[str]:
    """``--venue`` (repeatable, duplicates dropped), else every configured venue."""
    return list(dict.fromkeys(getattr(args, "venue", None) or settings.venues))
