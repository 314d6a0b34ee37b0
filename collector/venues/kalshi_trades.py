"""Kalshi's public trade tape, ``GET /markets/trades``: one venue-wide tape, newest first, cursor
paged, ``min_ts`` in unix seconds (venues/kalshi.md). Filtered to the tracked tickers.

An item: ``trade_id``, ``ticker``, ``yes_price_dollars`` / ``no_price_dollars`` (dollar strings),
``count_fp`` (contracts, 2 dp: fractional counts are live), ``taker_outcome_side`` (``yes``: the
taker bought YES, i.e. lifted the YES book's asks; ``no``: it bought NO, i.e. sold into the YES
bids), ``taker_book_side``, ``created_time`` (RFC 3339, µs). Instruments are YES books, so the
price recorded is the YES price. The venue sends no fees on the tape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from collector.model.clock import now_ms
from collector.model.errors import BadPayload, VenueError
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord
from collector.venues.trades import TradeFetch, dec, page_back

VENUE = "kalshi"
_SIDE = {"yes": "buy", "no": "sell"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def iso_ms(text: Any) -> int | None:
    """RFC 3339 text (``Z`` or an offset, up to µs) -> epoch ms; None for junk or Go's zero time."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return (t - _EPOCH) // _MS  # exact: no float on the way
    except (ValueError, OverflowError):
        return None


def parse_trade(item: Any, insts: Mapping[str, Instrument], ts_ms: int, source: str = "rest") -> TradeRecord | str | None:
    """One tape item -> a record, a skip reason, or None (a ticker we do not track)."""
    if type(item) is not dict:
        return "not_an_object"
    inst = insts.get(item.get("ticker") or item.get("market_ticker"))
    if inst is None:
        return None
    tid = item.get("trade_id")
    price = dec(item.get("yes_price_dollars"))
    size = dec(item.get("count_fp"))
    when = iso_ms(item.get("created_time")) if "created_time" in item else item.get("ts_ms")
    if not isinstance(tid, str) or not tid:
        return "no_trade_id"
    if price is None or size is None:
        return "no_price_or_size"
    if type(when) is not int:
        return "no_time"
    side = _SIDE.get(item.get("taker_outcome_side") or item.get("taker_side"))
    return TradeRecord(VENUE, inst.instrument_id, ts_ms, when, tid, price, size, side, trade_id=tid, source=source)


class KalshiTrades:
    """The venue tape through the client's paced GET (``get(path, params) -> payload``)."""

    per_market = False

    def __init__(self, get: Callable[[str, dict[str, Any]], Any], page_limit: int, max_pages: int) -> None:
        self._get = get
        self.page_limit = page_limit
        self.max_pages = max_pages

    def scope_of(self, inst: Instrument) -> str:
        return ""

    def fetch(self, scope: str, insts: Mapping[str, Instrument], since_ms: int) -> TradeFetch:
        out = TradeFetch([], None)
        cursor: str | None = None
        seen_cursors: set[str] = set()
        while out.pages < self.max_pages:
            params: dict[str, Any] = {"min_ts": str(max(0, since_ms // 1000)), "limit": str(self.page_limit)}
            if cursor:
                params["cursor"] = cursor
            try:
                body = self._get("/markets/trades", params)
                if type(body) is not dict or type(body.get("trades")) is not list:
                    raise BadPayload("trades page without a trades list", venue=VENUE)
            except VenueError as e:
                out.error = e
                return out
            ts = now_ms()
            page_back(out, body["trades"], lambda it: parse_trade(it, insts, ts), since_ms)
            cursor = body.get("cursor")
            if not cursor or cursor in seen_cursors:  # "" or null ends the tape (a repeat: stuck)
                out.covered_from_ms = since_ms if out.covered_from_ms is None else min(out.covered_from_ms, since_ms)
                return out
            seen_cursors.add(cursor)
        return out
