"""Polymarket CLOB book -> BookRecord: the normalizer's hot path (runs on the poller's loop thread).

Book prices and sizes are strings; bids arrive ascending and asks descending (best = last), so
both sides are re-sorted explicitly. Levels are kept as given apart from the re-sort (zero sizes
and repeated prices are not dropped or merged). The hash verdict is computed before, on the fetch
thread (collector.venues.polyhash); this module only carries it into the record.
"""

from __future__ import annotations

import operator
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from collector.model import errors
from collector.model.caches import trim_oldest
from collector.model.decimals import check_magnitude, dec_text
from collector.model.records import BookRecord, DecText, Instrument, Level

VENUE = "polymarket"

# Plain decimal text of bounded length: safe to hand straight to dec_text's fast path.
_FAST_NUM = re.compile(r"(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,14})?")
_MAX_NUM_CHARS = 64  # longer price/size text is garbage, not a Polymarket number
_MAX_TS_MS = 2**63 - 1  # orjson cannot write larger integers


def _num_text(value: Any) -> str:
    """Canonical decimal text for a book price/size; ValueError on junk.

    Like ``dec_text`` but bounded: refuses huge exponents and absurdly long text, whose
    canonical (exponent-free) form would otherwise be enormous.
    """
    if type(value) is str:
        if _FAST_NUM.fullmatch(value):  # dec_text's fast path without its second regex match
            return value.rstrip("0").rstrip(".") if "." in value else value
        text = value.strip()
        if len(text) > _MAX_NUM_CHARS:
            raise ValueError("number text too long")
        try:
            d = Decimal(text)
        except (InvalidOperation, ValueError):
            raise ValueError(f"not a number: {text!r}") from None
        if d.is_finite():  # refused before dec_text, with the full text in the message
            check_magnitude(d, text)
        out = dec_text(text)
        if len(out) > _MAX_NUM_CHARS:
            raise ValueError("number text too long")
        return out
    out = dec_text(value)  # int / float (bool and everything else -> ValueError)
    if len(out) > _MAX_NUM_CHARS:
        raise ValueError("number too long")
    return out


# Raw venue text -> canonical text. Prices and sizes repeat heavily from poll to poll, so a
# dict hit replaces two regex matches per number. Only valid text is cached, and only str keys
# (a float/bool key would alias: True == 1 == 1.0), so a lookup with any other value simply
# misses. Past the bound the oldest quarter is dropped (never all at once: the live prices and
# sizes stay, no burst of misses). _PRICE_CACHE holds only prices whose canonical text is "0", "1" or "0.<digits>":
# for those, plain string order is numeric order (no exponent, no trailing zeros), so levels
# whose prices all come from it sort with a C-level key instead of float() per level.
_TEXT_CACHE: dict[str, str] = {}
_TEXT_CACHE_MAX = 100_000
_PRICE_CACHE: dict[str, str] = {}
_price_of = operator.itemgetter(0)


class _NotUnit(Exception):
    """A valid price outside [0, 1]: the level list takes the general path (_levels_any)."""


def _unit_price(value: Any) -> str:
    """Canonical text of a price in [0, 1] (cached when it came as text); ValueError on junk."""
    t = _num_text(value)
    if not (t[:2] == "0." or t == "0" or t == "1"):
        raise _NotUnit
    if type(value) is str:
        _PRICE_CACHE[value] = t
    return t


def _size_text(value: Any) -> str:
    t = _num_text(value)
    if type(value) is str:
        _TEXT_CACHE[value] = t
    return t


def _sort_key(levels: list[Level]):
    """Sort key for canonical prices. Text of <= 15 chars has <= 15 significant digits, which
    round-trip through a double, so float() keeps distinct values distinct and ordered; longer
    text falls back to Decimal."""
    for p, _ in levels:
        if len(p) > 15:
            return lambda lv: Decimal(lv[0])
    return lambda lv: float(lv[0])


def levels(side: Any, name: str, descending: bool) -> list[Level]:
    """One book side as canonical (price, size) levels, sorted best first; BadPayload on junk.

    The hot path: one comprehension of two dict hits per level, then a sort on the price text
    (valid because every price came from _PRICE_CACHE / _unit_price, i.e. lies in [0, 1]).
    Anything else (a price above 1, junk) is handled by _levels_any with the same result.
    """
    if type(side) is not list:
        raise errors.BadPayload(f"book {name} is not a list", venue=VENUE)
    pget = _PRICE_CACHE.get
    sget = _TEXT_CACHE.get
    try:
        out = [
            (pget(lv["price"]) or _unit_price(lv["price"]), sget(lv["size"]) or _size_text(lv["size"]))
            for lv in side
        ]
    except _NotUnit:
        out = _levels_any(side, name)
        if len(out) > 1:
            out.sort(key=_sort_key(out), reverse=descending)
        return out
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise errors.BadPayload(f"bad {name} level: {e}", venue=VENUE) from None
    if len(out) > 1:
        out.sort(key=_price_of, reverse=descending)
    return out


