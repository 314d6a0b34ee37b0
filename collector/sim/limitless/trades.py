"""Limitless market events from the books' tapes: ``GET /markets/{slug}/events`` and the ground
truth.

The venue documents ``{events: [{id, type, timestamp, data}]}`` and nothing of ``data``; what
``data`` holds here is our guess (docs/simulator.md): a trade is ``{"side", "outcome": "YES",
"price", "contracts", "txHash"}`` with ``contracts`` in raw 10^-6 shares like the book's sizes
and ``side`` the taker's on the YES book (sold into the bid = SELL, bought the ask = BUY).
About one trade in four is followed (older, same instant) by an ``ORDER_PLACED`` event, so a
reader must pick the trades out.
"""

from __future__ import annotations

import datetime as _dt
import heapq
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from collector.sim import tape as tp

if TYPE_CHECKING:
    from collector.sim.limitless.market import LimMarket
    from collector.sim.limitless.venue import LimitlessSim

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
SCALE = 10_000  # walk cents -> raw 1e-6 shares
# What a missing-field fault may leave out of an event: its size or its id.
MISSING = ("data.contracts", "id")


def price_text(p: int, n: int) -> str:
    s = f"{p / n:.{len(str(n)) - 1}f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def stamp(ts_ms: int) -> str:
    d = _dt.datetime.fromtimestamp(ts_ms // 1000, _dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_ms % 1000:03d}Z"


def _side(t: tp.Trade) -> str:
    return "SELL" if t.at_bid else "BUY"


def events_of(tape: tp.Tape, t: tp.Trade) -> list[dict[str, Any]]:
    """The trade's event and the event that may follow it, newest first."""
    price = price_text(t.price, t.n)
    out: list[dict[str, Any]] = [{
        "id": tape.digest(t.seq, "event").hex()[:24],
        "type": "trade",
        "timestamp": stamp(t.ts_ms),
        "data": {"side": _side(t), "outcome": "YES", "price": price, "contracts": str(t.cents * SCALE),
                 "txHash": tp.tx_hash(tape, t.seq)},
    }]
    if tp.bit(tape, t.seq, "placed") < 64:  # a resting order put back where the trade took one
        size = (1 + tp.bit(tape, t.seq, "size")) * 1_000_000
        out.append({"id": tape.digest(t.seq, "placed").hex()[:24], "type": "ORDER_PLACED",
                    "timestamp": stamp(t.ts_ms),
                    "data": {"side": "BUY" if t.at_bid else "SELL", "outcome": "YES", "price": price,
                             "contracts": str(size)}})
    return out


def truth(m: LimMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, Any]:
    raw = t.cents * SCALE
    return {"venue": "limitless", "key": m.slug, "id": tape.digest(t.seq, "event").hex()[:24],
            "tx_hash": tp.tx_hash(tape, t.seq), "seq": t.seq, "price": price_text(t.price, t.n), "size": str(raw),
            "shares": format(Decimal(raw).scaleb(-6).normalize(), "f"), "side": _side(t), "ts_ms": t.ts_ms}


def market_trades(lim: LimitlessSim, now: int, slug: str | None = None) -> Iterator[tuple[Any, tp.Trade]]:
    """(market, trade) newest first of one market or every one with a book, brought up to
    ``now``; lazy, as the other venues'."""
    if slug is not None:
        m = lim.slugs.get(slug)
        ms = [m] if m is not None else []
    else:
        ms = list(lim.slugs.values())
    tapes = []
    for m in ms:
        if not m.live or m.kind in ("amm", "group"):
            continue
        lim.book(m, now)
        tapes.append(_keyed(m))
    return ((m, t) for _, m, t in heapq.merge(*tapes))


def _keyed(m: Any) -> Iterator[tuple[tuple[int, str, int], Any, tp.Trade]]:
    # A function, not a generator expression in the loop: that would see the loop's last market.
    for t in m.book.tape.newest():
        yield (-t.ts_ms, m.slug, -t.seq), m, t
