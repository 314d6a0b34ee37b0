"""Per-instrument exponential backoff with deterministic jitter (:class:`BackoffPolicy`).

The lane keeps each instrument's consecutive-failure count itself (``InstState.failures``);
this module only turns a count into a delay. Pure: no clock, no global randomness, so the same
instrument id and count give the same delay in every run and on every machine.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations; no runtime dependency on pydantic
    from collector.config.settings import PollerSettings

__all__ = ["BackoffPolicy"]

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
