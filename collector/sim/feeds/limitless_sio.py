"""Limitless's Socket.IO feed: namespace ``/markets`` at the default ``/socket.io`` path
(python-socketio ``AsyncServer``, ASGI), as ``io("wss://ws.limitless.exchange/markets")``.

``subscribe_market_prices`` with ``{"marketSlugs": [...], "marketAddresses": [...]}`` replaces
the connection's subscription (the venue docs: send the full list every time). Each change of a
subscribed market's book emits ``orderbookUpdate`` = ``{marketSlug, orderbook: {bids, asks,
tokenId, adjustedMidpoint, maxSpread, minSize, lastTradePrice}, timestamp}``: the full book
exactly as REST ``/markets/{slug}/orderbook`` serves it at that instant (sizes in raw 1e-6
units; REST's extra ``midpoint`` is not in the SDK's type and is left out). ``timestamp`` is the
change's time as ISO 8601 with milliseconds, what a JavaScript Date becomes on the wire (the
TS SDK types it ``Date | number | string``). Whether the venue sends the book right after a
subscribe is unconfirmed: ``ws_snapshot_on_subscribe`` (default off) makes it so. AMM
addresses are accepted and counted; they get nothing (no AMM price model here).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import socketio

from collector.model.clock import now_ms
from collector.sim.feeds.conn import Conn, Feed
from collector.sim.feeds.polymarket_ws import transport_of
from collector.sim.feeds.timer import BookTimer
from collector.sim.limitless.books import LimBook
from collector.sim.limitless.market import LimMarket
from collector.sim.limitless.venue import LimitlessSim

NAMESPACE = "/markets"
EVENT = "orderbookUpdate"


def iso_ms(ms: int) -> str:
    s, r = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{r:03d}Z"


def update(slug: str, book: LimBook) -> dict[str, Any]:
    ob = {k: v for k, v in book.doc.items() if k != "midpoint"}
    return {"marketSlug": slug, "orderbook": ob, "timestamp": iso_ms(book.ts_ms)}


class _Json:
    """orjson for python-socketio's packets (its ``json=`` option): a full book per message is
    most of the feed's cost, and orjson writes the same compact JSON several times faster."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(s: Any, **_: Any) -> Any:
        return orjson.loads(s)


class LimConn(Conn):
    def __init__(self, feed: LimFeed, cid: int, sid: str, environ: dict) -> None:
        super().__init__(feed, cid)
        self.sio = feed.sio
        self.sid = sid
        self.environ = environ
        self.slugs: set[str] = set()
        self.addresses: set[str] = set()

    def _eio_socket(self) -> Any:
        try:
            eio_sid = self.sio.manager.eio_sid_from_sid(self.sid, NAMESPACE)
        except Exception:  # noqa: BLE001 - gone already
            return None
        return self.sio.eio.sockets.get(eio_sid) if eio_sid else None

    async def send(self, payload: Any) -> None:
        await self.sio.emit(EVENT, payload, to=self.sid, namespace=NAMESPACE)

    def transport_backlog(self) -> int:
        s = self._eio_socket()
        return s.queue.qsize() if s is not None else 0

    def abort(self) -> None:
        # A websocket-transport connection's environ holds uvicorn's send: drop its TCP
        # connection. Otherwise close at the Engine.IO level, without a CLOSE packet.
        t = transport_of(self.environ.get("asgi.send")) if self.environ.get("asgi.scope", {}).get("type") == "websocket" else None
        if t is not None:
            t.abort()
            return
        s = self._eio_socket()
        if s is not None:
            asyncio.ensure_future(s.close(wait=False, abort=True))

    def on_stall(self) -> None:
        # Engine.IO's server pings go too: the next ping is scheduled when the client answers
        # the last one, and this makes that a no-op.
        s = self._eio_socket()
        if s is not None:
            s.schedule_ping = lambda: None


