"""Bounded rolling statistics for poll_stats: request latencies and achieved poll intervals.

``add``/``record`` are O(1) per request; percentiles sort a copy, which is meant for the stats
cadence (every few seconds), not per request. Pure and single-threaded like every scheduling piece of the poller: the loop thread owns it
and passes the monotonic time ``now`` (seconds) into every method; nothing here reads a clock,
sleeps or uses global randomness, so tests drive it with a fake clock. Not thread-safe.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable
from typing import NamedTuple

__all__ = ["IntervalTracker", "LatencyWindow", "RollingWindow", "Summary", "pct", "percentile_sorted", "round3"]

class Summary(NamedTuple):
    """Rolling statistics; every field but ``count`` is None when there are no samples."""

    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentile_sorted(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list: the smallest sample >= p% of the samples."""
    n = len(values)
    if n == 0:
        return None
    if p <= 0:
        return values[0]
    rank = math.ceil(p / 100.0 * n)
    return values[min(n, max(1, rank)) - 1]


class RollingWindow:
    """The most recent samples: at most ``maxlen`` and (if ``max_age_s``) none older than that.

    ``add`` is O(1); ``summary``/``percentile`` sort a copy (O(n log n)), which is meant for the
    stats cadence (every few seconds), not per request. Percentiles are nearest-rank, so each
    reported value is an actual sample.
    """

    __slots__ = ("maxlen", "max_age_s", "_t", "_v")

    def __init__(self, maxlen: int = 1000, max_age_s: float | None = None) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError("max_age_s must be > 0")
        self.maxlen = int(maxlen)
        self.max_age_s = max_age_s
        self._t: deque[float] = deque(maxlen=self.maxlen)
        self._v: deque[float] = deque(maxlen=self.maxlen)

    def add(self, now: float, value: float) -> None:
        self._t.append(now)
        self._v.append(value)

    def _evict(self, now: float | None) -> None:
        if self.max_age_s is None or now is None:
            return
        horizon = now - self.max_age_s
        t, v = self._t, self._v
        while t and t[0] <= horizon:
            t.popleft()
            v.popleft()

    def values(self, now: float | None = None) -> list[float]:
        """The samples in the window (oldest first); ``now`` applies the age limit."""
        self._evict(now)
        return list(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def clear(self) -> None:
        self._t.clear()
        self._v.clear()

    def percentile(self, p: float, now: float | None = None) -> float | None:
        return percentile_sorted(sorted(self.values(now)), p)

    def percentiles(
        self, ps: Iterable[float] = (50, 95, 99), now: float | None = None
    ) -> tuple[float | None, ...]:
        s = sorted(self.values(now))
        return tuple(percentile_sorted(s, p) for p in ps)

    def summary(self, now: float | None = None) -> Summary:
        s = sorted(self.values(now))
        if not s:
            return Summary(0, None, None, None, None, None)
        return Summary(
            len(s),
            math.fsum(s) / len(s),
            percentile_sorted(s, 50),
            percentile_sorted(s, 95),
            percentile_sorted(s, 99),
            s[-1],
        )


class LatencyWindow(RollingWindow):
    """Recent request latencies (record in ms to compare with ``aimd_p95_latency_ms``)."""

    __slots__ = ()


class IntervalTracker:
    """Achieved interval between successive successful polls of the same instrument.

    ``record(key, now)`` on each successful poll; the gap since that key's previous success
    goes into a rolling window (bounded by ``maxlen`` samples and ``window_s`` seconds, e.g.
    the stats interval). ``forget(key)`` when an instrument leaves the active set, so the
    next success after it returns does not count the absence as one long interval.
    Memory: one float per tracked instrument plus at most ``maxlen`` samples.
    """

    __slots__ = ("_last", "_window")

    def __init__(self, window_s: float | None = 10.0, maxlen: int = 20000) -> None:
        self._last: dict[Hashable, float] = {}
        self._window = RollingWindow(maxlen=maxlen, max_age_s=window_s)

    def record(self, key: Hashable, now: float) -> float | None:
        """A successful poll of ``key`` at ``now``; returns the interval since its previous one."""
        prev = self._last.get(key)
        self._last[key] = now
        if prev is None:
            return None
        gap = now - prev
        self._window.add(now, gap)
        return gap

    def last_success(self, key: Hashable) -> float | None:
        return self._last.get(key)

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)

    def summary(self, now: float | None = None) -> Summary:
        """count / mean / p50 / p95 / p99 / max of the intervals in the window (seconds)."""
        return self._window.summary(now)

    def __len__(self) -> int:
        """Number of instruments with a recorded success."""
        return len(self._last)


def pct(sorted_vals: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), None when there are none."""
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def round3(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
