"""Deterministic building blocks for the poller's hot loop.

Everything here is pure and single-threaded: the poller loop owns every object, calls them
from one thread, and passes the monotonic time ``now`` (seconds, ``time.monotonic()``) into
every method. Nothing in this module reads a clock, sleeps, or uses global randomness, so
tests drive it with a fake clock and get the same answer every run. None of it is
thread-safe; only the HTTP fetch runs in threads.

Pieces (each one cheap per call: O(1) or O(log n), no per-call allocation beyond a tuple):

- :class:`BackoffPolicy` / :class:`Backoff`: per-instrument exponential backoff with
  deterministic jitter seeded by the instrument id and failure count.
- :class:`VenueCooldown`: per-venue pause after a 429 (Retry-After or a default) or when a
  large fraction of recent requests fail; reports each finished cooldown once (gap records).
- :class:`RateBudget`: at most N request starts per sliding window plus a minimum spacing.
- :class:`Aimd`: the per-venue in-flight cap (halve on 429, -1 when unhealthy, +1 after a
  stable window).
- :class:`DueQueue`: next-due scheduler, oldest due first (fair under overload).
- :class:`RollingWindow` / :class:`LatencyWindow` / :class:`IntervalTracker`: bounded
  rolling percentiles for poll_stats.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import deque
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # only for annotations; this module has no runtime dependency on pydantic
    from collector.config.settings import PollerSettings, VenueSettings
    from collector.venues.pacing import SharedSpacing

__all__ = [
    "Aimd",
    "Backoff",
    "BackoffPolicy",
    "CooldownEnd",
    "DueQueue",
    "IntervalTracker",
    "LatencyWindow",
    "RateBudget",
    "RollingWindow",
    "Summary",
    "VenueCooldown",
    "advance_due",
    "percentile_sorted",
]

_MASK64 = (1 << 64) - 1


def _unit(seed: int) -> float:
    """A deterministic float in [0, 1) from an integer seed (splitmix64 finalizer)."""
    z = (seed + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z >> 11) * (1.0 / (1 << 53))


# --------------------------------------------------------------------------------------------
# 1. Backoff
# --------------------------------------------------------------------------------------------


class BackoffPolicy:
    """Exponential backoff: after ``k`` consecutive failures, wait ``min(cap, base * factor**(k-1))``.

    Defaults (1, 2, 60) give 1, 2, 4, 8, 16, 32, 60, 60, ... seconds, comparable to the
    original collector's ``min(60, 2**min(failures, 6))`` (2, 4, ..., 32, 60) but retrying
    sooner after a single blip.

    ``jitter`` in [0, 1] shortens the delay by up to that fraction, deterministically: the
    draw is seeded by a stable hash (CRC-32, not Python's salted ``hash()``) of the instrument
    id and the failure count, so the same id and count always give the same delay, across
    runs and machines. Jitter is shaped so the delay stays monotone non-decreasing in
    ``failures`` and never exceeds ``cap``: the delay for ``k`` failures is drawn from
    ``[max(step(k-1), (1-jitter)*step(k)), step(k)]``, and once the curve reaches the cap
    the draw made at the first capped step is kept (each instrument settles on its own
    value in ``[(1-jitter)*cap, cap]``, so capped instruments stay spread out).
    """

    __slots__ = ("base", "factor", "cap", "jitter", "_k_cap")

    def __init__(
        self, base: float = 1.0, factor: float = 2.0, cap: float = 60.0, jitter: float = 0.0
    ) -> None:
        if not (base > 0 and math.isfinite(base)):
            raise ValueError("base must be a positive finite number")
        if not (factor >= 1 and math.isfinite(factor)):
            raise ValueError("factor must be >= 1")
        if not (cap > 0 and math.isfinite(cap)):
            raise ValueError("cap must be a positive finite number")
        if not (0.0 <= jitter <= 1.0):
            raise ValueError("jitter must be in [0, 1]")
        self.base = float(base)
        self.factor = float(factor)
        self.cap = float(cap)
        self.jitter = float(jitter)
        # First failure count whose raw delay reaches the cap; counts above it behave the same.
        if factor == 1.0 or base >= cap:
            k = 1
        else:
            k = max(1, int(math.log(cap / base) / math.log(factor)) + 1)
            while k > 1 and base * factor ** (k - 2) >= cap:  # float-safety both ways
                k -= 1
            while base * factor ** (k - 1) < cap:
                k += 1
        self._k_cap = k

    @classmethod
    def from_settings(cls, poller: PollerSettings) -> BackoffPolicy:
        return cls(poller.backoff_base_s, poller.backoff_factor, poller.backoff_cap_s, poller.backoff_jitter)

    def step(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` consecutive failures (0 for none)."""
        if failures <= 0:
            return 0.0
        k = failures if failures < self._k_cap else self._k_cap
        return min(self.cap, self.base * self.factor ** (k - 1))

    def delay(self, instrument_id: str, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures of ``instrument_id``."""
        if failures <= 0:
            return 0.0
        k = failures if failures < self._k_cap else self._k_cap
        hi = min(self.cap, self.base * self.factor ** (k - 1))
        if self.jitter == 0.0:
            return hi
        prev = min(self.cap, self.base * self.factor ** (k - 2)) if k > 1 else 0.0
        lo = max(prev, (1.0 - self.jitter) * hi)
        u = _unit(zlib.crc32(instrument_id.encode()) ^ (k << 32))
        d = hi - (hi - lo) * u
        return d if d > lo else lo  # guard rounding at the band's lower edge


class Backoff:
    """Consecutive-failure counts per instrument plus the policy that turns them into delays.

    ``on_failure`` returns the delay to apply (the caller reschedules the instrument at
    ``now + delay``); ``on_success`` resets the count. Memory is one dict entry per
    instrument that is currently failing.
    """

    __slots__ = ("policy", "_failures")

    def __init__(self, policy: BackoffPolicy | None = None) -> None:
        self.policy = policy or BackoffPolicy()
        self._failures: dict[str, int] = {}

    def on_failure(self, instrument_id: str) -> float:
        """Count one more consecutive failure; return the backoff delay in seconds."""
        n = self._failures.get(instrument_id, 0) + 1
        self._failures[instrument_id] = n
        return self.policy.delay(instrument_id, n)

    def on_success(self, instrument_id: str) -> int:
        """Reset the instrument; return how many consecutive failures it had (0 if none)."""
        return self._failures.pop(instrument_id, 0)

    def failures(self, instrument_id: str) -> int:
        """Current consecutive-failure count (0 when healthy)."""
        return self._failures.get(instrument_id, 0)

    def forget(self, instrument_id: str) -> None:
        """Drop an instrument that left the active set."""
        self._failures.pop(instrument_id, None)

    def __len__(self) -> int:
        """Number of instruments currently in backoff (failures >= 1)."""
        return len(self._failures)


# --------------------------------------------------------------------------------------------
# 2. Venue cooldown
# --------------------------------------------------------------------------------------------

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
        if retry_after_s is not None and retry_after_s == retry_after_s:  # not None / NaN
            d = max(0.0, float(retry_after_s))
        else:
            d = self.default_s if default_s is None else default_s
        return self._extend(now, now + d, RATE_LIMITED)

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


# --------------------------------------------------------------------------------------------
# 3. Rate budget
# --------------------------------------------------------------------------------------------


class RateBudget:
    """At most ``requests`` starts in any sliding ``window_s`` and ``min_spacing_s`` between starts.

    Precisely: after a start at ``t`` another may start at ``now >= t + min_spacing_s``; a start
    at ``t`` stops counting against the window once ``now >= t + window_s``. So any half-open
    interval of length ``window_s`` holds at most ``requests`` starts. ``next_allowed`` uses
    the same arithmetic, so ``try_acquire(next_allowed(now))`` always succeeds.

    Saturated throughput is ``min(requests / window_s, 1 / min_spacing_s)`` per second on
    average (Limitless defaults: 30 per 10 s and 300 ms -> 3/s; spacing alone -> 3.33/s).
    Memory: at most ``requests`` timestamps.

    ``shared`` (optional, a :class:`collector.venues.pacing.SharedSpacing`) is a spacing other
    processes use too (Limitless: discovery next to the poller); a start also needs it free.
    """

    __slots__ = ("requests", "window_s", "min_spacing_s", "shared", "_starts", "_last")

    def __init__(
        self, requests: int, window_s: float, min_spacing_s: float = 0.0, shared: SharedSpacing | None = None
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
    def from_settings(cls, venue: VenueSettings, shared: SharedSpacing | None = None) -> RateBudget:
        """The order-book polling budget of a venue."""
        return cls(venue.rate_requests, venue.rate_window_s, venue.min_spacing_s, shared)

    @classmethod
    def discovery_from_settings(cls, venue: VenueSettings) -> RateBudget:
        """The discovery budget of a venue (its own request count/window, same spacing)."""
        return cls(venue.discovery_rate_requests, venue.discovery_rate_window_s, venue.min_spacing_s)

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


# --------------------------------------------------------------------------------------------
# 4. AIMD in-flight cap
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# 5. Due queue
# --------------------------------------------------------------------------------------------


def advance_due(prev_due: float, interval_s: float, now: float) -> float:
    """Next due time for a fixed-rate schedule: ``prev_due + interval_s``, but never in the past.

    Keeps an instrument on its grid when it is on time (no drift from fetch latency) and
    drops missed slots instead of bursting to catch up when it is late.
    """
    nxt = prev_due + interval_s
    return nxt if nxt > now else now


class DueQueue:
    """Instruments keyed by their next-due monotonic time; ``pop_due`` yields the oldest due first.

    Oldest-due-first is what makes the loop fair under overload: with capacity below demand
    an instrument that has waited longest is served next and nobody starves (serving one and
    rescheduling it for ``now + interval`` puts it behind everyone already due). Equal due
    times pop in the order they were scheduled.

    A binary heap with lazy deletion: each key maps to the sequence number of its live heap
    entry; ``remove``/``reschedule`` leave the old entry behind and ``pop_due``/``next_due``
    skip entries whose sequence number is no longer current. The heap is rebuilt when stale
    entries outnumber live ones, so memory stays O(live keys). add / reschedule / remove are
    O(log n) (amortised), pop_due is O(k log n) for k keys returned.

    A popped key leaves the queue (it is in flight); put it back with ``reschedule``.
    """

    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __bool__(self) -> bool:
        return bool(self._live)

    def _push(self, key: Hashable, due: float) -> None:
        if due != due:
            raise ValueError("due time is NaN")
        self._seq += 1
        seq = self._seq
        self._live[key] = (due, seq)
        heapq.heappush(self._heap, (due, seq, key))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._compact()

    def _compact(self) -> None:
        self._heap = [(d, s, k) for k, (d, s) in self._live.items()]
        heapq.heapify(self._heap)

    def add(self, key: Hashable, due: float) -> bool:
        """Schedule ``key`` at ``due`` unless it is already queued. True if it was added."""
        if key in self._live:
            return False
        self._push(key, due)
        return True

    def reschedule(self, key: Hashable, due: float) -> None:
        """Set ``key``'s due time (adds it when absent)."""
        self._push(key, due)

    def remove(self, key: Hashable) -> bool:
        """Unschedule ``key``. True if it was queued."""
        if self._live.pop(key, None) is None:
            return False
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._compact()
        return True

    def due_at(self, key: Hashable) -> float | None:
        """The due time of a queued key, else None."""
        e = self._live.get(key)
        return None if e is None else e[0]

    def next_due(self) -> float | None:
        """The earliest due time in the queue, or None when empty."""
        heap, live = self._heap, self._live
        while heap:
            due, seq, key = heap[0]
            e = live.get(key)
            if e is not None and e[1] == seq:
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, limit: int) -> list[Hashable]:
        """Remove and return up to ``limit`` keys with due time <= now, oldest due first."""
        out: list[Hashable] = []
        if limit <= 0:
            return out
        heap, live = self._heap, self._live
        pop = heapq.heappop
        while heap and len(out) < limit:
            due, seq, key = heap[0]
            e = live.get(key)
            if e is None or e[1] != seq:
                pop(heap)
                continue
            if due > now:
                break
            pop(heap)
            del live[key]
            out.append(key)
        return out

    def keys(self) -> Iterable[Hashable]:
        """The queued keys (any order)."""
        return self._live.keys()


# --------------------------------------------------------------------------------------------
# 6. Rolling statistics
# --------------------------------------------------------------------------------------------


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
