"""Polymarket's market channel, ``ws://127.0.0.1:P/ws/market``, served as a raw ASGI WebSocket.

Client messages: first ``{"assets_ids":[...],"type":"market","initial_dump":true,
"custom_feature_enabled":true}``, later ``{"assets_ids":[...],"operation":"subscribe"|
"unsubscribe"}`` on the same connection, and the text ``PING`` (answered ``PONG``). Unknown or
closed tokens are taken without a word and yield nothing. ``initial_dump`` is true when absent
(the docs: a ``book`` is "emitted when first subscribed to a market"); a later ``subscribe``
dumps the newly added tokens when the connection asked for a dump (or the message itself says
``initial_dump``), as one array frame like the first.

Per book change, to every connection subscribed to either token of the market: one
``price_change`` with the entries of both tokens; with ``custom_feature_enabled``, a
``best_bid_ask`` per token when its touch moved; after a trade, the post-trade ``book`` of each
subscribed token and a ``last_trade_price`` (the captured order). A control tick change sends
``tick_size_change`` per token; custom-feature connections also get ``new_market`` for every
market opened and ``market_resolved`` when one of their markets closes.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import orjson

from collector.model.clock import now_ms
from collector.sim.feeds import poly_msgs as pm
from collector.sim.feeds.conn import Conn, Feed
from collector.sim.feeds.timer import BookTimer
from collector.sim.polymarket.books import PolyBooks
from collector.sim.polymarket.market import PolyMarket
from collector.sim.polymarket.venue import PolymarketSim

PATH = "/ws/market"


def transport_of(send: Any) -> Any:
    """uvicorn's transport behind an ASGI ``send`` (its protocol's bound method), to drop a
    connection at once; None under another server."""
    return getattr(getattr(send, "__self__", None), "transport", None)


class PolyConn(Conn):
    def __init__(self, feed: Feed, cid: int, send: Any) -> None:
        super().__init__(feed, cid)
        self._send = send
        proto = getattr(send, "__self__", None)
        # uvicorn's websockets-sansio protocol: frames written in one go (see send_many).
        self._proto = proto if all(hasattr(proto, a) for a in ("conn", "transport", "writable", "close_sent")) else None
        self.tokens: set[str] = set()
        self.initial_dump = True
        self.custom = False

    async def send(self, payload: str) -> None:
        await self._send({"type": "websocket.send", "text": payload})

    async def send_many(self, payloads: list[str]) -> None:
        """What uvicorn does for each ``websocket.send``, once for the lot: one socket write
        (and one syscall) instead of one per frame, which is most of a frame's cost."""
        p = self._proto
        if p is None or len(payloads) == 1:
            await super().send_many(payloads)
            return
        await p.writable.wait()  # uvicorn's back-pressure: the socket buffer is full
        if p.disconnected or p.close_sent or p.transport.is_closing():
            raise ConnectionError("closed")
        conn = p.conn
        for x in payloads:
            conn.send_text(x.encode())
        p.transport.write(b"".join(conn.data_to_send()))

    def abort(self) -> None:
        t = transport_of(self._send)
        if t is not None:
            t.abort()


