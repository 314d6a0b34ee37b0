"""Bounded dict caches of the hot path (text canonicalization, mid/spread): when full, the oldest
entries go, never all at once, so the entries in use stay and there is no burst of misses."""

from __future__ import annotations

import itertools

__all__ = ["trim_oldest"]


def trim_oldest(cache: dict, share: float = 0.25) -> None:
    """Drop the oldest ``share`` of a dict cache (insertion order)."""
    for k in list(itertools.islice(cache, max(1, int(len(cache) * share)))):
        del cache[k]
