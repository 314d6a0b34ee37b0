"""Polymarket's market channel: what each event does to our books and records.

Events (``event_type``): ``book`` (a whole book: on subscribe and after trades), ``price_change``
(levels of one or both tokens of a market, each entry with the venue's ``hash``, ``best_bid``,
``best_ask`` after it), ``last_trade_price``, ``tick_size_change``, and with the custom feature
``best_bid_ask``, ``new_market``, ``market_resolved``.

Checks: a crossed book, a best bid/ask that differs from what the venue says, or a hash that does
not reproduce makes the book *suspect*. A later message whose checks all pass clears it, because
one match is split over several messages that cross the book on the way and all carry the hash
of the state after the last of them (shared/real-payloads: a captured "crossing burst"); a book
suspect for ``hash_grace_s`` is resynced. The hash is the SHA-1 of the book's
REST twin, whose ``min_order_size`` and ``neg_risk`` the feed never sends: they come from the
instrument's REST books, or are found once from the first WS book (see shared SOURCES.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from collector.model.errors import BadPayload
from collector.model.stream_records import (
    SNAPSHOT_RESYNC,
    SNAPSHOT_SUBSCRIBE,
    SNAPSHOT_VENUE_BOOK,
    LastTradeRecord,
)
from collector.stream.book import LocalBook, canon
from collector.stream.lane import LIVE, RESYNC, WAITING, StreamLane, Tracked
from collector.stream.ws_polymarket import PolymarketConnection
from collector.venues.base import PolledBook
from collector.venues.polymarket_reply import body_of
from collector.venues.polymarket_trades import parse_ws_trade

log = logging.getLogger(__name__)

_MIN_SIZES = ("5", "1", "10", "15", "20", "50", "100")  # tried when no REST book told us yet


@dataclass(slots=True)
class HashInputs:
    min_order_size: str | None = None
    neg_risk: bool | None = None
    known: bool = False  # confirmed by a REST book or a reproduced WS book hash


def _ts(v: Any) -> int:
    ts = int(v)
    if not 0 < ts < 1 << 62:
        raise ValueError(f"timestamp out of range: {v!r}")
    return ts


class PolymarketFeed:
    venue = "polymarket"
    connection_cls = PolymarketConnection

    def __init__(self, settings: Any) -> None:
        self.s = settings
        self.markets: dict[str, set[str]] = {}  # condition id -> tokens seen (last trade is market-wide)
        # condition id -> (venue timestamp, prices) of its last price_change: a trade's price is
        # one of them, and the hashes of that group already include it (see _try_trade_price)
        self.recent: dict[str, tuple[int, set[str]]] = {}

    # -- lane hooks ---------------------------------------------------------------------------
    def key_of(self, inst: Any) -> str:
        return inst.poll_key

    def tick_text(self, b: LocalBook) -> str | None:
        return canon(b.tick_size) if b.tick_size is not None else None

    def ltp_text(self, b: LocalBook) -> str | None:
        return canon(b.last_trade_price) if b.last_trade_price else None

    def on_up(self, lane: StreamLane, index: int, now: float) -> None:
        pass  # the venue's initial dump follows

    def rest_interval(self, lane: StreamLane, t: Tracked, now: float) -> float:
        return self.s.rest_interval_s

    # -- messages -------------------------------------------------------------------------------
    def on_message(self, lane: StreamLane, msg: Any) -> None:
        data = msg.data
        for m in data if type(data) is list else (data,):
            if type(m) is not dict:
                lane.c.bad("not_an_object")
                continue
            et = m.get("event_type")
            if et == "price_change":
                self._price_change(lane, msg, m)
            elif et == "book":
                self._book(lane, msg, m)
            elif et == "last_trade_price":
                self._last_trade(lane, msg, m)
            elif et == "tick_size_change":
                self._tick_size(lane, msg, m)
            elif et == "best_bid_ask":
                self._best_bid_ask(lane, m)
            elif et in ("new_market", "market_resolved"):
                lane.c.notice(et)  # counted; discovery decides membership
                log.info("polymarket stream: %s %s", et, m.get("market"))
            else:
                lane.c.bad(f"event:{str(et)[:40]}")

    def _inputs(self, t: Tracked) -> HashInputs:
        p = t.params
        if p is None:
            meta = t.inst.meta
            p = t.params = HashInputs(neg_risk=getattr(meta, "neg_risk", None))
        return p

    def _book(self, lane: StreamLane, msg: Any, m: dict[str, Any]) -> None:
        t = lane.tracked.get(m.get("asset_id"))
        if t is None:
            lane.c.unknown += 1
            return
        b = t.book
        before = b.levels() if t.status == LIVE else None
        b.replace([(lv["price"], lv["size"]) for lv in m["bids"]], [(lv["price"], lv["size"]) for lv in m["asks"]])
        if before is not None and before != b.levels():
            # The venue's book is not the one we held: ours was wrong since the first failed check
            # (or since it was last confirmed), and this book repairs it.
            lane.repaired(t, t.suspect[3] if t.suspect else "venue_book_differs")
        b.ob_ts_ms = _ts(m["timestamp"])
        b.hash = m.get("hash") or None
        if "tick_size" in m:
            b.tick_size = m["tick_size"]
        if "last_trade_price" in m:
            b.last_trade_price = m["last_trade_price"]
        market = m.get("market")
        if isinstance(market, str):
            self.markets.setdefault(market, set()).add(t.key)
        ok = self._check_book(t, str(m["timestamp"]), market) if b.hash else None
        if ok is False:
            ok = self._try_trade_price(t, str(m["timestamp"]), market, b.ob_ts_ms)
        reason = {WAITING: SNAPSHOT_SUBSCRIBE, LIVE: SNAPSHOT_VENUE_BOOK, RESYNC: SNAPSHOT_RESYNC}[t.status]
        t.floor_ts = None
        lane.snapshot(t, msg, reason, "ws", ok)

    def _check_book(self, t: Tracked, ts: str, market: Any) -> bool | None:
        p = self._inputs(t)
        b = t.book
        if p.known:
            return b.venue_hash(market, t.key, ts, p.min_order_size, p.neg_risk) == b.hash
        negs = (p.neg_risk,) if p.neg_risk is not None else (False, True)
        for mos in _MIN_SIZES:
            for neg in negs:
                if b.venue_hash(market, t.key, ts, mos, neg) == b.hash:
                    p.min_order_size, p.neg_risk, p.known = mos, neg, True
                    return True
        return None  # cannot tell: the inputs are unknown

    def _price_change(self, lane: StreamLane, msg: Any, m: dict[str, Any]) -> None:
        ts_text = m["timestamp"]
        ts = _ts(ts_text)
        market = m.get("market")
        by_asset: dict[str, list[dict[str, Any]]] = {}
        for e in m["price_changes"]:
            by_asset.setdefault(e["asset_id"], []).append(e)
        if isinstance(market, str):
            prev = self.recent.get(market)
            prices = {e["price"] for e in m["price_changes"]}
            self.recent[market] = (ts, prev[1] | prices if prev and prev[0] == ts else prices)
        for asset, entries in by_asset.items():
            t = lane.tracked.get(asset)
            if t is None:
                lane.c.unknown += 1
                continue
            if t.status == WAITING:  # no base book yet: kept in case a REST book becomes the base
                lane.keep(t, (ts, str(ts_text), [(e["side"], e["price"], e["size"]) for e in entries], entries[-1].get("hash")))
                continue
            if t.floor_ts is not None:
                if ts <= t.floor_ts:  # already inside the REST book swapped in
                    lane.c.stale_skipped += 1
                    continue
                t.floor_ts = None
            last = entries[-1]
            if t.status == RESYNC:
                lane.keep(t, (ts, str(ts_text), [(e["side"], e["price"], e["size"]) for e in entries], last.get("hash")))
            prev_good = t.last_good_ts_ms
            bids, asks = self._apply(t.book, entries)
            t.book.ob_ts_ms = ts
            t.book.hash = last.get("hash") or None
            ok = self._verify(t, str(ts_text), market) if t.status == LIVE and t.book.hash else None
            if ok is False:
                ok = self._try_trade_price(t, str(ts_text), market, ts)
            lane.change(t, msg, bids, asks, t.book.hash, ok)
            if t.status != LIVE:
                continue
            if ok is False:
                lane.c.hash_failed += 1
            problem = ("crossed" if t.book.crossed() else "best_mismatch" if not self._best_agrees(t.book, last)
                       else "hash_mismatch" if ok is False else None)
            if problem is None:
                t.suspect = None
            elif t.suspect is None:
                t.suspect = (msg.mono, str(ts_text), t.book.hash, problem, prev_good)

    @staticmethod
    def _apply(b: LocalBook, entries: list[dict[str, Any]]) -> tuple[list, list]:
        bids: list = []
        asks: list = []
        for e in entries:
            side = e["side"]
            if side == "BUY":
                bids.append(b.set_level(True, e["price"], e["size"]))
            elif side == "SELL":
                asks.append(b.set_level(False, e["price"], e["size"]))
            else:
                raise ValueError(f"side {side!r}")
        return bids, asks

    def _verify(self, t: Tracked, ts: str, market: Any) -> bool | None:
        p = self._inputs(t)
        if not p.known:
            return None
        return t.book.venue_hash(market, t.key, ts, p.min_order_size, p.neg_risk) == t.book.hash

    def _try_trade_price(self, t: Tracked, ts: str, market: Any, ts_ms: int | None) -> bool:
        """A match's hashes include its trade price before the last_trade_price event says it:
        try the prices of the market's price_change group at this timestamp."""
        p = self._inputs(t)
        got = self.recent.get(market) if isinstance(market, str) and p.known else None
        if got is None or got[0] != ts_ms:
            return False
        b = t.book
        old = b.last_trade_price
        for price in sorted(got[1]):
            b.last_trade_price = price
            if b.venue_hash(market, t.key, ts, p.min_order_size, p.neg_risk) == b.hash:
                return True
        b.last_trade_price = old
        return False

    @staticmethod
    def _best_agrees(b: LocalBook, entry: dict[str, Any]) -> bool:
        bb, ba = b.best()
        vb, va = entry.get("best_bid"), entry.get("best_ask")
        # The venue sends "0" / "1" (or nothing) for an empty side.
        if vb is not None and canon(vb) != (bb or "0") and not (bb is None and canon(vb) == "0"):
            return False
        if va is not None and canon(va) != (ba or "1") and not (ba is None and canon(va) in ("0", "1")):
            return False
        return True

    def _last_trade(self, lane: StreamLane, msg: Any, m: dict[str, Any]) -> None:
        t = lane.tracked.get(m.get("asset_id"))
        if t is None:
            lane.c.unknown += 1
            return
        price = m["price"]
        if lane.trades is not None:  # the trades stream (collector.trades)
            trade = parse_ws_trade(m, t.inst, msg.ts_ms)
            if isinstance(trade, str):
                lane.trades.feed_bad(trade)
                lane.c.bad(f"trade:{trade}")
            else:
                lane.trades.feed_trade(trade)
        else:  # trade capture off: the feed's event stays in book_changes, as before
            lane.write(LastTradeRecord(self.venue, t.inst.instrument_id, msg.ts_ms, _ts(m["timestamp"]), msg.conn,
                                       msg.seq, canon(price) or "0", canon(m.get("size")), m.get("side"),
                                       canon(m.get("fee_rate_bps"))))
        lane.c.trades += 1
        # The book's last_trade_price is market-wide: both tokens carry the trade's price text,
        # and a pending hash check may be waiting for exactly this.
        market = m.get("market")
        for key in self.markets.get(market, {t.key}) if isinstance(market, str) else (t.key,):
            o = lane.tracked.get(key)
            if o is None:
                continue
            o.book.last_trade_price = price
            if o.suspect is not None and o.status == LIVE and not o.book.crossed():
                p = self._inputs(o)
                if p.known and o.book.venue_hash(market, key, o.suspect[1], p.min_order_size, p.neg_risk) == o.suspect[2]:
                    o.suspect = None

    def _tick_size(self, lane: StreamLane, msg: Any, m: dict[str, Any]) -> None:
        t = lane.tracked.get(m.get("asset_id"))
        if t is None:
            lane.c.unknown += 1
            return
        new = m["new_tick_size"]
        if canon(new) is None:
            raise ValueError(f"new_tick_size {new!r}")
        t.book.tick_size = new
        if t.status != WAITING:
            lane.change(t, msg, [], [], None, None, tick_size=canon(new))

    @staticmethod
    def _best_bid_ask(lane: StreamLane, m: dict[str, Any]) -> None:
        t = lane.tracked.get(m.get("asset_id"))
        if t is None or t.status != LIVE or t.book.ob_ts_ms is None:
            return
        try:
            if _ts(m["timestamp"]) != t.book.ob_ts_ms:
                return  # not about the state we hold
        except (KeyError, ValueError):
            return
        if not PolymarketFeed._best_agrees(t.book, m):
            lane.c.bad("best_bid_ask_differs")

    # -- REST books ------------------------------------------------------------------------------
    def on_rest(self, lane: StreamLane, t: Tracked, rec: Any, raw: Any, sent: float, now: float) -> None:
        if type(raw) is PolledBook:  # what the fetch thread hands over: parsed here, on demand
            try:
                body = body_of(raw)
            except BadPayload:
                return
        else:
            body = getattr(raw, "body", raw)
        if type(body) is not dict:
            return
        p = self._inputs(t)
        mos, neg = body.get("min_order_size"), body.get("neg_risk")
        if isinstance(mos, str) and isinstance(neg, bool) and rec.hash_ok:
            p.min_order_size, p.neg_risk, p.known = mos, neg, True
        b = t.book
        if t.status == RESYNC:
            if t.resync_since is None or sent < t.resync_since:
                return  # sent before the trouble began: it may miss what broke the book
            self._swap(lane, t, body, rec, SNAPSHOT_RESYNC)
            return
        if t.status == WAITING:
            # The venue's initial dump did not bring this book (none for a later subscribe, or no
            # book at the time): a REST book sent while subscribed becomes the base.
            if (lane.conns[t.index].connected and sent >= t.waiting_since
                    and now - t.waiting_since >= self.s.subscribe_wait_s):
                self._swap(lane, t, body, rec, SNAPSHOT_SUBSCRIBE)
            return
        if t.status != LIVE or rec.ob_ts_ms is None or b.ob_ts_ms is None:
            return
        if rec.ob_ts_ms == b.ob_ts_ms:
            if rec.hash == b.hash or (rec.bids, rec.asks) == b.levels():
                lane.c.rest_agreed += 1
            else:
                lane.resync(t, "rest_differs", now)
                self._swap(lane, t, body, rec, SNAPSHOT_RESYNC)
        elif (rec.ob_ts_ms > b.ob_ts_ms and t.suspect is None
              and (t.last_msg_mono is None or now - t.last_msg_mono > self.s.token_stall_s)):
            # The venue's book moved and the feed has said nothing about this token for the bound:
            # suspect a stalled subscription; a message in flight clears it, else it is resynced
            # (and resubscribed) after hash_grace_s.
            t.suspect = (now, str(rec.ob_ts_ms), rec.hash, "stalled", t.last_good_ts_ms)
        # else: newer by less than the bound (its change is on the way), or older than ours

    def _swap(self, lane: StreamLane, t: Tracked, body: dict[str, Any], rec: Any, reason: str) -> None:
        """Take the REST book, replay the kept changes that came after it, record the result."""
        b = t.book
        b.replace([(lv["price"], lv["size"]) for lv in body["bids"]], [(lv["price"], lv["size"]) for lv in body["asks"]])
        b.ob_ts_ms = rec.ob_ts_ms
        b.hash = rec.hash
        if "tick_size" in body:
            b.tick_size = body["tick_size"]
        if "last_trade_price" in body:
            b.last_trade_price = body["last_trade_price"]
        kept = [] if t.overflow else t.buffer
        ok = rec.hash_ok
        for ts, ts_text, changes, h in kept:
            if rec.ob_ts_ms is not None and ts <= rec.ob_ts_ms:
                continue
            for side, price, size in changes:
                b.set_level(side == "BUY", price, size)
            b.ob_ts_ms, b.hash = ts, h
            ok = self._verify(t, ts_text, body.get("market")) if h else None
        t.floor_ts = b.ob_ts_ms
        lane.snapshot(t, None, reason, "rest", ok)