class PolyFeed(Feed):
    venue = "polymarket"

    def __init__(self, venue: PolymarketSim, faults: Any, timer: BookTimer, rng: Any) -> None:
        super().__init__(faults, rng)
        self.v = venue
        self.timer = timer
        self.subs: dict[str, set[PolyConn]] = {}
        self._stall_src: Any = None
        self._stall_set: set[str] = set()
        venue.watchers.append(self.on_venue)

    # ---------------- the connection

    async def asgi(self, scope: dict, receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        conn = PolyConn(self, self.new_id(), send)
        self.conns[conn.id] = conn
        conn.start()
        try:
            while True:
                msg = await receive()
                kind = msg["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive" or conn.stalled or conn.closed:
                    continue  # a stalled connection still reads, it just never answers
                text = msg.get("text")
                if text is None:
                    text = (msg.get("bytes") or b"").decode("utf-8", "replace")
                try:
                    self.on_text(conn, text)
                except Exception:  # noqa: BLE001 - a bad message must not end the connection
                    traceback.print_exc(file=sys.stderr)
        finally:
            conn.finish()
            self.unsubscribe(conn, list(conn.tokens))
            self.conns.pop(conn.id, None)

    def on_text(self, conn: PolyConn, text: str) -> None:
        if text == "PING":
            conn.push("pong", "PONG")
            return
        try:
            d = orjson.loads(text)
        except orjson.JSONDecodeError:
            d = None
        ids = d.get("assets_ids") if isinstance(d, dict) else None
        if not isinstance(ids, list):
            self.stats.bad_requests += 1
            return
        ids = [t for t in ids if isinstance(t, str)]
        if "custom_feature_enabled" in d:
            conn.custom = bool(d["custom_feature_enabled"])
        op = d.get("operation")
        if op is None and str(d.get("type", "")).lower() == "market":
            if "initial_dump" in d:
                conn.initial_dump = bool(d["initial_dump"])
            self.subscribe(conn, ids, conn.initial_dump)
        elif op == "subscribe":
            self.subscribe(conn, ids, bool(d.get("initial_dump", conn.initial_dump)))
        elif op == "unsubscribe":
            self.unsubscribe(conn, ids)
        else:
            self.stats.bad_requests += 1

    # ---------------- subscriptions

    def subscribe(self, conn: PolyConn, ids: list[str], dump: bool) -> None:
        now = now_ms()
        new = [t for t in dict.fromkeys(ids) if t not in conn.tokens]
        live = []
        # Catch the books up first: changes up to now go to the earlier subscribers, and this
        # connection starts from the dump.
        for t in new:
            ent = self.v.tokens.get(t)
            if ent is not None and ent[0].live:
                live.append((self._watch(ent[0], now), ent[1], t))
        for t in new:
            conn.tokens.add(t)
            self.subs.setdefault(t, set()).add(conn)
        if dump:
            stalled = self.stalled()
            books = [pm.dump_book(b, side) for b, side, t in live if t not in stalled]
            if books:
                conn.push("initial_dump", pm.dump_frame(books))

    def unsubscribe(self, conn: PolyConn, ids: list[str]) -> None:
        for t in ids:
            if t not in conn.tokens:
                continue
            conn.tokens.discard(t)
            s = self.subs.get(t)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.subs[t]
            ent = self.v.tokens.get(t)
            if ent is not None:
                m = ent[0]
                if m.book is not None and not any(x in self.subs for x in m.tokens):
                    self.timer.unwatch(m.book)

    def _watch(self, m: PolyMarket, now: int) -> PolyBooks:
        b = m.book
        if b is None:
            b = m.book = PolyBooks(self.v.clock, m)
        b.advance(now)
        b.render()
        if not self.timer.watching(b):
            self.timer.watch(b, self.on_change)
        return b

    def stalled(self) -> set[str]:
        src = self.cfg["ws_stall_ids"]
        if src is not self._stall_src:
            self._stall_src, self._stall_set = src, set(src)
        return self._stall_set

    # ---------------- book changes

    def on_change(self, book: Any, trade: Any, bids0: list[list[int]], asks0: list[list[int]]) -> None:
        m = book.market
        if m.book is not book or not m.live:
            self.timer.unwatch(book)
            return
        if not (m.tokens[0] in self.subs or m.tokens[1] in self.subs):
            self.timer.unwatch(book)
            return
        book.render()
        self.emit_change(book, trade, bids0, asks0, book.walk.n)

    def emit_change(self, book: PolyBooks, trade: Any, bids0: list[list[int]], asks0: list[list[int]], n0: int) -> None:
        m, w, subs = book.market, book.walk, self.subs
        yes, no = m.tokens
        sy, sn = subs.get(yes, ()), subs.get(no, ())
        everyone = set(sy) | set(sn) if (sy and sn) else (sy or sn)
        stalled = self.stalled()
        stall_here = bool(stalled) and (yes in stalled or no in stalled)
        faults = self.stats.faults
        changes, n = pm.level_changes(bids0, asks0, n0, w)
        if changes:
            if stall_here:
                faults["stall_suppressed"] += len(everyone)
            frame, bad = pm.price_change(book, changes, n, self.cfg["ws_bad_hash_rate"], self.rng,
                                         stalled if stall_here else frozenset())
            faults["bad_hash"] += bad
            if frame is not None:
                for c in everyone:
                    c.push("price_change", frame, change=True)
        if bids0 and asks0:
            f0, f1 = n // n0, n // w.n
            if bids0[0][0] * f0 != w.bids[0][0] * f1 or asks0[0][0] * f0 != w.asks[0][0] * f1:
                for side, tok, s in ((0, yes, sy), (1, no, sn)):
                    if tok not in stalled and any(c.custom for c in s):
                        frame = pm.best_bid_ask(book, side)
                        for c in s:
                            if c.custom:
                                c.push("best_bid_ask", frame)
        if trade is not None:
            for side, tok, s in ((0, yes, sy), (1, no, sn)):
                if s and tok not in stalled:
                    frame = pm.trade_book(book, side)
                    for c in s:
                        c.push("book", frame)
            tok, frame = pm.last_trade(book)
            if tok not in stalled:
                for c in everyone:
                    c.push_trade("last_trade_price", frame, ("size", "transaction_hash"))

    # ---------------- lifecycle (PolymarketSim.notify)

    def on_venue(self, event: str, m: PolyMarket, info: dict[str, Any]) -> None:
        now = now_ms()
        if event == "closed":
            if info.get("book") is not None:
                self.timer.unwatch(info["book"])
            hit = {c for t in m.tokens for c in self.subs.get(t, ()) if c.custom}
            if hit:
                frame = pm.market_resolved(m, now)
                for c in hit:
                    c.push("market_resolved", frame)
        elif event == "added":
            if m.tokens:
                frame = pm.new_market(m, now)
                for c in self.conns.values():
                    if c.custom:
                        c.push("new_market", frame)
                if m.live and any(t in self.subs for t in m.tokens):  # asked for before it existed
                    self._watch(m, now)
        elif event == "tick":
            for side, t in enumerate(m.tokens):
                s = self.subs.get(t)
                if s and t not in self.stalled():
                    frame = pm.tick_size_change(m, side, info["old_tick"], m.tick_s, now)
                    for c in s:
                        c.push("tick_size_change", frame)
            book = info.get("book")
            if book is not None and self.timer.watching(book) and info.get("before"):
                book.render()
                self.emit_change(book, None, info["before"][0], info["before"][1], info["old_n"])
        elif event == "updated":
            subscribed = any(t in self.subs for t in m.tokens)
            if m.live and subscribed and (m.book is None or not self.timer.watching(m.book)):
                self._watch(m, now)
            elif not m.live and m.book is not None:
                self.timer.unwatch(m.book)

    def status(self) -> dict[str, Any]:
        return {**self.conn_status(), "subscribed": len(self.subs)}
