"""Advances the books somebody watches when their next change is due, so a feed speaks at the
change's own time even when no REST request looks at the book.

One heap of (due ms, book) and one event-loop timer armed for the earliest entry: a wake-up
costs only the books that are due, never a scan. A REST read that made a book catch up leaves
a stale entry behind; it pops, finds nothing due and is pushed again at the new due time.
A late wake-up (a busy loop, a descheduled process) still plays the changes in time order
across books: each pop advances its book by one change only, then pushes it back.

Wake-ups are at least ``gap_ms`` apart: the changes due in between go out together, so each
connection gets them in one socket write. A write (a system call) costs more than building a
frame, so this is what lets the feed keep up at thousands of changes a second; the price is up
to ``gap_ms`` of delay, never a wrong timestamp (every change keeps its own tick time).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sys
import time
import traceback
from typing import Any

from collector.model.clock import now_ms
from collector.sim.clock import INF_MS, LazyBook, Listener

# The longest one wake-up plays changes before it lets the event loop run.
BUDGET_S = 0.02


class BookTimer:
    def __init__(self, gap_ms: float = 5.0) -> None:
        self.gap_ms = max(0.0, gap_ms)
        self.last_fire_ms = 0
        self.heap: list[tuple[int, int, LazyBook]] = []
        self.due: dict[LazyBook, int] = {}  # the live entry of each watched book
        self.seq = itertools.count()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.armed_ms = INF_MS
        self.reset_stats()

    def reset_stats(self) -> None:
        self.wakeups = 0
        self.advances = 0
        self.lag_sum = 0
        self.lag_max = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._arm()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = None
        self.loop = None

    def watch(self, book: LazyBook, listener: Listener) -> None:
        book.listener = listener
        self._push(book)
        if book.next_ms < self.armed_ms:
            self._arm()

    def unwatch(self, book: LazyBook) -> None:
        book.listener = None
        self.due.pop(book, None)

    def watching(self, book: LazyBook) -> bool:
        return book.listener is not None

    def _push(self, book: LazyBook) -> None:
        ms = book.next_ms
        if ms >= INF_MS:  # frozen: it will never change again
            self.due.pop(book, None)
            return
        if self.due.get(book) == ms:
            return
        self.due[book] = ms
        heapq.heappush(self.heap, (ms, next(self.seq), book))

    def _arm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.armed_ms = INF_MS
        if self.loop is None or not self.heap:
            return
        ms = self.heap[0][0]
        self.armed_ms = ms
        when = max(ms, self.last_fire_ms + self.gap_ms)
        self.handle = self.loop.call_later(max(0.0, (when - now_ms()) / 1000.0), self._fire)

    def _fire(self) -> None:
        self.handle = None
        self.armed_ms = INF_MS
        self.wakeups += 1
        now = self.last_fire_ms = now_ms()
        heap, due = self.heap, self.due
        # Overloaded (more changes due than the process can play), play a slice and let the
        # loop serve REST, control and the writers before the next: lag grows, visibly (stats),
        # instead of the whole simulator going deaf.
        budget = time.perf_counter() + BUDGET_S
        popped = 0
        while heap and heap[0][0] <= now:
            popped += 1
            if not popped & 31 and time.perf_counter() > budget:
                break
            ms, _, book = heapq.heappop(heap)
            if due.get(book) != ms:
                continue
            del due[book]
            if book.listener is None:
                continue
            if book.next_ms <= now:
                lag = now - book.next_ms
                self.lag_sum += lag
                self.advances += 1
                if lag > self.lag_max:
                    self.lag_max = lag
                try:
                    book.advance(book.next_ms)
                except Exception:  # noqa: BLE001 - one bad book must not stop every feed
                    traceback.print_exc(file=sys.stderr)
            if book.listener is not None:
                self._push(book)
        self._arm()

    def stats(self) -> dict[str, Any]:
        return {
            "watched": len(self.due),
            "heap": len(self.heap),
            "wakeups": self.wakeups,
            "advances": self.advances,
            "lag_ms_mean": round(self.lag_sum / self.advances, 2) if self.advances else 0.0,
            "lag_ms_max": self.lag_max,
            # How far the oldest change still to play is behind the clock (0: keeping up).
            "behind_ms": max(0, now_ms() - self.heap[0][0]) if self.heap else 0,
        }
