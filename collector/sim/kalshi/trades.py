"""Kalshi trades from the books' tapes: ``GET /markets/trades`` items, the WS ``trade`` message
and the ground truth, rendered from one place so they agree.

The walk's book is the YES book: a taker who sold YES into the bid bought NO, so Kalshi shows a
"no" taker on the ask side of the book (``taker_outcome_side``/``taker_side`` "no",
``taker_book_side`` "ask"); one who bought the ask is a "yes" taker on the bid side, as in the
captured trades (yes 0.10 / no 0.90 for a yes taker). Prices are dollars with 4 decimals,
``count_fp`` contracts with 2; ``created_time`` is RFC3339 with microseconds (the part below
the millisecond is a stable digest: ``ts_ms`` is the time truncated to the millisecond).
"""

from __future__ import annotations

import base64
import datetime as _dt
import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from collector.sim import tape as tp

if TYPE_CHECKING:
    from collector.sim.kalshi.market import KalMarket
    from collector.sim.kalshi.venue import KalshiSim

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# What a missing-field fault may leave out of an item: its size or its id.
MISSING = ("count_fp", "trade_id")

Key = tuple[int, str, int]  # the paging order: (-ts_ms, ticker, -seq)


def _sides(t: tp.Trade) -> tuple[str, str]:
    """(taker outcome side, taker book side)."""
    return ("no", "ask") if t.at_bid else ("yes", "bid")


def created(tape: tp.Tape, t: tp.Trade) -> str:
    us = int.from_bytes(tape.digest(t.seq, "us")[:2], "big") % 1000
    d = _dt.datetime.fromtimestamp(t.ts_ms // 1000, _dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.ts_ms % 1000:03d}{us:03d}Z"


def item(m: KalMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, Any]:
    """One ``/markets/trades`` item, keys in the captured (alphabetical) order."""
    outcome, book_side = _sides(t)
    return {
        "count_fp": f"{t.cents // 100}.{t.cents % 100:02d}",
        "created_time": created(tape, t),
        "is_block_trade": False,
        "no_price_dollars": f"{(t.n - t.price) / t.n:.4f}",
        "taker_book_side": book_side,
        "taker_outcome_side": outcome,
        "taker_side": outcome,
        "ticker": m.ticker,
        "trade_id": tp.uuid_text(tape, t.seq),
        "yes_price_dollars": f"{t.price / t.n:.4f}",
    }


def ws_msg(m: KalMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, Any]:
    """The ``msg`` of a WS ``trade`` message (no seq on this channel, as on the venue)."""
    it = item(m, tape, t)
    return {"trade_id": it["trade_id"], "market_ticker": m.ticker, "yes_price_dollars": it["yes_price_dollars"],
            "no_price_dollars": it["no_price_dollars"], "count_fp": it["count_fp"], "taker_side": it["taker_side"],
            "taker_outcome_side": it["taker_outcome_side"], "taker_book_side": it["taker_book_side"],
            "is_block_trade": False, "ts": t.ts_ms // 1000, "ts_ms": t.ts_ms}


def truth(m: KalMarket, tape: tp.Tape, t: tp.Trade) -> dict[str, Any]:
    it = item(m, tape, t)
    return {"venue": "kalshi", "key": m.ticker, "id": it["trade_id"], "seq": t.seq, "price": it["yes_price_dollars"],
            "size": it["count_fp"], "shares": it["count_fp"], "side": it["taker_outcome_side"], "ts_ms": t.ts_ms}


def market_trades(kal: KalshiSim, now: int, ticker: str | None = None) -> Iterator[tuple[Any, tp.Trade]]:
    """(market, trade) of every trade on the tapes of one market or all trading ones, in the
    paging order (newest first), after bringing the books up to ``now``. Lazy: the tapes are
    merged as far as the caller reads (a page of all markets costs its own length, not theirs)."""
    if ticker is not None:
        m = kal.tickers.get(ticker)
        ms = [m] if m is not None and m.live else []
    else:
        ms = [m for m in kal.tickers.values() if m.live]
    tapes = []
    for m in ms:
        m.book_bytes(kal.clock, now)  # makes the book and brings it up to now
        tapes.append(_keyed(m))
    # (ticker, seq) is unique, so the merge never compares two markets
    return ((m, t) for _, m, t in heapq.merge(*tapes))


def _keyed(m: KalMarket) -> Iterator[tuple[Key, Any, tp.Trade]]:
    # A function, not a generator expression in the loop: that would see the loop's last market.
    for t in m.book.tape.newest():
        if shown(m, t):
            yield order(m.ticker, t), m, t


def shown(m: KalMarket, t: tp.Trade) -> bool:
    """An illiquid market shows no YES bids, so nobody can have sold into one."""
    return not (m.illiquid and t.at_bid)


def order(ticker: str, t: tp.Trade) -> Key:
    return (-t.ts_ms, ticker, -t.seq)


def encode_cursor(k: Key) -> str:
    return base64.urlsafe_b64encode(f"tr1:{-k[0]}:{-k[2]}:{k[1]}".encode()).decode()


def decode_cursor(c: str) -> Key:
    try:
        kind, ts, seq, ticker = base64.urlsafe_b64decode(c.encode()).decode().split(":", 3)
        if kind != "tr1":
            raise ValueError
        return (-int(ts), ticker, -int(seq))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None
