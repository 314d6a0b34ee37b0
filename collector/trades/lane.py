"""One venue's trade capture on the poller's loop thread: which tapes (scopes) to read and when,
what each fetch fills, and the ``gap`` records of the ``trades`` stream.

A scope is one tape of the venue's trades endpoint: a market (Polymarket, Limitless) or the whole
venue (Kalshi). Its *mark* is the wall time up to which the tape is known recorded:

* a polled tape (``rest_poll``) is read every ``poll_interval_s`` from its mark minus
  ``overlap_s``; a complete answer moves the mark to when the request went out;
* a tape the feed carries (Polymarket) is complete while the feed is up; from when an
  instrument is tracked to its feed's first snapshot (``feed_start``), and when its feed goes
  down and comes back (``feed_down``), the span is fetched (``backfill``) and written as a gap
  record saying whether the fetch covered it;
* at start, the previous run's marks and last-alive time (``state/trades.shard-*.json``) say
  what the downtime was: every tape is read back over it and the span is a ``restart`` gap (on a
  fed tape, running on to the feed's first snapshot, in place of ``feed_start``).

Duplicates (a trade the feed and a backfill both brought, a re-read overlap) are dropped by key
(collector.trades.tape). Nothing here blocks: fetches run on the venue's trades thread.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from collector.config.trades import VenueTradesSettings
from collector.model.clock import now_ms
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord
from collector.store import layout
from collector.store.writer_set import WriterSet
from collector.trades.fetcher import FetchJob, TradesFetched, TradesFetcher
from collector.trades.tape import TapeState, TradeTape
from collector.venues.trades import TradesSource

log = logging.getLogger(__name__)

Gap = tuple[str | None, int, int, str]  # (instrument_id or None for the venue tape, from, to, reason)
_SAVE_S = 5.0
_MAX_RETRY_S = 300.0
_GAP_TRIES = 4  # a gap's backfill is tried this many times before it is written as not backfilled


class TradesLane:
    def __init__(self, venue: str, ts: VenueTradesSettings, source: TradesSource | None, writers: WriterSet,
                 out: Any, data_dir: Path, shard_slug: str, safety_s: float, feed: bool = False) -> None:
        """``feed``: the venue's stream capture is on (a venue whose feed carries its trades polls
        its tape only without it)."""
        self.venue = venue
        self.s = ts
        self.source = source
        self.start_ms = now_ms()
        self.tape = TradeTape(venue, writers, int((ts.max_backfill_s + ts.overlap_s + safety_s) * 1000) + 60_000)
        self.state = TapeState(layout.trades_state_path(data_dir, venue, shard_slug))
        self.prev_alive, self.prev_marks = self.state.load()
        self.recovered = self.tape.recover(data_dir, self.start_ms)
        self.safety_ms = int(safety_s * 1000)  # marks read back from the state may be this far ahead of the disk
        self.polled = bool(source is not None and ts.rest_poll)
        from_feed = bool(source is not None and getattr(source, "from_feed", False) and not ts.rest_poll)
        # The feed carries this venue's trades: an instrument's are recorded from its feed's
        # first book snapshot on, and what happened before that is fetched (see feed_up).
        self.fed = from_feed and feed
        if from_feed and not feed:
            log.warning("%s trades: the stream is off, so no trades arrive; set trades.%s.rest_poll = true to "
                        "poll the trades endpoint per market instead", venue, venue)
        self.fetcher = None
        if source is not None and (self.polled or ts.backfill):
            self.fetcher = TradesFetcher(venue, source, out, self)
        self.insts: dict[str, dict[str, Instrument]] = {}  # scope -> poll key -> instrument
        self.scope_of: dict[str, str] = {}  # instrument_id -> scope
        self.marks: dict[str, int] = {}
        self.due: dict[str, float] = {}  # scope -> monotonic time of its next fetch
        self.busy: set[str] = set()
        self.pending: dict[str, list[Gap]] = {}  # gaps waiting for their scope's next fetch
        self.tries: dict[str, int] = {}
        # instrument_id -> (since when its feed has not carried its trades, the gap's reason)
        self.down: dict[str, tuple[int, str]] = {}
        self._next_save = self._next_scan = 0.0
        self.save_every_s = _SAVE_S
        self._started = False
        self._closed = False
        self._failing = False
        self._write_trouble: int | None = None
        self._last_turn_ms = self._last_drop_ms = self.start_ms
        self._reset_counts()
        if self.recovered or self.prev_alive:
            log.info("%s trades: %d recorded trade keys read back; previous run alive until %s",
                     venue, self.recovered, self.prev_alive)

    def _reset_counts(self) -> None:
        self.c_fetches = self.c_fetch_errors = self.c_from_feed = self.c_from_rest = self.c_bad = 0
        self.c_bad_kinds: dict[str, int] = {}
        self._w0, self._d0, self._g0 = self.tape.written, self.tape.duplicates, self.tape.gaps

    # -- membership ------------------------------------------------------------------------------
    def set_instruments(self, insts: list[Instrument], now: float) -> None:
        if self.source is None:
            self.scope_of = {i.instrument_id: "" for i in insts}
            return
        scopes: dict[str, dict[str, Instrument]] = {}
        for i in insts:
            scopes.setdefault(self.source.scope_of(i), {})[i.poll_key] = i
        first = not self._started
        self._started = True
        restart = first and self.prev_alive is not None  # the downtime is owed
        fresh_ms = (self.start_ms if first else now_ms()) - int(self.s.first_lookback_s * 1000)
        for scope, members in scopes.items():
            frm = self._restart_from(scope) if restart else None
            if self.fed:  # until its feed's first snapshot, an instrument's trades are owed from here
                since, why = (frm, "restart") if frm is not None else (fresh_ms, "feed_start")
                for i in members.values():
                    if i.instrument_id not in self.scope_of:
                        self.down.setdefault(i.instrument_id, (since, why))
                self.marks.setdefault(scope, since - (self.safety_ms if frm is not None else 0))
                continue
            if scope in self.insts:
                continue
            if frm is not None:
                ids = [None] if not self.source.per_market else [i.instrument_id for i in members.values()]
                gaps = [(iid, frm, self.start_ms, "restart") for iid in ids]
                self.marks[scope] = frm - self.safety_ms
                if self.fetcher is not None:
                    self.pending.setdefault(scope, []).extend(gaps)
                    self.due[scope] = now
                else:
                    for g in gaps:
                        self.tape.gap(*g, False)
            else:
                self.marks[scope] = fresh_ms
                if self.polled:
                    self.due[scope] = now
        for scope in [s for s in self.insts if s not in scopes]:
            for key in ("due", "marks", "pending", "tries"):
                getattr(self, key).pop(scope, None)
        self.insts = scopes
        self.scope_of = {i.instrument_id: scope for scope, m in scopes.items() for i in m.values()}
        for iid in [i for i in self.down if i not in self.scope_of]:
            del self.down[iid]
        if self.fetcher is not None and not self._closed and first:
            self.fetcher.start()

    def _restart_from(self, scope: str) -> int:
        """Where a restart reads ``scope`` back from: its saved mark, never after the last-alive time."""
        prev = self.prev_marks.get(scope)
        return min(prev if prev is not None else self.prev_alive, self.prev_alive)

    # -- what the feeds call ---------------------------------------------------------------------
    def feed_trade(self, rec: TradeRecord) -> None:
        if self.tape.add(rec):
            self.c_from_feed += 1

    def feed_bad(self, why: str) -> None:
        self.c_bad += 1
        self.c_bad_kinds[why] = self.c_bad_kinds.get(why, 0) + 1

    def feed_down(self, instrument_id: str, ts_ms: int) -> None:
        if instrument_id in self.scope_of:
            self.down.setdefault(instrument_id, (ts_ms, "feed_down"))

    def feed_up(self, instrument_id: str, ts_ms: int, now: float) -> None:
        down = self.down.pop(instrument_id, None)
        if down is None:
            return
        gap = (instrument_id, down[0], ts_ms, down[1])
        scope = self.scope_of.get(instrument_id)
        if self.fetcher is None or not self.s.backfill or scope is None:
            self.tape.gap(*gap, False)
            return
        self.pending.setdefault(scope, []).append(gap)
        self.due[scope] = min(self.due.get(scope, math.inf), now)

    # -- the loop's timers -----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        self._watch_writes(now)
        if self.fetcher is not None and now >= self._next_scan:
            self._next_scan = now + 0.05  # the loop turns far more often than fetches fall due
            for scope, when in list(self.due.items()):
                if when <= now and scope not in self.busy:
                    self._submit(scope, now)
        if now >= self._next_save:
            self._next_save = now + self.save_every_s
            self.tape.forget_older(now_ms())
            self.state.save(self._marks_now())

    def _watch_writes(self, now: float) -> None:
        """A full or failing disk drops trades: from the turn before the first drop until the writer
        works again, every tape is owed a backfill (``write_failed``)."""
        wall = now_ms()
        if self.tape.settle():
            self._last_drop_ms = wall
            if self._write_trouble is None:
                self._write_trouble = self._last_turn_ms
                log.warning("%s trades: the writer dropped trades; they are fetched again once it writes", self.venue)
        # The writer is healthy again, or has dropped nothing for a while (a quiet venue writes
        # nothing that would clear its failing flag; a backfill into a still-full disk starts over).
        elif self._write_trouble is not None and (self.tape.writing() or wall - self._last_drop_ms > 10_000):
            for scope in self.insts:
                for iid in self._ids(scope):
                    gap = (iid, self._write_trouble, wall, "write_failed")
                    if self.fetcher is not None and self.s.backfill:
                        self.pending.setdefault(scope, []).append(gap)
                        self.due[scope] = min(self.due.get(scope, math.inf), now)
                    else:
                        self.tape.gap(*gap, False)
            self._write_trouble = None
        self._last_turn_ms = wall

    def _submit(self, scope: str, now: float) -> None:
        gaps = self.pending.get(scope, [])
        wall = now_ms()
        frm = self.marks.get(scope, wall)
        if gaps:
            frm = min(frm, min(g[1] for g in gaps))
        since = max(frm - int(self.s.overlap_s * 1000), wall - int(self.s.max_backfill_s * 1000))
        self.busy.add(scope)
        self.due[scope] = math.inf
        self.fetcher.submit(FetchJob(scope, self.insts.get(scope, {}), since, frm, gaps=list(gaps)))
        self.pending.pop(scope, None)

    def on_event(self, ev: TradesFetched, now: float) -> None:
        job, res = ev.job, ev.result
        scope = job.scope
        self.busy.discard(scope)
        self.c_fetches += 1
        for why, n in res.bad.items():
            self.c_bad += n
            self.c_bad_kinds[why] = self.c_bad_kinds.get(why, 0) + n
        for rec in res.trades:
            if self.tape.add(rec):
                self.c_from_rest += 1
        if scope not in self.insts:
            return  # dropped meanwhile
        covered = res.covered_from_ms
        if res.error is not None:
            self.c_fetch_errors += 1
            tries = self.tries[scope] = self.tries.get(scope, 0) + 1
            # One warning per venue until a fetch succeeds again (a missing endpoint fails for every
            # market), then the count in poll_stats (trades.fetch_errors).
            level = logging.WARNING if not self._failing else logging.DEBUG
            self._failing = True
            log.log(level, "%s trades: fetch of %r failed (%s: %s), try %d", self.venue, scope or "the tape",
                    res.error.kind, res.error, tries)
            for g in job.gaps:
                if covered is not None and covered <= g[1]:
                    self.tape.gap(*g, True)  # paged back past it before the error
                elif tries >= _GAP_TRIES:
                    self.tape.gap(*g, False)
                else:
                    self.pending.setdefault(scope, []).append(g)
            self._reschedule(scope, now, min(_MAX_RETRY_S, self.s.poll_interval_s * 2 ** tries))
            return
        self.tries.pop(scope, None)
        if self._failing:
            self._failing = False
            log.info("%s trades: fetching works again", self.venue)
        for g in job.gaps:
            self.tape.gap(*g, covered is not None and covered <= g[1])
        # A polled tape read back less far than its mark (pages ran out, or the mark is older
        # than max_backfill_s after a long outage): the rest is a gap.
        if self.polled and not job.gaps and (covered is None or covered > job.want_ms):  # gaps say it themselves
            for iid in self._ids(scope):
                self.tape.gap(iid, job.want_ms, covered if covered is not None else job.started_ms,
                              "trades_backlog", False)
        self.marks[scope] = max(self.marks.get(scope, 0), job.started_ms)
        self._reschedule(scope, now, self.s.poll_interval_s)

    def _reschedule(self, scope: str, now: float, after: float) -> None:
        if self.polled or self.pending.get(scope):
            self.due[scope] = now + (after if self.polled or self.tries.get(scope) else 0.0)
        else:
            self.due.pop(scope, None)

    def _ids(self, scope: str) -> list[str | None]:
        if self.source is not None and not self.source.per_market:
            return [None]
        return [i.instrument_id for i in self.insts.get(scope, {}).values()]

    def _marks_now(self) -> dict[str, int]:
        """What a restart may trust: a polled tape's mark; a fed tape is complete up to now unless
        one of its instruments' feed is down (then from then) or a backfill is still owed."""
        wall = now_ms()
        out = {}
        for scope in self.insts:
            m = self.marks.get(scope, wall) if self.polled else wall
            owed = [g[1] for g in self.pending.get(scope, [])]
            if owed:
                m = min(m, *owed)
            out[scope] = m
        for iid, (since, _) in self.down.items():
            scope = self.scope_of.get(iid)
            if scope is not None and scope in out:
                out[scope] = min(out[scope], since)
        return out

    # -- stats, shutdown -------------------------------------------------------------------------
    def stats(self, now: float) -> dict[str, Any]:
        t = self.tape
        out = {
            "recorded": t.written - self._w0, "duplicates": t.duplicates - self._d0, "gaps": t.gaps - self._g0,
            "from_feed": self.c_from_feed, "from_rest": self.c_from_rest, "fetches": self.c_fetches,
            "fetch_errors": self.c_fetch_errors, "bad": self.c_bad_kinds,
            "scopes": len(self.insts), "backfills_owed": sum(len(v) for v in self.pending.values()),
            "feeds_down": len(self.down),
        }
        self._reset_counts()
        return out

    def stop(self) -> None:
        self._closed = True
        if self.fetcher is not None:
            self.fetcher.stop()

    def join(self, timeout_s: float = 2.0) -> None:
        if self.fetcher is not None:
            self.fetcher.join(timeout_s)

    def close(self) -> None:
        """Save where every tape stands (durably): what is owed is fetched by the next start."""
        self.stop()
        self.state.save(self._marks_now(), durable=True)

