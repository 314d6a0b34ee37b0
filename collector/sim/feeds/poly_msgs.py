"""Polymarket market-channel frames, shaped like the captured ones
(shared/real-payloads/polymarket/ws_*.json): key names and order, strings for every price, size
and timestamp, "BUY"/"SELL" sides.

Framing as captured: the initial dump is one compact JSON array of ``book`` events; every later
frame is one object written with ``", "`` between members (``{"market":"0x..", "price_changes":
[{...}, {...}], ...}``). Frames are put together from the book's rendered pieces
(``PolyBooks.parts``, ``hashes``): a ``book`` event and each ``price_change`` entry carry the
hash of the REST body of that token at that instant. Every value spliced in is an id, a number
or a hash, which JSON writes as is. ``new_market`` and ``market_resolved`` were never captured:
they follow the venue docs' field list, written compactly, ``event_type`` last as in every
captured frame.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from collector.sim.polymarket.books import PolyBooks, price_bytes
from collector.sim.polymarket.trades import ws_fields
from collector.sim.walk import Walk

Change = tuple[bool, int, int]  # (bid side, price on the common grid, size in cents; 0 = gone)
_dumps = orjson.dumps
_ENTRY = b'{"asset_id":"%b", "price":"%b", "size":"%b", "side":"%b", "hash":"%b", "best_bid":"%b", "best_ask":"%b"}'
_SIDES = {True: (b"BUY", b"SELL"), False: (b"SELL", b"BUY")}  # (YES entry, NO entry) by bid side


def spaced_levels(levels: bytes) -> bytes:
    """The inside of a compact level array in the live frames' layout."""
    return levels.replace(b'","size"', b'", "size"').replace(b"},{", b"}, {")


def level_changes(bids0: list[list[int]], asks0: list[list[int]], n0: int, w: Walk) -> tuple[list[Change], int]:
    """The levels that differ between the book before (``bids0``/``asks0`` on a grid of ``n0``)
    and ``w`` now, on the finer of the two grids (a tick change moves the grid), bids then asks,
    best first; and that grid."""
    n1 = w.n
    n = max(n0, n1)
    f0, f1 = n // n0, n // n1
    out: list[Change] = []
    for is_bid, before, now in ((True, bids0, w.bids), (False, asks0, w.asks)):
        old = {q * f0: s for q, s in before}
        for q, s in now:
            q *= f1
            if old.pop(q, None) != s:
                out.append((is_bid, q, s))
        for q in old:
            out.append((is_bid, q, 0))
    return out, n


def touch(w: Walk) -> tuple[bytes, bytes, bytes, bytes]:
    """(YES best bid, YES best ask, NO best bid, NO best ask) as the venue writes them."""
    n, ps = w.n, price_bytes(w.n)
    bb, ba = w.bids[0][0], w.asks[0][0]
    return ps[bb], ps[ba], ps[n - ba], ps[n - bb]


def price_change(book: PolyBooks, changes: list[Change], n: int, bad_rate: float, rng: random.Random,
                 drop: set[str] | frozenset = frozenset()) -> tuple[str | None, int]:
    """The ``price_change`` frame of one change of ``book`` (rendered already): an entry per
    changed level for each token (YES, then its NO mirror) but the tokens in ``drop``; and how
    many entries got a corrupted hash (``bad_rate`` per entry). None: no entry left."""
    m, ps = book.market, price_bytes(n)
    yes, no = m.tokens
    keep_yes, keep_no = yes not in drop, no not in drop
    yt, nt = yes.encode(), no.encode()
    hy, hn = book.hashes[0].encode(), book.hashes[1].encode()
    yb, ya, nb, na = touch(book.walk)
    parts = []
    bad = 0
    text = book.size_text
    for is_bid, q, s in changes:
        size = text(s) if s else b"0"
        sy, sn = _SIDES[is_bid]
        for keep, tok, price, side, h, bb, ba in ((keep_yes, yt, ps[q], sy, hy, yb, ya),
                                                 (keep_no, nt, ps[n - q], sn, hn, nb, na)):
            if not keep:
                continue
            if bad_rate > 0 and rng.random() < bad_rate:
                h = _corrupt(h)
                bad += 1
            parts.append(_ENTRY % (tok, price, size, side, h, bb, ba))
    if not parts:
        return None, bad
    frame = b'{"market":"%b", "price_changes":[%b], "timestamp":"%b", "event_type":"price_change"}' % (
        m.condition_id.encode(), b", ".join(parts), book.parts[2])
    return frame.decode(), bad


