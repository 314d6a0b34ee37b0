"""Limitless's Socket.IO feed: ``orderbookUpdate`` messages as whole books.

Whether an update is the whole book or a delta is UNCONFIRMED in the venue docs; like the public
SDKs we take each as a full replacement (a ``book_snapshot`` with reason ``update``), scaled by the
very normalizer of the REST path, and check it against REST on the venue academy's cadence: a
market the feed has been quiet on for ``quiet_reconcile_s`` is polled, and every market at least
every ``rest_interval_s``, through the poller's shared request spacing. The venue sends no book
after a subscription, so a (re)subscribed market's first book is a REST one.
"""

from __future__ import annotations

from typing import Any

from collector.model.errors import BadPayload
from collector.model.stream_records import (
    SNAPSHOT_RESYNC,
    SNAPSHOT_SUBSCRIBE,
    SNAPSHOT_UPDATE,
)
from collector.stream.book import LocalBook
from collector.stream.lane import LIVE, RESYNC, WAITING, StreamLane, Tracked
from collector.stream.sio_limitless import LimitlessConnection
from collector.venues.limitless import normalize_book
from collector.venues.numbers import lenient_time_ms


class LimitlessFeed:
    venue = "limitless"
    connection_cls = LimitlessConnection

    def __init__(self, settings: Any) -> None:
        self.s = settings

    def key_of(self, inst: Any) -> str:
        return inst.poll_key

    def tick_text(self, b: LocalBook) -> str | None:
        return b.tick_size

    def ltp_text(self, b: LocalBook) -> str | None:
        return b.last_trade_price

    def on_up(self, lane: StreamLane, index: int, now: float) -> None:
        for t in lane.tracked.values():
            if t.index == index:
                lane.rest.expedite(t.key, now)  # no book comes by itself: its first is a REST one

    def rest_interval(self, lane: StreamLane, t: Tracked, now: float) -> float:
        quiet = t.last_msg_mono is None or now - t.last_msg_mono >= self.s.quiet_reconcile_s
        return self.s.quiet_reconcile_s if quiet else self.s.rest_interval_s

    def on_message(self, lane: StreamLane, msg: Any) -> None:
        if msg.event != "orderbookUpdate":
            lane.c.bad(f"event:{msg.event}")
            return
        m = msg.data
        if type(m) is not dict:
            raise BadPayload("orderbookUpdate is not an object")
        t = lane.tracked.get(m.get("marketSlug"))
        if t is None:
            lane.c.unknown += 1
            return
        self._take(t, normalize_book(t.inst, m.get("orderbook"), msg.ts_ms, 0.0), lenient_time_ms(m.get("timestamp")))
        t.last_msg_mono = msg.mono
        reason = SNAPSHOT_UPDATE if t.status == LIVE else SNAPSHOT_RESYNC if t.status == RESYNC else SNAPSHOT_SUBSCRIBE
        lane.snapshot(t, msg, reason)

    @staticmethod
    def _take(t: Tracked, rec: Any, ob_ts_ms: int | None) -> None:
        b = t.book
        b.replace(rec.bids, rec.asks)
        b.ob_ts_ms = ob_ts_ms
        b.tick_size = rec.tick_size
        ltp = rec.extra.get("last_trade_price")
        b.last_trade_price = str(ltp) if ltp is not None else None

    def on_rest(self, lane: StreamLane, t: Tracked, rec: Any, raw: Any, sent: float, now: float) -> None:
        if t.status == WAITING:
            if not lane.conns[t.index].connected:
                return  # the feed is down: REST alone carries this market until it is back
            self._take(t, rec, None)
            lane.snapshot(t, None, SNAPSHOT_SUBSCRIBE, "rest")
            return
        if t.status == RESYNC or (t.last_msg_mono is not None and t.last_msg_mono > sent):
            if t.status == RESYNC and (t.resync_since is None or sent >= t.resync_since):
                self._take(t, rec, None)
                lane.snapshot(t, None, SNAPSHOT_RESYNC, "rest")
            return  # an update arrived while the request was out: the two cannot be ordered
        if (rec.bids, rec.asks) == t.book.levels():
            lane.c.rest_agreed += 1
            return
        lane.resync(t, "rest_differs", now)
        self._take(t, rec, None)
        lane.snapshot(t, None, SNAPSHOT_RESYNC, "rest")
