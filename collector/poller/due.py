"""When each instrument is next due: the fixed-rate grid (:func:`advance_due`) and the
oldest-due-first queue (:class:`DueQueue`) that keeps the loop fair under overload.

Pure and single-threaded like every scheduling piece of the poller: the loop thread owns it
and passes the monotonic time ``now`` (seconds) into every method; nothing here reads a clock,
sleeps or uses global randomness, so tests drive it with a fake clock. Not thread-safe.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable

__all__ = ["DueQueue", "advance_due"]

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
