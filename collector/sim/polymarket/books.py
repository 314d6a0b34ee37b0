"""Polymarket CLOB books as served: the YES book of a market and its NO mirror image, with
the venue's ``hash`` computed over the very bytes sent. The parsed form of the last rendering
(``docs``, hash filled in) is kept for the market feed, whose ``book`` events carry the same
levels and the hash of their REST twin."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from collector.sim.clock import LazyBook, SimClock

if TYPE_CHECKING:
    from collector.sim.polymarket.market import PolyMarket

_PRICE_STR: dict[int, list[str]] = {}


def price_strs(n: int) -> list[str]:
    """The venue's text of every price on a grid of ``n`` ticks, by tick ("0.41", not "0.410")."""
    t = _PRICE_STR.get(n)
    if t is None:
        dec = len(str(n)) - 1
        t = []
        for p in range(n + 1):
            s = f"{p / n:.{dec}f}"
            if "." in s:
                s = s.rstrip("0").rstrip(".")
            t.append(s)
        _PRICE_STR[n] = t
    return t


def size_str(cents: int) -> str:
    """A size in 1/100 shares as the venue writes it ("88.12", "3100", "0.5")."""
    q, r = divmod(cents, 100)
    if r == 0:
        return str(q)
    return f"{q}.{r:02d}".rstrip("0")


class PolyBooks(LazyBook):
    """The YES book of a market plus its mirror image for the NO token (they change together)."""

    __slots__ = ("market", "cache", "docs")

    def __init__(self, clock: SimClock, market: PolyMarket) -> None:
        super().__init__(clock, f"poly:{market.id}", market.tick_n)
        self.market = market
        self.cache: list[bytes] = [b"", b""]
        self.docs: list[dict[str, Any]] = [{}, {}]

    def get(self, side: int, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            self._render()
        return self.cache[side]

    def render(self) -> None:
        """Bring ``cache`` and ``docs`` up to the walk's current state."""
        if self.dirty:
            self._render()

    def _render(self) -> None:
        m, w = self.market, self.walk
        n = w.n
        ps = price_strs(n)
        yes_bids = [{"price": ps[p], "size": size_str(s)} for p, s in reversed(w.bids)]
        yes_asks = [{"price": ps[p], "size": size_str(s)} for p, s in reversed(w.asks)]
        no_bids = [{"price": ps[n - p], "size": size_str(s)} for p, s in reversed(w.asks)]
        no_asks = [{"price": ps[n - p], "size": size_str(s)} for p, s in reversed(w.bids)]
        ltp = "" if w.last is None else price_strs(w.last_n)[w.last]
        ts = str(self.ts_ms)
        # last_trade_price is market-wide, as on the venue: both tokens' books carry the same
        # text (SOURCES.md, "Polymarket book hash").
        for side, (bids, asks) in enumerate(((yes_bids, yes_asks), (no_bids, no_asks))):
            d = {
                "market": m.condition_id,
                "asset_id": m.tokens[side],
                "timestamp": ts,
                "hash": "",
                "bids": bids,
                "asks": asks,
                "min_order_size": m.min_size_s,
                "tick_size": m.tick_s,
                "neg_risk": m.neg_risk,
                "last_trade_price": ltp,
            }
            self.cache[side], d["hash"] = hashed_book(d)
            self.docs[side] = d
        self.dirty = False


def hashed_book(d: dict[str, Any]) -> tuple[bytes, str]:
    """A Polymarket book body as the venue serves it, and its hash: compact JSON in ``d``'s key
    order whose ``hash`` is the SHA-1 of these very bytes with ``hash`` = "" (``d["hash"]`` must
    be "")."""
    blank = orjson.dumps(d)
    h = hashlib.sha1(blank).hexdigest()
    # The first '"hash":""' is the key itself: every value before it is hex or digits.
    return blank.replace(b'"hash":""', b'"hash":"' + h.encode() + b'"', 1), h


def poly_book_bytes(d: dict[str, Any]) -> bytes:
    """``hashed_book``'s body alone."""
    return hashed_book(d)[0]
