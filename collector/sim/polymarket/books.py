"""Polymarket CLOB books as served: the YES book of a market and its NO mirror image, with
the venue's ``hash`` computed over the very bytes sent.

A book is written from byte fragments, one per level, kept from one rendering to the next
(most levels survive a change), so a change costs the levels that changed plus one SHA-1 per
token. The pieces of the last rendering (``parts``, ``hashes``) are what the market feed builds
its frames from: a ``book`` event carries the same levels and the hash of its REST twin.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from collector.sim import tape as tp
from collector.sim.clock import LazyBook, SimClock

if TYPE_CHECKING:
    from collector.sim.polymarket.market import PolyMarket

_PRICE_STR: dict[int, list[str]] = {}
_PRICE_BYTES: dict[int, list[bytes]] = {}
_sha1 = hashlib.sha1
_dumps = orjson.dumps


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


def price_bytes(n: int) -> list[bytes]:
    t = _PRICE_BYTES.get(n)
    if t is None:
        t = _PRICE_BYTES[n] = [x.encode() for x in price_strs(n)]
    return t


def size_str(cents: int) -> str:
    """A size in 1/100 shares as the venue writes it ("88.12", "3100", "0.5")."""
    q, r = divmod(cents, 100)
    if r == 0:
        return str(q)
    return f"{q}.{r:02d}".rstrip("0")


_LEVEL = b'{"price":"%b","size":"%b"}'


# How a walk trade is printed (collector.sim.polymarket.trades renders the rest of it).
def token_side(tape: tp.Tape, t: tp.Trade) -> int:
    """0: printed under the YES token, 1: under NO."""
    return tp.bit(tape, t.seq, "token") & 1


def printed(tape: tp.Tape, t: tp.Trade) -> tuple[int, str, str]:
    """(token index, price text, side) of trade ``t`` as the venue prints it."""
    i = token_side(tape, t)
    p = t.price if i == 0 else t.n - t.price
    buy = (not t.at_bid) if i == 0 else t.at_bid
    return i, price_strs(t.n)[p], "BUY" if buy else "SELL"


def last_price_text(tape: tp.Tape, last: int | None, last_n: int) -> str:
    """The book's ``last_trade_price``: "" before any trade, else the last trade as printed
    (the walk's own start value when the tape has no trade yet)."""
    if last is None:
        return ""
    t = tape.last()
    if t is not None and t.price == last and t.n == last_n:
        return printed(tape, t)[1]
    return price_strs(last_n)[last]


class PolyBooks(LazyBook):
    """The YES book of a market plus its mirror image for the NO token (they change together)."""

    __slots__ = ("market", "cache", "hashes", "parts", "frags_n", "sides")

    def __init__(self, clock: SimClock, market: PolyMarket) -> None:
        super().__init__(clock, f"poly:{market.id}", market.tick_n)
        self.market = market
        self.cache: list[bytes] = [b"", b""]
        self.hashes: list[str] = ["", ""]
        # (bids, asks) per token as the inside of the JSON arrays, the timestamp and the last
        # trade price (JSON text), all bytes.
        self.parts: tuple[list[bytes], list[bytes], bytes, bytes] = ([b"", b""], [b"", b""], b"", b'""')
        self.frags_n = 0  # the price grid the kept level texts are on
        # Per side: the levels last rendered, their texts (YES, NO mirror), and the texts of
        # each level {(ticks, cents): (YES, NO)} and size {cents: text}.
        self.sides: list[Any] = [None, None]

    def get(self, side: int, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            self._render()
        return self.cache[side]

    def render(self) -> None:
        """Bring ``cache``, ``hashes`` and ``parts`` up to the walk's current state."""
        if self.dirty:
            self._render()

    def _side(self, levels: list[list[int]], i: int, n: int) -> tuple[bytes, bytes]:
        """One side of the YES book (``i``: 0 bids, 1 asks) as the inside of its JSON array,
        and its NO mirror. The NO book mirrors the YES book: a YES bid at p is a NO ask at 1-p of
        the same size, and walking YES bids worst-first walks NO asks best-last, the venue's
        order for both. Most changes touch one side: the other is the last rendering's. Level
        texts are kept per side from one rendering to the next (most levels survive)."""
        prev = self.sides[i]
        if prev is not None and prev[0] == levels:
            return prev[1], prev[2]
        ps = price_bytes(n)
        memo, sizes = (prev[3], prev[4]) if prev is not None else ({}, {})
        frags: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        texts: dict[int, bytes] = {}
        same: list[bytes] = []
        mirror: list[bytes] = []
        for p, c in reversed(levels):
            key = (p, c)
            f = memo.get(key)
            t = sizes.get(c)
            if t is None:
                t = size_str(c).encode()
            texts[c] = t
            if f is None:  # a new level, or one the whole book moved (same size, new price)
                f = (_LEVEL % (ps[p], t), _LEVEL % (ps[n - p], t))
            frags[key] = f
            same.append(f[0])
            mirror.append(f[1])
        out = b",".join(same), b",".join(mirror)
        self.sides[i] = ([lv[:] for lv in levels], out[0], out[1], frags, texts)
        return out

    def size_text(self, cents: int) -> bytes:
        """The text of a size the book shows (or showed just before), computed if not."""
        for sd in self.sides:
            if sd is not None and cents in sd[4]:
                return sd[4][cents]
        return size_str(cents).encode()

    def _render(self) -> None:
        m, w = self.market, self.walk
        n = w.n
        if self.frags_n != n:  # a tick change: other price texts
            self.sides, self.frags_n = [None, None], n
        yb, na = self._side(w.bids, 0, n)
        ya, nb = self._side(w.asks, 1, n)
        bids, asks = [yb, nb], [ya, na]
        ts = str(self.ts_ms).encode()
        # last_trade_price is market-wide, as on the venue: both tokens' books carry the same
        # text (SOURCES.md, "Polymarket book hash").
        ltp = _dumps(last_price_text(self.tape, w.last, w.last_n))
        meta = (b'],"min_order_size":' + _dumps(m.min_size_s) + b',"tick_size":' + _dumps(m.tick_s)
                + b',"neg_risk":' + (b"true" if m.neg_risk else b"false") + b',"last_trade_price":' + ltp + b"}")
        cond = _dumps(m.condition_id)
        for side in (0, 1):
            # The key order of the venue's body; the hash is over it with "hash":"".
            head = b'{"market":' + cond + b',"asset_id":' + _dumps(m.tokens[side]) + b',"timestamp":"' + ts + b'","hash":"'
            tail = b'","bids":[' + bids[side] + b'],"asks":[' + asks[side] + meta
            h = _sha1(head)
            h.update(tail)
            hx = h.hexdigest()
            self.hashes[side] = hx
            self.cache[side] = head + hx.encode() + tail
        self.parts = (bids, asks, ts, ltp)
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
