"""A venue's minimum request spacing, shared by every collector process on the host.

Limitless allows one request per 300 ms per caller, and its discovery and the poller run in
separate processes (Prefect runs each flow in its own). Each keeps its own budget, but both take
their start times from here: one "next free start" (CLOCK_MONOTONIC, the same clock in every
process of a host) in an 8-byte file under the data directory, read and written under ``flock``.
Without it a discovery page lands between two poller requests only by luck and meets a 429.

The same file carries a *hold*: a 429's Retry-After seen by any process pauses every process,
because the venue counts requests per caller, not per process (a discovery page that drew a
429 must stop the poller's book requests too, and the other way round).

If the file cannot be used (read-only data directory, no ``fcntl``), the spacing falls back to
this process alone, with one warning: pacing must never stop the collector.

:class:`SharedSpacing` implements the blocking pacing protocol of :mod:`collector.venues.pacing`.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

try:
    import fcntl
except ImportError:  # not on Windows: per-process spacing only
    fcntl = None  # type: ignore[assignment]

from collector.store import layout

log = logging.getLogger(__name__)
R = TypeVar("R")

_SLOT = struct.Struct("<dd")  # next free start, hold until (CLOCK_MONOTONIC seconds)
_OLD_SLOT = struct.Struct("<d")  # files written before the hold existed
# A stored start further ahead than this comes from an earlier boot (CLOCK_MONOTONIC restarts).
_STALE_S = 600.0


def spacing_path(data_dir: str | os.PathLike[str], venue: str) -> Path:
    """``<data_dir>/<venue>/state/request_spacing``, next to the venue's snapshot."""
    return layout.request_spacing_path(data_dir, venue)


class SharedSpacing:
    """Request starts at least ``spacing_s`` apart across threads and processes (a ``BlockingPacing``).

    ``try_acquire(now)`` is for the poller's non-blocking loop; ``wait()`` reserves the next free
    start (ahead of anyone who only tries) and sleeps until it, for discovery paging.
    """

    def __init__(self, path: str | os.PathLike[str], spacing_s: float) -> None:
        self.path = Path(path)
        self.spacing_s = float(spacing_s)
        self._lock = threading.Lock()
        self._local_next = -math.inf
        self._local_hold = -math.inf
        self._fd: int | None = None
        if fcntl is None:
            log.warning("shared request spacing: no fcntl on this platform; spacing is per process")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            log.warning("shared request spacing: cannot open %s (%s); spacing is per process", self.path, e)

    @property
    def shared(self) -> bool:
        return self._fd is not None

    def _update(self, step: Callable[[float, float], tuple[float, float, R]]) -> R:
        """Apply ``step(next_free, hold) -> (next_free, hold, result)`` atomically."""
        with self._lock:
            if self._fd is not None:
                try:
                    return self._update_file(self._fd, step)
                except OSError as e:
                    log.warning("shared request spacing: %s failed (%s); spacing is per process", self.path, e)
                    self._close()
            self._local_next, self._local_hold, result = step(self._local_next, self._local_hold)
            return result

    def _update_file(self, fd: int, step: Callable[[float, float], tuple[float, float, R]]) -> R:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, _SLOT.size, 0)
            if len(raw) == _SLOT.size:
                nxt, hold = _SLOT.unpack(raw)
            elif len(raw) == _OLD_SLOT.size:
                nxt, hold = _OLD_SLOT.unpack(raw)[0], -math.inf
            else:
                nxt = hold = -math.inf
            limit = time.monotonic() + _STALE_S
            nxt = -math.inf if math.isnan(nxt) or nxt > limit else nxt
            hold = -math.inf if math.isnan(hold) or hold > limit else hold
            new_next, new_hold, result = step(max(nxt, self._local_next), max(hold, self._local_hold))
            if (new_next, new_hold) != (nxt, hold) or len(raw) != _SLOT.size:
                os.pwrite(fd, _SLOT.pack(new_next, new_hold), 0)
            self._local_next, self._local_hold = new_next, new_hold
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def try_acquire(self, now: float) -> bool:
        """Take the start at ``now`` if it is free and no hold is in force."""

        def step(nxt: float, hold: float) -> tuple[float, float, bool]:
            if now >= nxt and now >= hold:
                return now + self.spacing_s, hold, True
            return nxt, hold, False

        return self._update(step)

    def next_allowed(self, now: float) -> float:
        """Earliest start >= now that is free (someone may take it first)."""
        return self._update(lambda nxt, hold: (nxt, hold, max(now, nxt, hold)))

    def reserve(self, now: float) -> float:
        """Book the next free start >= now (after any hold) and return it."""

        def step(nxt: float, hold: float) -> tuple[float, float, float]:
            start = max(now, nxt, hold)
            return start + self.spacing_s, hold, start

        return self._update(step)

    def hold(self, until: float) -> None:
        """No process may start a request before ``until`` (a 429's Retry-After)."""
        until = min(until, time.monotonic() + _STALE_S)  # a longer one would read back as stale
        self._update(lambda nxt, hold: (nxt, max(hold, until), None))

    def held_until(self, now: float) -> float:
        """End of the hold in force at ``now``, or ``now`` when there is none."""
        return self._update(lambda nxt, hold: (nxt, hold, max(now, hold)))

    def wait(self) -> None:
        """Reserve the next free start and sleep until it."""
        now = time.monotonic()
        start = self.reserve(now)
        if start > now:
            time.sleep(start - now)

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._close()