def struct_levels(side: list[Any], name: str, descending: bool, prev: list[Level] | None = None) -> list[Level]:
    """:func:`levels` of levels decoded as objects with ``price`` / ``size`` attributes (the
    msgspec path of collector.venues.polymarket_reply): the same text, order and errors.

    ``prev``: this side's levels at the last poll. A level sent exactly as one of them (its text
    already canonical) is that level: most of a changed side is, and a venue-wide book set holds
    more distinct sizes than the text cache."""
    pget = _PRICE_CACHE.get
    sget = _TEXT_CACHE.get
    try:
        if prev:
            # The kept level itself, not an equal new one: the decoded texts are freed at once.
            same = {lv: lv for lv in prev}.get
            out = []
            append = out.append
            for lv in side:
                p, s = lv.price, lv.size
                append(same((p, s)) or (pget(p) or _unit_price(p), sget(s) or _size_text(s)))
        else:
            out = [(pget(lv.price) or _unit_price(lv.price), sget(lv.size) or _size_text(lv.size)) for lv in side]
    except _NotUnit:
        return levels([{"price": lv.price, "size": lv.size} for lv in side], name, descending)
    except (TypeError, ValueError) as e:
        raise errors.BadPayload(f"bad {name} level: {e}", venue=VENUE) from None
    if len(out) > 1:
        out.sort(key=_price_of, reverse=descending)
    return out


def _levels_any(side: list[Any], name: str) -> list[Level]:
    """The general path of levels (any valid price), unsorted."""
    out: list[Level] = []
    append = out.append
    cache = _TEXT_CACHE
    get = cache.get
    try:
        for lv in side:
            p = lv["price"]
            s = lv["size"]
            # Only str keys: a float/bool key would alias (True == 1 == 1.0) in the dict.
            tp = get(p) if type(p) is str else None
            if tp is None:
                tp = _num_text(p)
                if type(p) is str:
                    cache[p] = tp
            ts = get(s) if type(s) is str else None
            if ts is None:
                ts = _num_text(s)
                if type(s) is str:
                    cache[s] = ts
            append((tp, ts))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise errors.BadPayload(f"bad {name} level: {e}", venue=VENUE) from None
    return out


def opt_dec(value: Any) -> str | None:
    """Optional decimal text (tick size, last trade, min size); None when absent/""/junk."""
    if value is None or value == "":
        return None
    if type(value) is str:
        t = _TEXT_CACHE.get(value)
        if t is not None:
            return t
    try:
        t = _num_text(value)
    except ValueError:
        return None
    if type(value) is str:
        _TEXT_CACHE[value] = t
    return t


def ob_ts(value: Any) -> int | None:
    """Book ``timestamp`` (string unix ms) -> int, None when absent or invalid."""
    if value is None or type(value) is bool:
        return None
    try:
        ts = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return ts if 0 <= ts <= _MAX_TS_MS else None


def book_record(inst: Instrument, raw: dict[str, Any], hash_ok: bool | None, ts_ms: int, latency_ms: float) -> BookRecord:
    """Raw CLOB book (a dict) -> BookRecord (bids best-first descending, asks ascending).

    ``hash_ok`` is the verdict of the fetch thread (None = not checked). Raises BadPayload for
    anything it cannot trust.
    """
    if raw.get("asset_id") != inst.poll_key:
        raise errors.BadPayload(
            f"book asset_id {raw.get('asset_id')!r} != requested {inst.poll_key!r}", venue=VENUE
        )
    bids = levels(raw.get("bids"), "bids", True)
    asks = levels(raw.get("asks"), "asks", False)
    h = raw.get("hash")
    return assemble(inst, bids, asks, raw.get("last_trade_price"), raw.get("min_order_size"), raw.get("neg_risk"),
                    raw.get("tick_size"), ob_ts(raw.get("timestamp")), h if type(h) is str and h else None, hash_ok,
                    ts_ms, latency_ms)


def assemble(inst: Instrument, bids: list[Level], asks: list[Level], ltp_raw: Any, mos_raw: Any, nr: Any,
             tick_raw: Any, ob_ts_ms: int | None, hash_: str | None, hash_ok: bool | None, ts_ms: int,
             latency_ms: float) -> BookRecord:
    """The record from normalized levels and the book's raw scalar fields."""
    if len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
        trim_oldest(_TEXT_CACHE)
    if len(_PRICE_CACHE) > _TEXT_CACHE_MAX:
        trim_oldest(_PRICE_CACHE)
    extra: dict[str, Any] = {}
    ltp = opt_dec(ltp_raw)
    if ltp is not None:
        extra["last_trade_price"] = DecText(ltp)
    mos = opt_dec(mos_raw)
    if mos is not None:
        extra["min_order_size"] = DecText(mos)
    if type(nr) is bool:
        extra["neg_risk"] = nr
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
        ob_ts_ms=ob_ts_ms,
        hash=hash_,
        hash_ok=hash_ok,
        tick_size=opt_dec(tick_raw) or inst.tick_size,
        extra=extra,
    )
