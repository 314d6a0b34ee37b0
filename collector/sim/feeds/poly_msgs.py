"""Polymarket market-channel frames, shaped like the captured ones
(shared/real-payloads/polymarket/ws_*.json): key names and order, strings for every price, size
and timestamp, "BUY"/"SELL" sides.

Framing as captured: the initial dump is one compact JSON array of ``book`` events; every later
frame is one object written with ``", "`` between members (``{"market":"0x..", "price_changes":
[{...}, {...}], ...}``). Books come from the REST rendering (``PolyBooks.docs``), so a ``book``
event and each ``price_change`` entry carry the hash of the REST body of that token at that
instant. ``new_market`` and ``market_resolved`` were never captured: they follow the venue docs'
field list, written compactly, ``event_type`` last as in every captured frame.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson

from collector.sim.polymarket.books import PolyBooks, price_strs, size_str
from collector.sim.walk import Walk

Change = tuple[bool, int, int]  # (bid side, price on the common grid, size in cents; 0 = gone)
_dumps = orjson.dumps


def spaced(b: bytes) -> str:
    """``b`` in the live frames' layout. Safe for frames whose strings are ids, numbers and
    hashes: no string of theirs can hold '","' or '},{'."""
    return b.replace(b',"', b', "').replace(b'},{', b'}, {').decode()


def level_changes(bids0: dict[int, int], asks0: dict[int, int], n0: int, w: Walk) -> tuple[list[Change], int]:
    """The levels that differ between the book before (``bids0``/``asks0`` on a grid of ``n0``)
    and ``w`` now, on the finer of the two grids (a tick change moves the grid), bids then asks,
    best first; and that grid."""
    n1 = w.n
    n = max(n0, n1)
    f0, f1 = n // n0, n // n1
    out: list[Change] = []
    for is_bid, before, now in ((True, bids0, w.bids), (False, asks0, w.asks)):
        if f0 != 1:
            before = {q * f0: s for q, s in before.items()}
        seen = set()
        for q, s in now:
            q *= f1
            seen.add(q)
            if before.get(q) != s:
                out.append((is_bid, q, s))
        for q in before:
            if q not in seen:
                out.append((is_bid, q, 0))
    return out, n


def touch(w: Walk) -> tuple[str, str, str, str]:
    """(YES best bid, YES best ask, NO best bid, NO best ask) as the venue writes them."""
    n, ps = w.n, price_strs(w.n)
    bb, ba = w.bids[0][0], w.asks[0][0]
    return ps[bb], ps[ba], ps[n - ba], ps[n - bb]


def price_change(book: PolyBooks, changes: list[Change], n: int, bad_rate: float,
                 rng: random.Random) -> tuple[dict[str, Any], int]:
    """The ``price_change`` message of one change of ``book`` (rendered already): an entry per
    changed level for each token (YES, then its NO mirror), and how many entries got a
    corrupted hash (``bad_rate`` per entry)."""
    m, docs, ps = book.market, book.docs, price_strs(n)
    yes, no = m.tokens
    hy, hn = docs[0]["hash"], docs[1]["hash"]
    yb, ya, nb, na = touch(book.walk)
    entries = []
    for is_bid, q, s in changes:
        size = size_str(s) if s else "0"
        entries.append({"asset_id": yes, "price": ps[q], "size": size, "side": "BUY" if is_bid else "SELL",
                        "hash": hy, "best_bid": yb, "best_ask": ya})
        entries.append({"asset_id": no, "price": ps[n - q], "size": size, "side": "SELL" if is_bid else "BUY",
                        "hash": hn, "best_bid": nb, "best_ask": na})
    bad = 0
    if bad_rate > 0:
        for e in entries:
            if rng.random() < bad_rate:
                e["hash"] = _corrupt(e["hash"])
                bad += 1
    msg = {"market": m.condition_id, "price_changes": entries, "timestamp": str(book.ts_ms),
           "event_type": "price_change"}
    return msg, bad


def frame(msg: dict[str, Any]) -> str:
    return spaced(_dumps(msg))


def without(msg: dict[str, Any], drop: set[str]) -> dict[str, Any] | None:
    """``msg`` (a price_change) without the entries of the tokens in ``drop``; None if empty."""
    kept = [e for e in msg["price_changes"] if e["asset_id"] not in drop]
    return {**msg, "price_changes": kept} if kept else None


def _corrupt(h: str) -> str:
    """Another 40-hex hash, one digit off: still well-formed, no longer the book's."""
    return h[:-1] + ("0" if h[-1] != "0" else "1")


def dump_book(book: PolyBooks, side: int) -> dict[str, Any]:
    """The ``book`` event of the initial dump (the captured key order, which has tick_size and
    last_trade_price; REST's min_order_size and neg_risk are left out, as on the venue)."""
    d = book.docs[side]
    return {"market": d["market"], "asset_id": d["asset_id"], "timestamp": d["timestamp"], "hash": d["hash"],
            "bids": d["bids"], "asks": d["asks"], "tick_size": d["tick_size"], "event_type": "book",
            "last_trade_price": d["last_trade_price"]}


def dump_frame(books: list[dict[str, Any]]) -> str:
    return _dumps(books).decode()


def trade_book(book: PolyBooks, side: int) -> str:
    """The ``book`` event sent after a trade (captured: other key order, no tick_size and no
    last_trade_price)."""
    d = book.docs[side]
    return spaced(_dumps({"market": d["market"], "asset_id": d["asset_id"], "bids": d["bids"], "asks": d["asks"],
                          "hash": d["hash"], "timestamp": d["timestamp"], "event_type": "book"}))


def last_trade(book: PolyBooks, trade: tuple[int, int, bool]) -> str:
    """``last_trade_price`` of a trade at the YES touch: the taker sold into a bid or bought an
    ask. The transaction hash is made up (stable per market and time)."""
    m = book.market
    price, take, at_bid = trade
    ts = str(book.ts_ms)
    tx = "0x" + hashlib.sha256(f"{m.condition_id}:{ts}".encode()).hexdigest()
    return spaced(_dumps({"market": m.condition_id, "asset_id": m.tokens[0], "price": price_strs(book.walk.n)[price],
                          "size": size_str(take), "fee_rate_bps": "0", "side": "SELL" if at_bid else "BUY",
                          "timestamp": ts, "event_type": "last_trade_price", "transaction_hash": tx}))


def best_bid_ask(book: PolyBooks, side: int) -> str:
    w = book.walk
    yb, ya, nb, na = touch(w)
    spread = price_strs(w.n)[w.asks[0][0] - w.bids[0][0]]
    bb, ba = (yb, ya) if side == 0 else (nb, na)
    return spaced(_dumps({"market": book.market.condition_id, "asset_id": book.market.tokens[side], "best_bid": bb,
                          "best_ask": ba, "spread": spread, "timestamp": str(book.ts_ms), "event_type": "best_bid_ask"}))


def tick_size_change(m: Any, side: int, old: str, new: str, ts: int) -> str:
    return spaced(_dumps({"market": m.condition_id, "asset_id": m.tokens[side], "old_tick_size": old,
                          "new_tick_size": new, "timestamp": str(ts), "event_type": "tick_size_change"}))


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
