"""Per-venue pause after a 429 or a burst of failures (:class:`VenueCooldown`).

It reports each finished cooldown once (:class:`CooldownEnd`), which the lane writes as a venue
gap record. Pure and single-threaded like every scheduling piece of the poller: the loop thread owns it
and passes the monotonic time ``now`` (seconds) into every method; nothing here reads a clock,
sleeps or uses global randomness, so tests drive it with a fake clock. Not thread-safe.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # only for annotations; no runtime dependency on pydantic
    from collector.config.settings import PollerSettings, VenueSettings

__all__ = ["FAILURES", "RATE_LIMITED", "CooldownEnd", "VenueCooldown"]

RATE_LIMITED = "rate_limited"
FAILURES = "failures"


class CooldownEnd(NamedTuple):
    """A finished cooldown, for a gap record: it paused the venue over [started_at, ended_at)."""

    started_at: float
    ended_at: float
    reason: str  # "rate_limited" | "failures": what set the final end time


class VenueCooldown:
    """Per-venue pause after rate limiting or a burst of failures.

    - ``on_rate_limited(now, retry_after_s)`` pauses until ``now + retry_after_s`` (the
      venue's Retry-After, honoured exactly) or ``now + default_s`` when none was sent.
    - ``record(now, ok)`` keeps outcomes over a sliding ``failure_window_s``; once it holds at
      least ``failure_min_requests`` outcomes and the failed fraction is >= ``failure_fraction``
      the venue pauses for ``failure_cooldown_s`` and the window is cleared. Outcomes recorded
      while a cooldown is active are ignored (they describe what caused it).
    - A new cooldown never shortens an active one; extending an active cooldown keeps its
      start (it is one continuous pause) and sets ``reason`` to the extender's.
    - ``ended(now)`` returns each finished cooldown exactly once (call it every loop turn,
      or ``while (e := cd.ended(now)):`` to drain).
    """

    __slots__ = (
        "default_s",
        "failure_fraction",
        "failure_min_requests",
        "failure_window_s",
        "failure_cooldown_s",
        "_until",
        "_started",
        "_reason",
        "_open",
        "_pending",
        "_times",
        "_oks",
        "_fails",
    )

    def __init__(
        self,
        default_s: float = 30.0,
        *,
        failure_fraction: float = 0.5,
        failure_min_requests: int = 10,
        failure_window_s: float = 10.0,
        failure_cooldown_s: float = 15.0,
    ) -> None:
        if default_s < 0 or failure_cooldown_s < 0:
            raise ValueError("cooldown durations must be >= 0")
        if not (0 < failure_fraction <= 1):
            raise ValueError("failure_fraction must be in (0, 1]")
        if failure_min_requests < 1 or failure_window_s <= 0:
            raise ValueError("failure_min_requests must be >= 1 and failure_window_s > 0")
        self.default_s = float(default_s)
        self.failure_fraction = float(failure_fraction)
        self.failure_min_requests = int(failure_min_requests)
        self.failure_window_s = float(failure_window_s)
        self.failure_cooldown_s = float(failure_cooldown_s)
        self._until = -math.inf
        self._started = -math.inf
        self._reason: str | None = None
        self._open = False  # a cooldown was started and its end not yet reported
        self._pending: deque[CooldownEnd] = deque()
        self._times: deque[float] = deque()
        self._oks: deque[bool] = deque()
        self._fails = 0

    @classmethod
    def from_settings(cls, venue: VenueSettings, poller: PollerSettings) -> VenueCooldown:
        return cls(
            venue.cooldown_429_s,
            failure_fraction=poller.failure_cooldown_fraction,
            failure_min_requests=poller.failure_cooldown_min_requests,
            failure_window_s=poller.failure_cooldown_window_s,
            failure_cooldown_s=poller.failure_cooldown_s,
        )

    # -- state ---------------------------------------------------------------------------

    def active(self, now: float) -> bool:
        return now < self._until

    def remaining(self, now: float) -> float:
        """Seconds until the venue may be polled again (0 when not cooling down)."""
        r = self._until - now
        return r if r > 0 else 0.0

    @property
    def until(self) -> float:
        """Monotonic time the current (or last) cooldown ends; -inf if there never was one."""
        return self._until

    @property
    def reason(self) -> str | None:
        """Reason of the current or most recent cooldown: "rate_limited" | "failures" | None."""
        return self._reason

    # -- triggers ------------------------------------------------------------------------

    def _extend(self, now: float, until: float, reason: str) -> bool:
        if until <= now or until <= self._until:
            return False  # zero-length, or would shorten / not extend the current one
        if self._open and now >= self._until:  # previous cooldown over, not yet reported
            self._pending.append(CooldownEnd(self._started, self._until, self._reason or reason))
            self._open = False
        if not self._open:
            self._started = now
            self._open = True
        self._until = until
        self._reason = reason
        return True

    def on_rate_limited(
        self, now: float, retry_after_s: float | None = None, default_s: float | None = None
    ) -> bool:
        """A 429: pause until now + Retry-After (or the default). True if the pause grew."""
        return self._extend(now, now + self.rate_limit_pause_s(retry_after_s, default_s), RATE_LIMITED)

    def rate_limit_pause_s(self, retry_after_s: float | None = None, default_s: float | None = None) -> float:
        """Seconds a 429 pauses the venue: its Retry-After, else the default. Pure: fetch threads
        call it too, to hold the send gate before the loop thread hears of the 429."""
        if retry_after_s is not None and retry_after_s == retry_after_s:  # not None / NaN
            return max(0.0, float(retry_after_s))
        return self.default_s if default_s is None else default_s

    def record(self, now: float, ok: bool) -> bool:
        """One request outcome. True when it triggered a failure cooldown."""
        if now < self._until:
            return False
        times, oks = self._times, self._oks
        horizon = now - self.failure_window_s
        while times and times[0] <= horizon:
            times.popleft()
            if not oks.popleft():
                self._fails -= 1
        times.append(now)
        oks.append(ok)
        if not ok:
            self._fails += 1
        n = len(times)
        # Only a failure can start a failure cooldown (a success must never pause the venue).
        if not ok and n >= self.failure_min_requests and self._fails / n >= self.failure_fraction:
            times.clear()
            oks.clear()
            self._fails = 0
            return self._extend(now, now + self.failure_cooldown_s, FAILURES)
        return False

    def window_counts(self, now: float) -> tuple[int, int]:
        """(outcomes, failures) currently inside the failure window (for stats/debugging)."""
        horizon = now - self.failure_window_s
        n = f = 0
        for t, ok in zip(self._times, self._oks):
            if t > horizon:
                n += 1
                f += not ok
        return n, f

    # -- events --------------------------------------------------------------------------

    def ended(self, now: float) -> CooldownEnd | None:
        """The next finished, not yet reported cooldown, or None. Each is returned once."""
        if self._pending:
            return self._pending.popleft()
        if self._open and now >= self._until:
            self._open = False
            return CooldownEnd(self._started, self._until, self._reason or RATE_LIMITED)
        return None
