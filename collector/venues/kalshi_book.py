"""Kalshi book normalizer: one ``orderbook_fp`` (``{"yes_dollars": [...], "no_dollars": [...]}``)
-> the market's YES book.

The venue sends bids only, per leg, each side ascending (best bid last; the endpoint prose says
otherwise, so nothing relies on the order). A NO bid at p is a YES ask at notional - p with the
same size, so YES asks come from the NO side. Prices are dollar strings ("0.4200"), sizes
contract counts with two decimals ("13.00", fractional sizes are live): both become exact decimal
text, never floats. A book that makes no sense (a price outside (0, notional), a repeated price,
a size <= 0, bids crossing asks) is a BadPayload: a crossed YES book almost always means the NO
convention changed under us, and a wrong book is worse than none.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from collector.model import errors
from collector.model.decimals import dec_text, fmt
from collector.model.records import BookRecord, Instrument

VENUE = "kalshi"
_ONE = Decimal(1)
_SIDES = ("yes_dollars", "no_dollars")


def unwrap(raw: Any) -> Any:
    """The ``orderbook_fp`` object of a batch item, a single-book reply or the object itself."""
    if type(raw) is dict and "orderbook_fp" in raw:
        return raw["orderbook_fp"]
    if type(raw) is dict and "orderbook" in raw and not any(k in raw for k in _SIDES):
        # The cents shape removed on 2026-03-12: refuse it rather than guess its units.
        raise errors.BadPayload("orderbook: legacy 'orderbook' shape (no orderbook_fp)", venue=VENUE)
    return raw


def notional_of(inst: Instrument) -> Decimal:
    """Payout per contract from discovery (``notional_value_dollars``), 1 when not known."""
    meta = inst.meta
    v = meta.get("notional") if type(meta) is dict else None
    try:
        d = Decimal(dec_text(v)) if v is not None else _ONE
    except ValueError:
        return _ONE
    return d if d > 0 else _ONE


def book_record(inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
    ob = unwrap(raw)
    if type(ob) is not dict:
        raise errors.BadPayload(f"orderbook_fp: expected an object, got {type(ob).__name__}", venue=VENUE)
    top = notional_of(inst)
    fast = _sides_fast(ob) if top == _ONE else None
    if fast is not None:
        bids, asks, crossed = fast
    else:
        yes = _side(ob.get("yes_dollars"), "yes_dollars", top)
        no = _side(ob.get("no_dollars"), "no_dollars", top)
        bids = [(p, s) for _, p, s in reversed(yes)]  # highest YES bid first
        asks = [(fmt(top - d), s) for d, _, s in reversed(no)]  # highest NO bid = lowest YES ask first
        crossed = bool(yes and no and yes[-1][0] > top - no[-1][0])
    if crossed:
        raise errors.BadPayload(
            f"orderbook: crossed book {inst.poll_key} (yes bid {bids[0][0]} > yes ask {asks[0][0]})", venue=VENUE
        )
    return BookRecord(
        venue=VENUE,
        instrument_id=inst.instrument_id,
        poll_key=inst.poll_key,
        market_id=inst.market_id,
        outcome=inst.outcome,
        ts_ms=ts_ms,
        bids=bids,
        asks=asks,
        latency_ms=latency_ms,
        ob_ts_ms=None,  # the venue sends no book time, sequence or hash on REST
        hash=None,
        tick_size=inst.tick_size,
    )


_TICKS = 10_000  # the venue's usual text: "0.dddd" dollars
_PRICE_TEXT: dict[int, str] = {}


def _price_text(t: int) -> str:
    text = _PRICE_TEXT.get(t)
    if text is None:
        text = _PRICE_TEXT[t] = f"0.{t:04d}".rstrip("0")
    return text


def _ticks(levels: Any) -> list[tuple[int, str]] | None:
    """``[["0.4200", "13.00"], ...]`` -> ``[(4200, "13"), ...]`` ascending; None (take the general
    path, which also says what is wrong) unless every level is 4-decimal text, 0 < price < 1,
    size > 0, no price twice."""
    if levels is None:
        return []
    if type(levels) is not list:
        return None
    out: list[tuple[int, str]] = []
    for lvl in levels:
        if type(lvl) is not list or len(lvl) != 2:
            return None
        p, q = lvl
        if type(p) is not str or len(p) != 6 or p[0] != "0" or p[1] != "." or not (p.isascii() and p[2:].isdigit()):
            return None
        t = int(p[2:])
        try:
            size = dec_text(q)
        except ValueError:
            return None
        if t == 0 or size == "0":
            return None
        out.append((t, size))
    out.sort()
    for a, b in zip(out, out[1:]):
        if a[0] == b[0]:
            return None
    return out


def _sides_fast(ob: dict[str, Any]) -> tuple[list, list, bool] | None:
    """Both sides in integer ticks (the common case; about 3x cheaper than Decimal per level)."""
    yes = _ticks(ob.get("yes_dollars"))
    no = _ticks(ob.get("no_dollars")) if yes is not None else None
    if no is None:
        return None
    bids = [(_price_text(t), q) for t, q in reversed(yes)]
    asks = [(_price_text(_TICKS - t), q) for t, q in reversed(no)]
    return bids, asks, bool(yes and no and yes[-1][0] > _TICKS - no[-1][0])


def _side(levels: Any, name: str, top: Decimal) -> list[tuple[Decimal, str, str]]:
    """``[[price, size], ...]`` -> ``[(price, price_text, size_text)]`` ascending by price.

    A missing or null side is empty (an empty side is ``[]``; old SDKs crashed on null)."""
    if levels is None:
        return []
    if type(levels) is not list:
        raise errors.BadPayload(f"orderbook: {name} is not a list", venue=VENUE)
    out: list[tuple[Decimal, str, str]] = []
    for lvl in levels:
        if type(lvl) is not list or len(lvl) < 2:
            raise errors.BadPayload(f"orderbook: bad {name} level {lvl!r:.60}", venue=VENUE)
        try:
            p = dec_text(lvl[0])
            s = dec_text(lvl[1])
        except ValueError:
            raise errors.BadPayload(f"orderbook: bad {name} level {lvl!r:.60}", venue=VENUE) from None
        d = Decimal(p)
        if not 0 < d < top:
            raise errors.BadPayload(f"orderbook: {name} price {p} outside (0, {fmt(top)})", venue=VENUE)
        if s == "0":
            raise errors.BadPayload(f"orderbook: {name} level {p} has size 0", venue=VENUE)
        out.append((d, p, s))
    out.sort(key=lambda t: t[0])
    for a, b in zip(out, out[1:]):
        if a[0] == b[0]:
            raise errors.BadPayload(f"orderbook: {name} repeats price {a[1]}", venue=VENUE)
    return out
