"""One instrument's book kept in memory from a feed: snapshot + level changes, exact text.

Levels are keyed by canonical price text and keep the venue's own text beside it, because the
venue's hash (Polymarket) is computed over the text as the venue serves it. Ordering uses
float(price): canonical prices have at most 15 significant digits, which round-trip through a
double, so float order is the exact decimal order (the REST normalizer relies on the same).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from collector.model.records import Level
from collector.venues.polymarket_book import opt_dec

_sha1 = hashlib.sha1
_dumps = orjson.dumps

# canonical price text -> float sort key (prices repeat; bounded like the normalizer's caches)
_KEY: dict[str, float] = {}
_KEY_MAX = 200_000


def canon(text: Any) -> str | None:
    """Canonical decimal text of a price/size as sent, None for junk."""
    return opt_dec(text) if text != "0" else "0"


def _key(p: str) -> float:
    k = _KEY.get(p)
    if k is None:
        if len(_KEY) >= _KEY_MAX:
            _KEY.clear()
        k = _KEY[p] = float(p)
    return k


class LocalBook:
    """Bids and asks as ``{canonical price: (raw price, raw size, canonical size)}``."""

    __slots__ = ("bids", "asks", "ob_ts_ms", "hash", "tick_size", "last_trade_price", "_sorted")

    def __init__(self) -> None:
        self.bids: dict[str, tuple[str, str, str]] = {}
        self.asks: dict[str, tuple[str, str, str]] = {}
        self.ob_ts_ms: int | None = None
        self.hash: str | None = None
        self.tick_size: str | None = None  # raw text as the venue sends it
        self.last_trade_price: str | None = None  # raw text
        self._sorted: tuple[list[Level], list[Level]] | None = None

    # -- mutation ----------------------------------------------------------------------------
    def replace(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        """Whole book from raw (price, size) text pairs (any order). ValueError on junk."""
        self.bids = _side(bids)
        self.asks = _side(asks)
        self._sorted = None

    def set_level(self, is_bid: bool, price: str, size: str) -> tuple[str, str]:
        """Set one level from raw text; size 0 removes it. Returns the canonical (price, size)."""
        p = canon(price)
        s = canon(size)
        if p is None or s is None:
            raise ValueError(f"bad level {price!r} {size!r}")
        side = self.bids if is_bid else self.asks
        if s == "0":
            side.pop(p, None)
        else:
            side[p] = (price, size, s)
        self._sorted = None
        return p, s

    # -- reading -----------------------------------------------------------------------------
    def levels(self) -> tuple[list[Level], list[Level]]:
        """(bids best-first descending, asks best-first ascending) as canonical text."""
        s = self._sorted
        if s is None:
            b = sorted(self.bids, key=_key, reverse=True)
            a = sorted(self.asks, key=_key)
            bids, asks = self.bids, self.asks
            s = self._sorted = ([(p, bids[p][2]) for p in b], [(p, asks[p][2]) for p in a])
        return s

    def best(self) -> tuple[str | None, str | None]:
        bids, asks = self.levels()
        return (bids[0][0] if bids else None, asks[0][0] if asks else None)

    def crossed(self) -> bool:
        bb, ba = self.best()
        return bb is not None and ba is not None and _key(bb) >= _key(ba)

    def venue_hash(self, market: str, asset_id: str, timestamp: str, min_order_size: str | None,
                   neg_risk: bool | None) -> str:
        """Polymarket's hash of this book: SHA-1 of its REST twin's compact JSON (venue order:
        bids ascending, asks descending), the fields the current REST body has."""
        bids, asks = self.levels()
        rb, ra = self.bids, self.asks
        d: dict[str, Any] = {
            "market": market,
            "asset_id": asset_id,
            "timestamp": timestamp,
            "hash": "",
            "bids": [{"price": rb[p][0], "size": rb[p][1]} for p, _ in reversed(bids)],
            "asks": [{"price": ra[p][0], "size": ra[p][1]} for p, _ in reversed(asks)],
        }
        if min_order_size is not None:
            d["min_order_size"] = min_order_size
        if self.tick_size is not None:
            d["tick_size"] = self.tick_size
        if neg_risk is not None:
            d["neg_risk"] = neg_risk
        if self.last_trade_price is not None:
            d["last_trade_price"] = self.last_trade_price
        return _sha1(_dumps(d)).hexdigest()


def _side(levels: list[tuple[str, str]]) -> dict[str, tuple[str, str, str]]:
    out: dict[str, tuple[str, str, str]] = {}
    for price, size in levels:
        p = canon(price)
        s = canon(size)
        if p is None or s is None:
            raise ValueError(f"bad level {price!r} {size!r}")
        if s != "0":
            out[p] = (price, size, s)
    return out
