"""One venue's stream capture, on the poller's loop thread: membership over a pool of
connections, every instrument's book and sync state, gaps, resyncs and the REST link.

Venue-neutral: what a message means is the venue feed's business (collector.stream.polymarket,
collector.stream.limitless); this class owns the states they move instruments through:

* ``waiting``: subscribed, no book yet (after start, a reconnect or a resubscription);
* ``live``: the book is built from the feed and trusted; REST polls it only at the slow
  reconciliation cadence (``rest_interval_s``);
* ``resync``: the book disagreed with the venue; changes are still recorded (``synced`` false)
  and kept, a REST book is on its way, then it is swapped in and the kept changes after it are
  replayed.

Every outage of a live book is a ``gap`` record in ``book_changes``, written when the book is
back (its next ``book_snapshot``), on removal, or at shutdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from collector.config.streams import StreamSettings
from collector.model.clock import now_ms
from collector.model.records import BookRecord, GapRecord, Instrument
from collector.model.stream_records import BookChangeRecord, BookSnapshotRecord
from collector.store import layout
from collector.store.writer_set import WriterSet
from collector.stream.book import LocalBook
from collector.stream.conn import FeedConnection
from collector.stream.events import FeedBad, FeedDown, FeedMessage, FeedUp
from collector.stream.stats import StreamCounters

log = logging.getLogger(__name__)

WAITING, LIVE, RESYNC = "waiting", "live", "resync"


def _price(level: Any) -> float:
    return float(level[0])  # canonical decimal text; distinct ticks stay distinct as floats
_TICK_S = 0.25


@dataclass(slots=True)
class Tracked:
    """One subscribed instrument."""

    inst: Instrument
    key: str
    index: int  # its connection's slot in the pool
    book: LocalBook = field(default_factory=LocalBook)
    status: str = WAITING
    gap_from_ms: int | None = None  # an open gap: the last moment the book was known good
    gap_reason: str | None = None
    last_msg_mono: float | None = None
    last_good_ts_ms: int | None = None  # receive time of the last record we trust
    # a failed check: (since monotonic, venue ts text, hash, why, receive ts_ms of the last good record)
    suspect: tuple[float, str, str | None, str, int | None] | None = None
    resync_since: float | None = None
    resync_asked: float | None = None
    buffer: list[Any] = field(default_factory=list)  # changes kept while resyncing (venue's own form)
    overflow: bool = False
    floor_ts: int | None = None  # after a REST swap: changes at or before this venue time are in it
    params: Any = None  # venue data the feed keeps per instrument (e.g. hash inputs)
    waiting_since: float = field(default_factory=time.monotonic)  # when it last became ``waiting``


class StreamLane:
    """A venue's connections and instruments. Only the loop thread calls it."""

    def __init__(self, venue: str, settings: StreamSettings, feed: Any, rest: Any, writers: WriterSet,
                 out: Any) -> None:
        self.venue = venue
        self.s = settings
        self.feed = feed  # the venue part: on_message / on_rest / on_up / rest_interval
        self.rest = rest  # the venue's poller Lane (expedite, interval)
        self.out = out  # the loop's queue, handed to connection threads
        self.records = writers.get(venue, layout.BOOK_CHANGES_STREAM)
        self.trades: Any = None  # the venue's trade capture (collector.trades.TradesLane), when on
        self.conns: list[FeedConnection] = []
        self.conn_ids: list[str] = []
        self.counts: list[int] = []
        self.tracked: dict[str, Tracked] = {}
        self.c = StreamCounters()
        self._next_tick = 0.0
        self._period_start = time.monotonic()
        self._closed = False
        self._ended = False

    # -- membership ----------------------------------------------------------------------------
    def set_instruments(self, insts: list[Instrument], now: float) -> None:
        new = {self.feed.key_of(i): i for i in insts}
        for key in [k for k in self.tracked if k not in new]:
            self._drop(key, now)
        adds: dict[int, list[str]] = {}
        for key, inst in new.items():
            t = self.tracked.get(key)
            if t is not None:
                t.inst = inst
                continue
            index = self._slot()
            self.tracked[key] = Tracked(inst=inst, key=key, index=index)
            self.counts[index] += 1
            adds.setdefault(index, []).append(key)
        for index, keys in adds.items():
            conn = self.conns[index]
            if conn.started:
                conn.subscribe(keys)
            else:  # not started yet: it subscribes its keys when it connects
                conn.keys.update(keys)
                if not self._closed:
                    conn.start()

    def _slot(self) -> int:
        for i, n in enumerate(self.counts):
            if n < self.s.max_per_connection:
                return i
        index = len(self.conns)
        self.conns.append(self.feed.connection_cls(self, index, self.out, self.s))
        self.conn_ids.append("")
        self.counts.append(0)
        return index

    def _drop(self, key: str, now: float) -> None:
        t = self.tracked.pop(key)
        self.counts[t.index] -= 1
        self.conns[t.index].unsubscribe([key])
        ts = now_ms()
        if t.status != WAITING and t.gap_from_ms is None:  # its stream ends here
            t.gap_from_ms, t.gap_reason = ts, "unsubscribed"
        self._close_gap(t, ts, None)

    # -- events from the connection threads --------------------------------------------------
    def on_event(self, ev: Any, now: float) -> None:
        if type(ev) is FeedMessage:
            self.conns[ev.index].backlog.release()
            if ev.conn != self.conn_ids[ev.index]:
                return  # a late message of a connection already replaced
            self.c.messages += 1
            try:
                self.feed.on_message(self, ev)
            except Exception as e:  # noqa: BLE001 - one bad message must never stop the loop
                self.c.bad(f"{type(e).__name__}")
                log.warning("%s stream: message not handled (%s: %s)", self.venue, type(e).__name__, e)
        elif type(ev) is FeedUp:
            self.conn_ids[ev.index] = ev.conn
            self.c.connects += 1
            self.feed.on_up(self, ev.index, now)
        elif type(ev) is FeedDown:
            if ev.conn != self.conn_ids[ev.index]:
                if ev.reason != "stopped":  # it never came up: a failed connection attempt
                    self.c.connect_failures += 1
                    log.warning("%s stream: connecting failed: %s %s", self.venue, ev.reason, ev.detail)
                return
            self.conn_ids[ev.index] = ""
            if ev.reason == "stopped":
                return  # our own shutdown: close() records where the books end
            self.c.disconnects += 1
            log.warning("%s stream %s down: %s %s", self.venue, ev.conn, ev.reason, ev.detail)
            # Trades were last heard when the connection last received anything (a silent one
            # went quiet long before it was dropped).
            heard = ev.ts_ms - int(max(0.0, now - self.conns[ev.index].last_rx) * 1000)
            for t in self.tracked.values():
                if t.index == ev.index:
                    self._lose(t, ev.ts_ms, f"ws_{ev.reason}", now)
                    if self.trades is not None:
                        self.trades.feed_down(t.inst.instrument_id, heard)
        elif type(ev) is FeedBad:
            self.c.bad("not_json")
            log.warning("%s stream %s: %s", self.venue, ev.conn, ev.detail)

    def _lose(self, t: Tracked, ts_ms: int, reason: str, now: float) -> None:
        """The book stopped being known (its connection went, or it is resubscribed)."""
        if t.status != WAITING and t.gap_from_ms is None:
            t.gap_from_ms = t.last_good_ts_ms if t.last_good_ts_ms is not None else ts_ms
            t.gap_reason = reason
        t.status = WAITING
        t.waiting_since = now
        t.suspect = None
        t.buffer = []
        t.overflow = False
        self.rest.expedite(t.key, now)  # REST at full rate until the book is back

    # -- what the venue feeds call -----------------------------------------------------------
    def snapshot(self, t: Tracked, msg: FeedMessage | None, reason: str, source: str = "ws",
                 hash_ok: bool | None = None) -> None:
        """Record ``t.book`` whole and mark it live (closing its open gap first)."""
        ts = msg.ts_ms if msg is not None else now_ms()
        self._close_gap(t, ts, None)
        b = t.book
        bids, asks = b.levels()
        conn = msg.conn if msg is not None else self.conn_ids[t.index]
        seq = msg.seq if msg is not None else self.conns[t.index].seq
        rec = BookSnapshotRecord(self.venue, t.inst.instrument_id, ts, b.ob_ts_ms, conn, seq, reason, bids, asks,
                                 b.hash, hash_ok, self.feed.tick_text(b), self.feed.ltp_text(b), source)
        self.records.write(rec.to_json())
        self.c.snapshots += 1
        if self.trades is not None:  # its feed is back: what it missed is fetched
            self.trades.feed_up(t.inst.instrument_id, ts, time.monotonic())
        t.status = LIVE
        t.suspect = None
        t.resync_since = t.resync_asked = None
        t.buffer = []
        t.overflow = False
        t.last_good_ts_ms = ts
        if msg is not None:
            t.last_msg_mono = msg.mono

    def change(self, t: Tracked, msg: FeedMessage, bids: list, asks: list, hash_: str | None,
               hash_ok: bool | None, tick_size: str | None = None) -> None:
        bb, ba = t.book.best()
        synced = t.status == LIVE
        # Best-first, as every record's levels (a venue message lists them in its own order; a
        # stable sort keeps two sets of one price in message order, so the last still wins).
        if len(bids) > 1:
            bids = sorted(bids, key=_price, reverse=True)
        if len(asks) > 1:
            asks = sorted(asks, key=_price)
        rec = BookChangeRecord(self.venue, t.inst.instrument_id, msg.ts_ms, t.book.ob_ts_ms, msg.conn, msg.seq,
                               bids, asks, bb, ba, hash_, hash_ok, tick_size, synced)
        self.records.write(rec.to_json())
        self.c.changes += len(bids) + len(asks)
        self.c.change_records += 1
        t.last_msg_mono = msg.mono
        if synced and hash_ok is not False:
            t.last_good_ts_ms = msg.ts_ms

    def write(self, rec: Any) -> None:
        self.records.write(rec.to_json())

    def resync(self, t: Tracked, reason: str, now: float) -> None:
        """The book cannot be trusted: keep recording, fetch a REST book, swap it in."""
        if t.status == RESYNC:
            return
        if t.status == WAITING:  # nothing to repair yet: the subscription's snapshot will do
            return
        self.c.resyncs += 1
        self.c.mismatch(reason)
        if t.gap_from_ms is None:
            good = t.suspect[4] if t.suspect else t.last_good_ts_ms
            t.gap_from_ms = good if good is not None else now_ms()
            t.gap_reason = f"resync:{reason}"
        t.status = RESYNC
        t.suspect = None
        t.resync_since = t.resync_asked = now
        t.buffer = []
        t.overflow = False
        log.info("%s stream: resync %s (%s)", self.venue, t.inst.instrument_id, reason)
        self.rest.expedite(t.key, now)
        if reason == "stalled":  # the subscription itself is suspect: ask the venue again
            self.c.resubscribes += 1
            conn = self.conns[t.index]
            conn.unsubscribe([t.key])
            conn.subscribe([t.key])

    def repaired(self, t: Tracked, why: str) -> None:
        """A full venue book showed ours was wrong: the span since it was last trusted is a gap
        (closed by the snapshot that follows)."""
        self.c.mismatch(why)
        if t.gap_from_ms is None:
            t.gap_from_ms = t.suspect[4] if t.suspect else (t.last_good_ts_ms or now_ms())
            t.gap_reason = f"repaired:{why}"

    def keep(self, t: Tracked, item: Any) -> None:
        """Keep a change for replay after the resync's REST book."""
        if len(t.buffer) >= self.s.resync_buffer:
            t.overflow = True
            t.buffer = []
        if not t.overflow:
            t.buffer.append(item)

    def _close_gap(self, t: Tracked, to_ms: int, why: str | None) -> None:
        if t.gap_from_ms is None:
            return
        reason = t.gap_reason or "unknown"
        if why is not None:
            reason = f"{reason}:{why}"
        self.records.write(GapRecord(self.venue, t.inst.instrument_id, t.gap_from_ms, max(to_ms, t.gap_from_ms),
                                     reason).to_json())
        self.c.gaps += 1
        t.gap_from_ms = t.gap_reason = None

    # -- the REST link (called by the poller Lane) ----------------------------------------
    def interval(self, key: str, default: float, now: float) -> float:
        t = self.tracked.get(key)
        if t is None or t.status != LIVE or not self.conns[t.index].connected:
            return default
        return self.feed.rest_interval(self, t, now)

    def fresh(self, key: str, now: float) -> float | None:
        """Monotonic time the stream last vouched for this book (now while live and connected)."""
        t = self.tracked.get(key)
        if t is None:
            return None
        if t.status == LIVE and self.conns[t.index].connected:
            return now
        return t.last_msg_mono if t.status == LIVE else None

    def on_rest_book(self, key: str, rec: BookRecord, raw: Any, sent: float, now: float) -> None:
        t = self.tracked.get(key)
        if t is None:
            return
        self.c.rest_samples += 1
        try:
            self.feed.on_rest(self, t, rec, raw, sent, now)
        except Exception as e:  # noqa: BLE001 - a bad REST book costs a comparison, not the loop
            self.c.bad(f"rest:{type(e).__name__}")
            log.warning("%s stream: REST book not used (%s: %s)", self.venue, type(e).__name__, e)

    # -- timers, stats, shutdown --------------------------------------------------------------
    def tick(self, now: float) -> None:
        if now < self._next_tick:
            return
        self._next_tick = now + _TICK_S
        # Polymarket's failed hash checks, Kalshi's REST disagreements
        grace = getattr(self.s, "hash_grace_s", None) or getattr(self.s, "rest_grace_s", 2.0)
        expired = getattr(self.feed, "suspect_expired", None)  # the venue's own repair, when it has one
        for t in self.tracked.values():
            if t.status == RESYNC and t.resync_asked is not None and now - t.resync_asked > self.s.resync_timeout_s:
                t.resync_asked = now
                self.c.resync_retries += 1
                self.rest.expedite(t.key, now)
            elif t.suspect is not None and now - t.suspect[0] > grace:
                if expired is not None:
                    expired(self, t, now)
                else:
                    self.resync(t, t.suspect[3], now)

    def stats(self, now: float) -> dict[str, Any]:
        """The ``stream`` object of this period's poll_stats record (counters restart)."""
        c, self.c = self.c, StreamCounters()
        period, self._period_start = now - self._period_start, now
        ages = [now - conn.last_rx for conn in self.conns if conn.connected]
        return c.fields(
            period,
            connections=sum(1 for conn in self.conns if conn.connected),
            subscribed=len(self.tracked),
            live=sum(1 for t in self.tracked.values() if t.status == LIVE),
            reconnects=sum(conn.reconnects for conn in self.conns),
            blocked_s=round(sum(conn.blocked_s for conn in self.conns), 3),
            last_message_age_s=round(max(ages), 3) if ages else None,
        )

    def stop(self) -> None:
        """Ask every connection thread to stop (they stop receiving at once)."""
        self._closed = True
        for conn in self.conns:
            conn.stop()

    def join(self, timeout_s: float = 2.0) -> None:
        end = time.monotonic() + timeout_s
        for conn in self.conns:
            conn.join(max(0.0, end - time.monotonic()))

    def close(self) -> None:
        """Record that every book's stream ends here (after stop, join and the last messages)."""
        if self._ended:
            return
        self._ended = True
        self.stop()
        ts = now_ms()
        for t in self.tracked.values():
            if t.status != WAITING and t.gap_from_ms is None:
                t.gap_from_ms, t.gap_reason = ts, "stream_stopped"
            self._close_gap(t, ts, None)
