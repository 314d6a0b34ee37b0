"""Polymarket trades from the books' tapes: the data API's ``/trades`` items, the fields of the
market channel's ``last_trade_price`` and the ground truth, all rendered from one function so
they agree.

The walk trades at the YES touch. Each trade is printed under one token, picked by a digest of
seed, book and sequence number: on YES it is the walk's price and side (taker sold into the
bid = SELL, bought the ask = BUY); on NO the mirror (a YES bid at p is a NO ask at 1-p, so the
taker who sold YES into it bought NO: price 1-p, side flipped). The book's
``last_trade_price`` (market-wide, both tokens) is the price as printed.

Data API items: the keys and order of the ccxt capture, with ``size``/``price`` JSON numbers,
``timestamp`` integer seconds and ``outcomeIndex`` an integer, as the live API sends them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from collector.sim import tape as tp
from collector.sim.polymarket.books import printed, size_str

if TYPE_CHECKING:
    from collector.sim.polymarket.market import PolyMarket
    from collector.sim.polymarket.venue import PolymarketSim

FEE_RATE_BPS = "0"


def _num(text: str) -> int | float:
    f = float(text)
    return int(f) if f.is_integer() else f


def data_item(m: PolyMarket, tape: tp.Tape, t: tp.Trade, maker: bool = False) -> dict[str, Any]:
    """One data-API ``/trades`` item. ``maker``: the same fill seen from the maker's side (what
    ``takerOnly=false`` adds): same transaction, the other side, the maker's wallet."""
    i, price, side = printed(tape, t)
    if maker:
        side = "SELL" if side == "BUY" else "BUY"
    return {
        "proxyWallet": tp.wallet(tape, t.seq, "maker" if maker else "taker"),
        "side": side,
        "asset": m.tokens[i],
        "conditionId": m.condition_id,
        "size": _num(size_str(t.cents)),
        "price": _num(price),
        "timestamp": t.ts_ms // 1000,
        "title": m.question,
        "slug": m.slug,
        "icon": f"https://polymarket-upload.s3.us-east-2.amazonaws.com/{m.slug}.png",
        "eventSlug": m.event["slug"],
        "outcome": m.outcomes[i] if i < len(m.outcomes) else ("Yes", "No")[i],
        "outcomeIndex": i,
        "name": "",
        "pseudonym": "",
        "bio": "",
        "profileImage": "",
        "profileImageOptimized": "",
        "transactionHash": tp.tx_hash(tape, t.seq),
    }


def ws_fields(m: PolyMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, str]:
    """What ``last_trade_price`` carries about trade ``t`` (all strings, timestamp in ms)."""
    i, price, side = printed(tape, t)
    return {"market": m.condition_id, "asset_id": m.tokens[i], "price": price, "size": size_str(t.cents),
            "fee_rate_bps": FEE_RATE_BPS, "side": side, "timestamp": str(t.ts_ms),
            "transaction_hash": tp.tx_hash(tape, t.seq)}


def truth(m: PolyMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, Any]:
    i, price, side = printed(tape, t)
    size = size_str(t.cents)
    return {"venue": "polymarket", "key": m.tokens[i], "market": m.condition_id, "id": tp.tx_hash(tape, t.seq),
            "seq": t.seq, "price": price, "size": size, "shares": size, "side": side, "ts_ms": t.ts_ms}


def market_trades(poly: PolymarketSim, now: int, conditions: set[str] | None = None) -> Iterator[tuple[Any, tp.Trade]]:
    """(market, trade) of every trade on the tapes, newest first (ties: market id, then the
    later trade first), after bringing the books up to ``now``. The markets of ``conditions``
    (condition ids) or all that have a book; asking makes the book, as a book read does. Lazy:
    the tapes are merged as far as the caller reads."""
    ms = [m for m in poly.markets.values() if m.live and (conditions is None or m.condition_id in conditions)]
    tapes = []
    for m in ms:
        b = poly.ensure_book(m)
        b.advance(now)
        tapes.append(_keyed(m, b.tape))
    return ((m, t) for _, m, t in heapq.merge(*tapes))


def _keyed(m: Any, tape: tp.Tape) -> Iterator[tuple[tuple[int, int, int], Any, tp.Trade]]:
    # A function, not a generator expression in the loop: that would see the loop's last market.
    for t in tape.newest():
        yield (-t.ts_ms, m.id, -t.seq), m, t
