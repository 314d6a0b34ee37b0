"""Limitless trades: the Socket.IO feed carries none, so a paced poll of the public market events,
``GET /markets/{slug}/events?page=&limit=``, newest first (venues/limitless.md: the academy calls
it the matched-trade feed; its shape ``{events:[{id, type, timestamp, data}]}`` is all that is
documented, so everything inside ``data`` is read defensively and UNCONFIRMED).

A trade event: ``type`` in ``trades.limitless.event_types``; ``data.price`` (YES price unless
``data.outcome`` says NO, then it is turned into the YES book's terms: 1 - price, side flipped),
the size in ``data.contracts`` (raw 10^-decimals units like book sizes; ``data.size`` /
``data.amount`` as fallbacks), ``data.side`` (BUY / SELL, the taker's), ``data.txHash``. The
event ``id`` is the trade's key. Other event types are counted and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from collector.model.clock import now_ms
from collector.model.errors import BadPayload, VenueError
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord
from collector.venues.kalshi_trades import iso_ms
from collector.venues.trades import TradeFetch, dec, page_back

VENUE = "limitless"
_FLIP = {"buy": "sell", "sell": "buy"}


def _when(v: Any) -> int | None:
    if type(v) is int:  # epoch ms or s
        return v if v > 10**11 else v * 1000
    if isinstance(v, str) and v.isdigit():
        return _when(int(v))
    return iso_ms(v)


def _scaled(raw: Any, decimals: int) -> str | None:
    text = dec(raw)
    if text is None:
        return None
    if decimals == 0:
        return text
    return dec(format(Decimal(text).scaleb(-decimals), "f"))


def parse_event(item: Any, inst: Instrument, ts_ms: int, kinds: frozenset[str], scale: int) -> TradeRecord | str | None:
    if type(item) is not dict:
        return "not_an_object"
    if item.get("type") not in kinds and item.get("eventType") not in kinds:
        return "not_a_trade"
    data = item.get("data")
    if type(data) is not dict:
        return "no_data"
    eid = item.get("id")
    if eid is None or eid == "":
        return "no_event_id"
    when = _when(item.get("timestamp"))
    if when is None:
        return "no_time"
    decimals = inst.size_decimals if inst.size_decimals is not None else scale
    raw_size = next((data[k] for k in ("contracts", "size", "amount") if data.get(k) is not None), None)
    price, size = dec(data.get("price")), _scaled(raw_size, decimals)
    if price is None or size is None or Decimal(price) > 1:
        return "no_price_or_size"
    side = str(data.get("side") or "").lower() or None
    side = side if side in _FLIP else None
    if str(data.get("outcome") or "YES").upper() in ("NO", "1"):  # a NO trade, in the YES book's terms
        price = dec(format(1 - Decimal(price), "f"))
        side = _FLIP.get(side) if side else None
    tx = data.get("txHash") or data.get("transactionHash")
    return TradeRecord(VENUE, inst.instrument_id, ts_ms, when, f"{inst.poll_key}:{eid}", price, size, side,
                       trade_id=str(eid), tx_hash=tx if isinstance(tx, str) and tx else None, source="rest")


class LimitlessTrades:
    """One market's events (scope = slug) through the client's paced ``get(url, params)``."""

    per_market = True

    def __init__(self, get: Callable[[str, dict[str, Any]], Any], api_url: str, page_limit: int, max_pages: int,
                 event_types: list[str], size_scale: int) -> None:
        self._get = get
        self.api_url = api_url
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.kinds = frozenset(event_types)
        self.scale = size_scale

    def scope_of(self, inst: Instrument) -> str:
        return inst.poll_key

    def fetch(self, scope: str, insts: Mapping[str, Instrument], since_ms: int) -> TradeFetch:
        out = TradeFetch([], None)
        inst = insts.get(scope)
        if inst is None:
            return out
        page = 1
        while out.pages < self.max_pages:
            try:
                body = self._get(f"{self.api_url}/markets/{scope}/events", {"page": page, "limit": self.page_limit})
                events = body.get("events", body.get("data")) if type(body) is dict else None
                if type(events) is not list:
                    raise BadPayload("events page without an events list", venue=VENUE)
            except VenueError as e:
                out.error = e
                return out
            ts = now_ms()
            more = page_back(out, events, lambda it: parse_event(it, inst, ts, self.kinds, self.scale), since_ms)
            pages = body.get("totalPages")
            if not more or len(events) < self.page_limit or (type(pages) is int and page >= pages):
                out.covered_from_ms = since_ms if out.covered_from_ms is None else min(out.covered_from_ms, since_ms)
                return out
            page += 1
        return out
