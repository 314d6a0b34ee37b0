"""Limitless order books as served by ``/markets/{slug}/orderbook`` (YES side only); the
parsed form of the last rendering (``doc``) is what the Socket.IO feed sends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from collector.sim.clock import LazyBook, SimClock

if TYPE_CHECKING:
    from collector.sim.limitless.market import LimMarket


class LimBook(LazyBook):
    """Prices in 1/1000, sizes in 1e-6 shares: the walk's ticks and cents scaled to the venue's units."""

    __slots__ = ("market", "cache", "doc")

    def __init__(self, clock: SimClock, market: LimMarket) -> None:
        super().__init__(clock, f"lim:{market.slug}", 1000)
        self.market = market
        self.cache = b""
        self.doc: dict[str, Any] = {}

    def get(self, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            self._render()
        return self.cache

    def render(self) -> None:
        """Bring ``cache`` and ``doc`` up to the walk's current state."""
        if self.dirty:
            self._render()

    def _render(self) -> None:
        m, w = self.market, self.walk
        mid = round(w.mid_ticks() / 1000.0, 4)
        last = w.last if w.last is not None else w.bids[0][0]
        d = {
            "bids": [{"price": p / 1000.0, "size": s * 10_000, "side": "BUY"} for p, s in w.bids],
            "asks": [{"price": p / 1000.0, "size": s * 10_000, "side": "SELL"} for p, s in w.asks],
            "tokenId": m.tokens["yes"],
            "adjustedMidpoint": mid,
            "midpoint": mid,
            "maxSpread": m.max_spread,
            "minSize": m.min_size,
            "lastTradePrice": last / 1000.0,
        }
        self.cache = orjson.dumps(d)
        self.doc = d
        self.dirty = False
