"""Kalshi's ``orderbook_delta`` and ``trade`` channels, ``ws://127.0.0.1:P/kalshi/trade-api/ws/v2``.

The upgrade must carry the signing headers (``KALSHI-ACCESS-KEY`` / ``-SIGNATURE`` /
``-TIMESTAMP``; they are not verified): without them the connection is refused before the
handshake completes (the venue answers 401, this server 403). Commands:
``{"id", "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [...],
"use_yes_price": bool}}`` -> ``subscribed`` (with the new sid, no seq), then one
``orderbook_snapshot`` per ticker; ``update_subscription`` with exactly one sid (several: error
12) and ``action`` ``add_markets`` / ``delete_markets`` / ``get_snapshot`` -> an ``ok`` that takes
a seq, plus the snapshots asked for. Every book change is one ``orderbook_delta`` per level
(``delta_fp`` the signed size change, ``ts_ms`` the change's time). ``seq`` counts per sid; a
message the drop / reorder / duplicate faults hit leaves the gap a client must detect.

``"channels": ["orderbook_delta", "trade"]`` (either or both) gives one sid per channel, one
``subscribed`` each. A trade is ``{"type": "trade", "sid", "msg": {trade_id, market_ticker,
yes_price_dollars, no_price_dollars, count_fp, taker_side, taker_outcome_side,
taker_book_side, is_block_trade, ts (s), ts_ms}}`` without ``seq`` (as the venue), sent right
after the deltas of the trade's change; the same trade ``/markets/trades`` serves
(collector.sim.kalshi.trades). The ws_trade_* faults hit these messages.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import orjson

from collector.model.clock import now_ms
from collector.sim.feeds.conn import Conn, Feed
from collector.sim.feeds.polymarket_ws import transport_of
from collector.sim.feeds.timer import BookTimer
from collector.sim.kalshi import trades as kt
from collector.sim.kalshi.market import KalBook, KalMarket
from collector.sim.kalshi.venue import KalshiSim

PATH = "/kalshi/trade-api/ws/v2"
CHANNEL = "orderbook_delta"
TRADE = "trade"
# What the trade channel's missing-field fault may leave out: the size or the trade's id.
TRADE_MISSING = ("count_fp", "trade_id")
_AUTH = (b"kalshi-access-key", b"kalshi-access-signature", b"kalshi-access-timestamp")


class KalConn(Conn):
    def __init__(self, feed: Feed, cid: int, send: Any) -> None:
        super().__init__(feed, cid)
        self._send = send
        self.sids: dict[int, set[str]] = {}
        self.seq: dict[int, int] = {}
        self.where: dict[str, int] = {}  # ticker -> its sid
        self.yes_scale: dict[int, bool] = {}  # sid -> use_yes_price
        self.tsids: dict[int, set[str]] = {}  # trade channel: sid -> tickers
        self.twhere: dict[str, int] = {}  # ticker -> its trade sid

    def new_sid(self) -> int:
        return max([*self.sids, *self.tsids], default=0) + 1

    async def send(self, payload: str) -> None:
        await self._send({"type": "websocket.send", "text": payload})

    def abort(self) -> None:
        t = transport_of(self._send)
        if t is not None:
            t.abort()

    def frame(self, sid: int, typ: str, msg: dict[str, Any], cid: Any = None) -> str:
        self.seq[sid] = seq = self.seq.get(sid, 0) + 1
        d: dict[str, Any] = {"type": typ, "sid": sid, "seq": seq, "msg": msg}
        if cid is not None:
            d["id"] = cid
        return orjson.dumps(d).decode()


def _lv(levels: list[tuple[int, int]], n: int) -> list[list[str]]:
    return [[f"{p / n:.4f}", f"{s / 100:.2f}"] for p, s in sorted(levels)]


class KalWsFeed(Feed):
    venue = "kalshi"

    def __init__(self, venue: KalshiSim, faults: Any, timer: BookTimer, rng: Any) -> None:
        super().__init__(faults, rng)
        self.v = venue
        self.timer = timer
        self.subs: dict[str, set[KalConn]] = {}
        self.tsubs: dict[str, set[KalConn]] = {}  # the trade channel's subscribers per ticker
        venue.watchers.append(self.on_venue)

    async def asgi(self, scope: dict, receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        names = {k.lower() for k, _ in scope.get("headers", [])}
        if not all(h in names for h in _AUTH):
            self.stats.bad_requests += 1
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        await send({"type": "websocket.accept"})
        conn = KalConn(self, self.new_id(), send)
        self.conns[conn.id] = conn
        conn.start()
        try:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    break
                if msg["type"] != "websocket.receive" or conn.stalled or conn.closed:
                    continue
                try:
                    self.on_text(conn, msg.get("text") or (msg.get("bytes") or b"").decode("utf-8", "replace"))
                except Exception:  # noqa: BLE001 - a bad command must not end the connection
                    traceback.print_exc(file=sys.stderr)
        finally:
            conn.finish()
            for sid in list(conn.sids):
                self._remove(conn, sid, list(conn.sids[sid]))
            for sid in list(conn.tsids):
                self._trade_remove(conn, sid, list(conn.tsids[sid]))
            self.conns.pop(conn.id, None)

    def _error(self, conn: KalConn, cid: Any, code: int, text: str) -> None:
        self.stats.bad_requests += 1
        conn.push("error", orjson.dumps({"id": cid, "type": "error", "msg": {"code": code, "msg": text}}).decode())

    def on_text(self, conn: KalConn, text: str) -> None:
        try:
            d = orjson.loads(text)
        except orjson.JSONDecodeError:
            d = None
        if type(d) is not dict:
            self._error(conn, None, 1, "Unable to process message")
            return
        cid, cmd = d.get("id"), d.get("cmd")
        p = d.get("params") if type(d.get("params")) is dict else {}
        tickers = [t for t in p.get("market_tickers") or [] if type(t) is str]
        if cmd == "subscribe":
            chans = p.get("channels")
            if type(chans) is not list or not chans or any(c not in (CHANNEL, TRADE) for c in chans):
                self._error(conn, cid, 8, "Unknown channel name")
                return
            if not tickers:
                self._error(conn, cid, 14, "Market Ticker required")
                return
            for chan in dict.fromkeys(chans):  # one sid per channel, in the order asked
                sid = conn.new_sid()
                if chan == TRADE:
                    conn.tsids[sid] = set()
                else:
                    conn.sids[sid] = set()
                    conn.yes_scale[sid] = p.get("use_yes_price") is True
                conn.push("subscribed", orjson.dumps({"id": cid, "type": "subscribed",
                                                      "msg": {"channel": chan, "sid": sid}}).decode())
                if chan == TRADE:
                    self._trade_add(conn, sid, tickers)
                else:
                    self._add(conn, sid, tickers)
        elif cmd == "update_subscription":
            sids = p.get("sids")
            if type(sids) is not list or len(sids) != 1 or (sids[0] not in conn.sids and sids[0] not in conn.tsids):
                self._error(conn, cid, 12, "Exactly one subscription id is required")
                return
            sid, action = sids[0], p.get("action")
            if action not in ("add_markets", "delete_markets", "get_snapshot"):
                self._error(conn, cid, 2, "Params required")
                return
            if sid in conn.tsids:  # the trade channel has no seq and no snapshots
                conn.push("ok", orjson.dumps({"id": cid, "type": "ok", "sid": sid,
                                              "msg": {"market_tickers": tickers}}).decode())
                if action == "add_markets":
                    self._trade_add(conn, sid, tickers)
                elif action == "delete_markets":
                    self._trade_remove(conn, sid, tickers)
                return
            conn.push("ok", conn.frame(sid, "ok", {"market_tickers": tickers}, cid))
            if action == "add_markets":
                self._add(conn, sid, tickers)
            elif action == "delete_markets":
                self._remove(conn, sid, tickers)
            else:
                self._snapshots(conn, sid, [t for t in tickers if t in conn.sids[sid]])
        else:
            self._error(conn, cid, 5, "Unknown command")

    # ---------------- subscriptions

    def _add(self, conn: KalConn, sid: int, tickers: list[str]) -> None:
        new = [t for t in dict.fromkeys(tickers) if t not in conn.where]
        for t in new:
            conn.sids[sid].add(t)
            conn.where[t] = sid
            self.subs.setdefault(t, set()).add(conn)
        self._snapshots(conn, sid, new)

    def _remove(self, conn: KalConn, sid: int, tickers: list[str]) -> None:
        for t in tickers:
            if conn.where.get(t) != sid:
                continue
            del conn.where[t]
            conn.sids[sid].discard(t)
            s = self.subs.get(t)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.subs[t]
                    self._unwatch_unless_wanted(t)

    def _unwatch_unless_wanted(self, t: str) -> None:
        if t in self.subs or t in self.tsubs:
            return
        m = self.v.tickers.get(t)
        if m is not None and m.book is not None:
            self.timer.unwatch(m.book)

    def _trade_add(self, conn: KalConn, sid: int, tickers: list[str]) -> None:
        now = now_ms()
        for t in dict.fromkeys(tickers):
            if t in conn.twhere:
                continue
            conn.tsids[sid].add(t)
            conn.twhere[t] = sid
            self.tsubs.setdefault(t, set()).add(conn)
            m = self.v.tickers.get(t)
            if m is not None and m.live:
                self._watch(m, now)  # trades come from book changes: the book must be played

    def _trade_remove(self, conn: KalConn, sid: int, tickers: list[str]) -> None:
        for t in tickers:
            if conn.twhere.get(t) != sid:
                continue
            del conn.twhere[t]
            conn.tsids[sid].discard(t)
            s = self.tsubs.get(t)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.tsubs[t]
                    self._unwatch_unless_wanted(t)

    def _snapshots(self, conn: KalConn, sid: int, tickers: list[str]) -> None:
        now = now_ms()
        for t in tickers:
            m = self.v.tickers.get(t)
            msg: dict[str, Any] = {"market_ticker": t, "market_id": ""}
            if m is not None and m.live:
                w = self._watch(m, now).walk
                n = w.n
                yes = [] if m.illiquid else [(p, s) for p, s in w.bids]
                no = [(p if conn.yes_scale[sid] else n - p, s) for p, s in w.asks]
                if yes:
                    msg["yes_dollars_fp"] = _lv(yes, n)
                if no:  # an empty side's key is absent
                    msg["no_dollars_fp"] = _lv(no, n)
            conn.push("orderbook_snapshot", conn.frame(sid, "orderbook_snapshot", msg))

    def _watch(self, m: KalMarket, now: int) -> KalBook:
        b = m.book
        if b is None:
            b = m.book = KalBook(self.v.clock, m)
        b.advance(now)
        if not self.timer.watching(b):
            self.timer.watch(b, self.on_change)
        return b

    # ---------------- book changes

    def on_change(self, book: Any, trade: Any, bids0: list[list[int]], asks0: list[list[int]]) -> None:
        m = book.market
        subs, tsubs = self.subs.get(m.ticker, ()), self.tsubs.get(m.ticker, ())
        if m.book is not book or not m.live or not (subs or tsubs):
            self.timer.unwatch(book)
            return
        w, n = book.walk, book.walk.n
        changes: list[tuple[str, int, int]] = []  # (side, YES-scale price ticks, signed cents)
        if not m.illiquid:
            changes += [("yes", p, d) for p, d in _diff(bids0, w.bids)]
        changes += [("no", p, d) for p, d in _diff(asks0, w.asks)]
        for conn in subs:
            sid = conn.where.get(m.ticker)
            if sid is None:
                continue
            yes_scale = conn.yes_scale[sid]
            for side, p, d in changes:
                price = p if side == "yes" or yes_scale else n - p
                msg = {"market_ticker": m.ticker, "market_id": "", "price_dollars": f"{price / n:.4f}",
                       "delta_fp": f"{d / 100:.2f}", "side": side, "ts_ms": book.ts_ms}
                conn.push("orderbook_delta", conn.frame(sid, "orderbook_delta", msg), change=True)
        last = book.tape.last() if trade is not None and tsubs else None
        if last is not None and kt.shown(m, last):  # right after the deltas of the trade's change
            msg = kt.ws_msg(m, book.tape, last)
            for conn in tsubs:
                sid = conn.twhere.get(m.ticker)
                if sid is not None:
                    frame = orjson.dumps({"type": TRADE, "sid": sid, "msg": msg}).decode()
                    conn.push_trade(TRADE, frame, TRADE_MISSING)

    def on_venue(self, event: str, m: Any, info: dict[str, Any]) -> None:
        if event == "closed" and info.get("book") is not None:
            self.timer.unwatch(info["book"])
        elif event == "updated" and m.live and (m.ticker in self.subs or m.ticker in self.tsubs):
            self._watch(m, now_ms())

    def status(self) -> dict[str, Any]:
        return {**self.conn_status(), "subscribed": len(self.subs), "trade_subscribed": len(self.tsubs)}


def _diff(before: list[list[int]], after: list[list[int]]) -> list[tuple[int, int]]:
    """(price, signed size change) for every level that moved, in price order."""
    a, b = dict((p, s) for p, s in before), dict((p, s) for p, s in after)
    return [(p, b.get(p, 0) - a.get(p, 0)) for p in sorted(a.keys() | b.keys()) if b.get(p, 0) != a.get(p, 0)]