class LimFeed(Feed):
    venue = "limitless"

    def __init__(self, venue: LimitlessSim, faults: Any, timer: BookTimer, rng: Any,
                 ping_interval: float = 25.0, ping_timeout: float = 20.0) -> None:
        super().__init__(faults, rng)
        self.v = venue
        self.timer = timer
        self.subs: dict[str, set[LimConn]] = {}
        self.by_sid: dict[str, LimConn] = {}
        self.sio = socketio.AsyncServer(async_mode="asgi", namespaces=[NAMESPACE], cors_allowed_origins="*",
                                        ping_interval=ping_interval, ping_timeout=ping_timeout,
                                        logger=False, engineio_logger=False, json=_Json)
        self.sio.on("connect", self._connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self._disconnect, namespace=NAMESPACE)
        self.sio.on("subscribe_market_prices", self._subscribe, namespace=NAMESPACE)
        venue.watchers.append(self.on_venue)

    def app(self, other: Any) -> Any:
        """The ASGI app: Socket.IO at /socket.io, everything else to ``other``."""
        return socketio.ASGIApp(self.sio, other_asgi_app=other, socketio_path="socket.io")

    # ---------------- Socket.IO events

    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        conn = LimConn(self, self.new_id(), sid, environ)
        self.conns[conn.id] = conn
        self.by_sid[sid] = conn
        conn.start()

    async def _disconnect(self, sid: str, *reason: Any) -> None:
        conn = self.by_sid.pop(sid, None)
        if conn is None:
            return
        conn.finish()
        self._set(conn, set())
        self.conns.pop(conn.id, None)

    async def _subscribe(self, sid: str, data: Any) -> None:
        conn = self.by_sid.get(sid)
        if conn is None or conn.stalled or conn.closed:
            return
        if not isinstance(data, dict):
            self.stats.bad_requests += 1
            return
        slugs = data.get("marketSlugs") or []
        addrs = data.get("marketAddresses") or []
        if not isinstance(slugs, list) or not isinstance(addrs, list):
            self.stats.bad_requests += 1
            return
        conn.addresses = {a for a in addrs if isinstance(a, str)}
        added = self._set(conn, {s for s in slugs if isinstance(s, str)})
        if self.cfg["ws_snapshot_on_subscribe"]:
            stalled = set(self.cfg["ws_stall_ids"])
            for slug in sorted(added):
                m = self.v.slugs.get(slug)
                if m is not None and m.live and slug not in stalled and m.book is not None:
                    conn.push(EVENT, update(slug, m.book))

    def _set(self, conn: LimConn, want: set[str]) -> set[str]:
        """Replace ``conn``'s slugs by ``want``; the slugs it did not have before."""
        now = now_ms()
        added = want - conn.slugs
        for slug in added:
            m = self.v.slugs.get(slug)
            if m is not None and m.live:
                self._watch(m, now)  # catch up before this connection listens
        for slug in conn.slugs - want:
            s = self.subs.get(slug)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.subs[slug]
                    m = self.v.slugs.get(slug)
                    if m is not None and m.book is not None:
                        self.timer.unwatch(m.book)
        for slug in added:
            self.subs.setdefault(slug, set()).add(conn)
        conn.slugs = set(want)
        return added

    def _watch(self, m: LimMarket, now: int) -> LimBook:
        b = m.book
        if b is None:
            b = m.book = LimBook(self.v.clock, m)
        b.advance(now)
        b.render()
        if not self.timer.watching(b):
            self.timer.watch(b, self.on_change)
        return b

    # ---------------- book changes

    def on_change(self, book: Any, trade: Any, bids0: dict, asks0: dict) -> None:
        m = book.market
        s = self.subs.get(m.slug)
        if m.book is not book or not m.live or not s:
            self.timer.unwatch(book)
            return
        if m.slug in self.cfg["ws_stall_ids"]:
            self.stats.faults["stall_suppressed"] += len(s)
            return
        book.render()
        data = update(m.slug, book)
        for c in s:
            c.push(EVENT, data, change=True)

    def on_venue(self, event: str, m: LimMarket, info: dict[str, Any]) -> None:
        if event == "closed" and info.get("book") is not None:
            self.timer.unwatch(info["book"])
        elif event in ("updated", "added") and m.live and m.slug in self.subs:
            if m.book is None or not self.timer.watching(m.book):
                self._watch(m, now_ms())

    def status(self) -> dict[str, Any]:
        return {**self.conn_status(), "subscribed": len(self.subs),
                "amm_addresses": len({a for c in self.conns.values() for a in c.addresses})}
