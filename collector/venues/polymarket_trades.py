"""Polymarket's trades: the market channel's ``last_trade_price`` events (collector.stream.polymarket)
and the data API's public tape, ``GET /trades?market=<condition id>``, newest first, offset paged,
used to backfill what the feed missed (an outage, a restart).

Neither sends a trade id, so a trade's key is its transaction hash, token, price and size in
canonical text: the feed sends ``"0.585"`` / ``"2.46"`` strings and a ms timestamp, the data API
JSON numbers and a timestamp in seconds (shared/real-payloads; the ccxt capture turned them into
strings, which parse the same). Two fills of one token at one price and size in one transaction
would collapse into one record: rare, and said in docs/schema.md. ``side`` is the taker's
(``BUY`` lifted the token's asks); the data API's ``side`` is read the same way (UNCONFIRMED).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from collector.model.clock import now_ms
from collector.model.errors import BadPayload, VenueError
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord, trade_key
from collector.venues.trades import TradeFetch, dec, page_back

VENUE = "polymarket"
_SIDE = {"BUY": "buy", "SELL": "sell"}


def _int(v: Any) -> int | None:
    if type(v) is int:
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if type(v) is float and v.is_integer():
        return int(v)
    return None


def make_trade(inst: Instrument, ts_ms: int, when_ms: int | None, price: Any, size: Any, side: Any,
               tx: Any, fee_bps: Any, source: str) -> TradeRecord | str:
    p, s = dec(price), dec(size)
    if p is None or s is None:
        return "no_price_or_size"
    if not isinstance(tx, str) or not tx:
        return "no_transaction_hash"
    key = trade_key(None, tx, inst.poll_key, p, s)
    return TradeRecord(VENUE, inst.instrument_id, ts_ms, when_ms, key, p, s, _SIDE.get(side), None, tx,
                       dec(fee_bps), None, source)


def parse_ws_trade(m: dict[str, Any], inst: Instrument, ts_ms: int) -> TradeRecord | str:
    """A ``last_trade_price`` event -> a record or a skip reason."""
    when = _int(m.get("timestamp"))
    if when is None:
        return "no_time"
    return make_trade(inst, ts_ms, when, m.get("price"), m.get("size"), m.get("side"), m.get("transaction_hash"),
                      m.get("fee_rate_bps"), "ws")


def parse_api_trade(item: Any, insts: Mapping[str, Instrument], ts_ms: int) -> TradeRecord | str | None:
    """A data API item (camelCase as served; snake_case as some clients store it) -> a record,
    a skip reason, or None for a token we do not track."""
    if type(item) is not dict:
        return "not_an_object"
    inst = insts.get(str(item.get("asset") or item.get("token_id") or ""))
    if inst is None:
        return None
    sec = _int(item.get("timestamp"))
    if sec is None:
        return "no_time"
    tx = item.get("transactionHash") or item.get("transaction_hash")
    return make_trade(inst, ts_ms, sec * 1000, item.get("price"), item.get("size"), item.get("side"), tx,
                      item.get("feeRateBps"), "rest")


class PolymarketTrades:
    """The data API tape of one market (scope = condition id) through ``get(url, params)``."""

    per_market = True
    from_feed = True  # the market channel carries the trades: the tape is polled only without it

    def __init__(self, get: Callable[[str, dict[str, str]], Any], data_url: str, page_limit: int, max_pages: int) -> None:
        self._get = get
        self.url = data_url + "/trades"
        self.page_limit = page_limit
        self.max_pages = max_pages

    def scope_of(self, inst: Instrument) -> str:
        return inst.market_id

    def fetch(self, scope: str, insts: Mapping[str, Instrument], since_ms: int) -> TradeFetch:
        out = TradeFetch([], None)
        offset = 0
        while out.pages < self.max_pages:
            params = {"market": scope, "limit": str(self.page_limit), "offset": str(offset), "takerOnly": "true"}
            try:
                body = self._get(self.url, params)
                if type(body) is dict:  # an envelope ({"data": [...]}) some deployments use
                    body = body.get("data")
                if type(body) is not list:
                    raise BadPayload("trades page is not a list", venue=VENUE)
            except VenueError as e:
                out.error = e
                return out
            ts = now_ms()
            more = page_back(out, body, lambda it: parse_api_trade(it, insts, ts), since_ms - 999)
            if not more or len(body) < self.page_limit:  # reached the window, or the tape's end
                out.covered_from_ms = since_ms if out.covered_from_ms is None else min(out.covered_from_ms, since_ms)
                return out
            offset += len(body)
        return out