def _corrupt(h: bytes) -> bytes:
    """Another 40-hex hash, one digit off: still well-formed, no longer the book's."""
    return h[:-1] + (b"0" if h[-1:] != b"0" else b"1")


def dump_book(book: PolyBooks, side: int) -> bytes:
    """A ``book`` event of the initial dump (the captured key order, which has tick_size and
    last_trade_price; REST's min_order_size and neg_risk are left out, as on the venue)."""
    m = book.market
    bids, asks, ts, ltp = book.parts
    return (b'{"market":"%b","asset_id":"%b","timestamp":"%b","hash":"%b","bids":[%b],"asks":[%b],"tick_size":%b,'
            b'"event_type":"book","last_trade_price":%b}') % (
        m.condition_id.encode(), m.tokens[side].encode(), ts, book.hashes[side].encode(), bids[side], asks[side],
        _dumps(m.tick_s), ltp)


def dump_frame(books: list[bytes]) -> str:
    return (b"[" + b",".join(books) + b"]").decode()


def trade_book(book: PolyBooks, side: int) -> str:
    """The ``book`` event sent after a trade (captured: other key order, no tick_size and no
    last_trade_price)."""
    m = book.market
    bids, asks, ts, _ = book.parts
    return (b'{"market":"%b", "asset_id":"%b", "bids":[%b], "asks":[%b], "hash":"%b", "timestamp":"%b", '
            b'"event_type":"book"}' % (m.condition_id.encode(), m.tokens[side].encode(), spaced_levels(bids[side]),
                                       spaced_levels(asks[side]), book.hashes[side].encode(), ts)).decode()


_LAST_TRADE = (b'{"market":"%b", "asset_id":"%b", "price":"%b", "size":"%b", "fee_rate_bps":"%b", "side":"%b", '
               b'"timestamp":"%b", "event_type":"last_trade_price", "transaction_hash":"%b"}')
_LT_KEYS = ("market", "asset_id", "price", "size", "fee_rate_bps", "side", "timestamp", "transaction_hash")


def last_trade(book: PolyBooks) -> tuple[str, str]:
    """The token and the ``last_trade_price`` frame of the trade just put on the book's tape:
    token, price, side and transaction hash as the data API serves that trade
    (collector.sim.polymarket.trades)."""
    t = book.tape.last()
    assert t is not None
    f = ws_fields(book.market, book.tape, t)
    return f["asset_id"], (_LAST_TRADE % tuple(f[k].encode() for k in _LT_KEYS)).decode()


def best_bid_ask(book: PolyBooks, side: int) -> str:
    w, m = book.walk, book.market
    yb, ya, nb, na = touch(w)
    spread = price_bytes(w.n)[w.asks[0][0] - w.bids[0][0]]
    bb, ba = (yb, ya) if side == 0 else (nb, na)
    return (b'{"market":"%b", "asset_id":"%b", "best_bid":"%b", "best_ask":"%b", "spread":"%b", "timestamp":"%b", '
            b'"event_type":"best_bid_ask"}' % (m.condition_id.encode(), m.tokens[side].encode(), bb, ba, spread,
                                               book.parts[2])).decode()


def tick_size_change(m: Any, side: int, old: str, new: str, ts: int) -> str:
    return (b'{"market":"%b", "asset_id":"%b", "old_tick_size":%b, "new_tick_size":%b, "timestamp":"%d", '
            b'"event_type":"tick_size_change"}' % (m.condition_id.encode(), m.tokens[side].encode(), _dumps(old),
                                                   _dumps(new), ts)).decode()


def _about(m: Any) -> dict[str, Any]:
    ev = m.event
    return {"id": str(m.id), "question": m.question, "market": m.condition_id, "slug": m.slug,
            "description": f"This market resolves according to the rules for: {m.question}",
            "assets_ids": list(m.tokens), "outcomes": list(m.outcomes),
            "event_message": {"id": ev["id"], "ticker": ev["slug"], "slug": ev["slug"], "title": ev["title"],
                              "description": ""}}


def new_market(m: Any, ts: int) -> str:
    return _dumps({**_about(m), "timestamp": str(ts), "event_type": "new_market"}).decode()


def market_resolved(m: Any, ts: int) -> str:
    """The winner is the outcome whose price the close set to "1"."""
    win = m.outcome_prices.index("1") if "1" in m.outcome_prices else 0
    d = _about(m)
    ev = d.pop("event_message")
    return _dumps({**d, "winning_asset_id": m.tokens[win] if m.tokens else "",
                   "winning_outcome": m.outcomes[win] if m.outcomes else "", "event_message": ev,
                   "timestamp": str(ts), "event_type": "market_resolved"}).decode()
