"""Request pacing: who may start a request, and when. One small protocol, three pacers, one gate.

The protocol (times are ``time.monotonic()`` seconds):

- :class:`Pacing`, for the poller's non-blocking loop: ``try_acquire(now) -> bool`` takes the
  start at ``now`` if it is allowed; ``next_allowed(now) -> float`` is the earliest start
  ``>= now`` (``try_acquire(next_allowed(now))`` succeeds unless someone else took it first).
- :class:`BlockingPacing`, for discovery paging on its own thread: ``wait()`` books the next
  free start and sleeps until it.

Implementations:

- :class:`RateBudget` (``Pacing``): a venue's order-book budget, N starts per sliding window plus
  a minimum spacing, optionally behind a shared spacing. Loop thread only, not thread-safe.
- :class:`Pacer` (``BlockingPacing``): discovery's in-process spacing, evenly spread at the
  discovery budget's average rate. Thread-safe.
- :class:`collector.venues.shared_spacing.SharedSpacing` (both): one spacing for every process on
  the data directory, plus a cross-process hold after a 429.

:class:`SendGate` is not a pacer: it is the fetch thread's last check that the venue is not held
(a 429 seen meanwhile), made at the moment of sending.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for annotations; no runtime dependency on pydantic
    from collector.config.settings import VenueSettings
    from collector.venues.shared_spacing import SharedSpacing

__all__ = ["BlockingPacing", "Pacer", "Pacing", "RateBudget", "SendGate"]


class Pacing(Protocol):
    """Non-blocking pacing: the caller passes the monotonic time and never sleeps here."""

    def try_acquire(self, now: float) -> bool:
        """Consume the start at ``now`` and return True if a request may start then; else False."""
        ...

    def next_allowed(self, now: float) -> float:
        """Earliest time >= now at which a request may start."""
        ...


class BlockingPacing(Protocol):
    """Blocking pacing, for callers on their own thread (discovery paging)."""

    def wait(self) -> None:
        """Book the next free start and sleep until it."""
        ...


class RateBudget:
    """At most ``requests`` starts in any sliding ``window_s`` and ``min_spacing_s`` between starts.

    Precisely: after a start at ``t`` another may start at ``now >= t + min_spacing_s``; a start
    at ``t`` stops counting against the window once ``now >= t + window_s``. So any half-open
    interval of length ``window_s`` holds at most ``requests`` starts. ``next_allowed`` uses
    the same arithmetic, so ``try_acquire(next_allowed(now))`` always succeeds.

    Saturated throughput is ``min(requests / window_s, 1 / min_spacing_s)`` per second on
    average (Limitless defaults: 30 per 10 s and 300 ms -> 3/s; spacing alone -> 3.33/s).
    Memory: at most ``requests`` timestamps.

    ``shared`` (optional, any :class:`Pacing`; in practice a
    :class:`collector.venues.shared_spacing.SharedSpacing`) is a spacing other processes use too
    (Limitless: discovery next to the poller); a start also needs it free.
    """

    __slots__ = ("requests", "window_s", "min_spacing_s", "shared", "_starts", "_last")

    def __init__(
        self, requests: int, window_s: float, min_spacing_s: float = 0.0, shared: Pacing | None = None
    ) -> None:
        if requests < 1 or not window_s > 0 or min_spacing_s < 0:
            raise ValueError("need requests >= 1, window_s > 0, min_spacing_s >= 0")
        self.requests = int(requests)
        self.window_s = float(window_s)
        self.min_spacing_s = float(min_spacing_s)
        self.shared = shared
        self._starts: deque[float] = deque()
        self._last = -math.inf

    @classmethod
    def from_settings(cls, venue: VenueSettings, shared: Pacing | None = None) -> RateBudget:
        """The order-book polling budget of a venue."""
        return cls(venue.rate_requests, venue.rate_window_s, venue.min_spacing_s, shared)

    def _evict(self, now: float) -> None:
        starts, w = self._starts, self.window_s
        while starts and starts[0] + w <= now:
            starts.popleft()

    def next_allowed(self, now: float) -> float:
        """Earliest time >= now at which a request may start."""
        self._evict(now)
        t = self._last + self.min_spacing_s
        if len(self._starts) >= self.requests:
            w = self._starts[0] + self.window_s
            if w > t:
                t = w
        if self.shared is not None:
            t = max(t, self.shared.next_allowed(now))
        return t if t > now else now

    def try_acquire(self, now: float) -> bool:
        """Consume a slot and return True if a request may start at ``now``; else False."""
        if now < self._last + self.min_spacing_s:
            return False
        self._evict(now)
        if len(self._starts) >= self.requests:
            return False
        if self.shared is not None and not self.shared.try_acquire(now):
            return False
        self._starts.append(now)
        self._last = now
        return True

    def available(self, now: float) -> int:
        """Window slots left at ``now`` (ignores spacing): how many starts the window still allows."""
        self._evict(now)
        return self.requests - len(self._starts)

    def used(self, now: float) -> int:
        """Starts counted in the current window."""
        self._evict(now)
        return len(self._starts)


class Pacer:
    """Starts at least ``min_interval_s`` apart, booked in call order (thread-safe): discovery paging.

    ``min_interval_s`` is ``max(window_s / requests, min_spacing_s)``: the budget's average rate,
    spread evenly, never in sliding-window bursts.
    """

    def __init__(self, requests: int, window_s: float, min_spacing_s: float = 0.0):
        self.min_interval_s = max(window_s / requests, min_spacing_s)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.min_interval_s
        if start > now:
            time.sleep(start - now)


class SendGate:
    """The check a fetch thread makes just before it sends: is the venue held?

    The loop thread checks cooldown and budget when it hands a job over; this repeats the
    cooldown check at the moment of sending, because a 429 can come back in between. The fetch
    thread that receives a 429 holds the gate itself, before the loop thread hears of it, so no
    job already handed to another thread goes out inside the Retry-After window. With ``shared``
    the holds of other processes on the data directory count too.
    """

    def __init__(self, shared: SharedSpacing | None = None) -> None:
        self.shared = shared
        self._until = -math.inf
        self._lock = threading.Lock()

    def hold(self, until: float) -> None:
        with self._lock:
            if until > self._until:
                self._until = until

    def is_open(self, now: float) -> bool:
        if now < self._until:
            return False
        return self.shared is None or self.shared.held_until(now) <= now
