"""A venue's minimum request spacing, shared by every collector process on the host.

Limitless allows one request per 300 ms per caller, and its discovery and the poller run in
separate processes (Prefect runs each flow in its own). Each keeps its own budget, but both take
their start times from here: one "next free start" (CLOCK_MONOTONIC, the same clock in every
process of a host) in an 8-byte file under the data directory, read and written under ``flock``.
Without it a discovery page lands between two poller requests only by luck and meets a 429.

If the file cannot be used (read-only data directory, no ``fcntl``), the spacing falls back to
this process alone, with one warning: pacing must never stop the collector.
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

log = logging.getLogger(__name__)
R = TypeVar("R")

_SLOT = struct.Struct("<d")
# A stored start further ahead than this comes from an earlier boot (CLOCK_MONOTONIC restarts).
_STALE_S = 600.0


def spacing_path(data_dir: str | os.PathLike[str], venue: str) -> Path:
    """``<data_dir>/<venue>/state/request_spacing``, next to the venue's snapshot."""
    return Path(data_dir) / venue / "state" / "request_spacing"


class SharedSpacing:
    """Request starts at least ``spacing_s`` apart across threads and processes.

    ``try_acquire(now)`` is for the poller's non-blocking loop; ``wait()`` reserves the next free
    start (ahead of anyone who only tries) and sleeps until it, for discovery paging.
    """

    def __init__(self, path: str | os.PathLike[str], spacing_s: float) -> None:
        self.path = Path(path)
        self.spacing_s = float(spacing_s)
        self._lock = threading.Lock()
        self._local_next = -math.inf
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

    def _update(self, step: Callable[[float], tuple[float, R]]) -> R:
        """Apply ``step(next_free) -> (new_next_free, result)`` atomically; return the result."""
        with self._lock:
            if self._fd is not None:
                try:
                    return self._update_file(self._fd, step)
                except OSError as e:
                    log.warning("shared request spacing: %s failed (%s); spacing is per process", self.path, e)
                    self._close()
            self._local_next, result = step(self._local_next)
            return result

    def _update_file(self, fd: int, step: Callable[[float], tuple[float, R]]) -> R:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, _SLOT.size, 0)
            nxt = _SLOT.unpack(raw)[0] if len(raw) == _SLOT.size else -math.inf
            if math.isnan(nxt) or nxt > time.monotonic() + _STALE_S:
                nxt = -math.inf
            new, result = step(max(nxt, self._local_next))
            if new != nxt:
                os.pwrite(fd, _SLOT.pack(new), 0)
            self._local_next = new
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def try_acquire(self, now: float) -> bool:
        """Take the start at ``now`` if it is free."""

        def step(nxt: float) -> tuple[float, bool]:
            return (now + self.spacing_s, True) if now >= nxt else (nxt, False)

        return self._update(step)

    def next_allowed(self, now: float) -> float:
        """Earliest start >= now that is free (someone may take it first)."""
        return self._update(lambda nxt: (nxt, max(now, nxt)))

    def reserve(self, now: float) -> float:
        """Book the next free start >= now and return it."""

        def step(nxt: float) -> tuple[float, float]:
            start = max(now, nxt)
            return start + self.spacing_s, start

        return self._update(step)

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
