"""The trades thread of one venue: runs the fetches the loop thread asks for, one at a time, and
hands each answer back through the loop's queue. It owns no state: what to fetch, marks, gaps and
writes stay on the loop thread (collector.trades.lane). Requests are paced by the venue client
(inside the venue's shared spacing, books first)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.model.errors import VenueError
from collector.model.records import Instrument
from collector.venues.trades import TradeFetch, TradesSource

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FetchJob:
    scope: str
    insts: Mapping[str, Instrument]
    since_ms: int  # what the fetch asks for (want_ms less the overlap, capped at max_backfill_s)
    want_ms: int  # from where the tape must be read to be complete (its mark, or its oldest gap)
    started_ms: int = 0  # wall clock when the request went out (the mark a complete answer earns)
    # gaps this fetch decides: (instrument_id or None, from_ms, to_ms, reason)
    gaps: list[tuple[str | None, int, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class TradesFetched:
    target: Any  # the TradesLane
    job: FetchJob
    result: TradeFetch


class TradesFetcher:
    """One thread per venue running its trade fetches in order (the venue client paces them)."""

    def __init__(self, venue: str, source: TradesSource, out: Any, target: Any) -> None:
        self.venue = venue
        self.source = source
        self.out = out
        self.target = target
        self._jobs: queue.SimpleQueue[FetchJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"trades-{venue}", daemon=True)
        self._stop = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: FetchJob) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)

    def join(self, timeout_s: float) -> None:
        if self._thread.ident is not None:  # never started: a poller closed before its first snapshot
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            job.started_ms = int(time.time() * 1000)
            try:
                result = self.source.fetch(job.scope, job.insts, job.since_ms)
            except VenueError as e:
                result = TradeFetch([], None, error=e)
            except Exception as e:  # noqa: BLE001 - a parser bug costs this fetch, not the thread
                log.exception("%s trades: fetch of %r failed", self.venue, job.scope)
                result = TradeFetch([], None, error=VenueError(f"{type(e).__name__}: {e}", venue=self.venue))
            self.out.put(TradesFetched(self.target, job, result))
