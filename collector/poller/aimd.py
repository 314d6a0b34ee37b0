"""The per-venue cap on requests in flight, additive increase / multiplicative decrease (:class:`Aimd`).

Pure and single-threaded like every scheduling piece of the poller: the loop thread owns it
and passes the monotonic time ``now`` (seconds) into every method; nothing here reads a clock,
sleeps or uses global randomness, so tests drive it with a fake clock. Not thread-safe.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations; no runtime dependency on pydantic
    from collector.config.settings import PollerSettings, VenueSettings

__all__ = ["Aimd"]

class Aimd:
    """The per-venue cap on requests in flight, as in the original collector.

    Starts at ``start`` (clamped to ``[1, ceiling]``). ``on_rate_limited`` halves it (floor
    1). ``evaluate`` (call it periodically, e.g. every stats interval) lowers it by 1 when
    the failure rate or p95 latency is at/above its threshold, and raises it by 1 when
    nothing has been bad (no halving, no unhealthy evaluation) for ``stable_window_s`` and
    the last increase was at least ``stable_window_s`` ago: at most one +1 per stable window.
    The stable window starts at the first call (a fresh cap is not raised straight away).
    """

    __slots__ = (
        "ceiling",
        "floor",
        "failure_rate",
        "p95_latency_ms",
        "stable_window_s",
        "_cap",
        "_stable_since",
        "_last_halving",
    )

    def __init__(
        self,
        start: int = 4,
        ceiling: int = 32,
        *,
        failure_rate: float = 0.2,
        p95_latency_ms: float = 1500.0,
        stable_window_s: float = 900.0,
        floor: int = 1,
    ) -> None:
        if floor < 1 or ceiling < floor:
            raise ValueError("need 1 <= floor <= ceiling")
        if not stable_window_s > 0:
            raise ValueError("stable_window_s must be > 0")
        self.ceiling = int(ceiling)
        self.floor = int(floor)
        self.failure_rate = float(failure_rate)
        self.p95_latency_ms = float(p95_latency_ms)
        self.stable_window_s = float(stable_window_s)
        self._cap = min(self.ceiling, max(self.floor, int(start)))
        self._stable_since: float | None = None  # last bad event or increase
        self._last_halving = -math.inf

    @classmethod
    def from_settings(cls, venue: VenueSettings, poller: PollerSettings) -> Aimd:
        return cls(
            venue.inflight_start,
            venue.inflight_ceiling,
            failure_rate=poller.aimd_failure_rate,
            p95_latency_ms=poller.aimd_p95_latency_ms,
            stable_window_s=poller.aimd_stable_window_s,
        )

    @property
    def cap(self) -> int:
        return self._cap

    def on_rate_limited(self, now: float, sent_at: float | None = None) -> int:
        """A 429: halve the cap (floor 1). Returns the change (<= 0).

        Pass the 429'd request's start time as ``sent_at`` to count one congestion episode
        once: a 429 for a request sent before the last halving is already accounted for
        (the requests in flight at that moment all hit the same limit), so it only restarts
        the stable window. Without ``sent_at`` every call halves.
        """
        self._stable_since = now
        if sent_at is not None and sent_at < self._last_halving:
            return 0
        old = self._cap
        self._cap = max(self.floor, old // 2)
        self._last_halving = now
        return self._cap - old

    def evaluate(self, now: float, failure_rate: float, p95_latency_ms: float | None) -> int:
        """Periodic health check over the last period. Returns the change: -1, 0 or +1.

        ``p95_latency_ms`` None means no latency samples: it cannot trigger -1 and blocks +1.
        """
        if self._stable_since is None:
            self._stable_since = now
        bad = failure_rate >= self.failure_rate or (
            p95_latency_ms is not None and p95_latency_ms >= self.p95_latency_ms
        )
        if bad:
            self._stable_since = now
            if self._cap > self.floor:
                self._cap -= 1
                return -1
            return 0
        if p95_latency_ms is not None and now - self._stable_since >= self.stable_window_s:
            self._stable_since = now  # the next +1 needs another full stable window
            if self._cap < self.ceiling:
                self._cap += 1
                return 1
        return 0
