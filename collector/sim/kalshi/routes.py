"""Kalshi's HTTP surface under ``/kalshi/trade-api/v2``: ``/events`` and ``/events/multivariate``
(cursor paging, nested markets), ``/markets/trades`` (keyset cursor, newest first),
``/markets/orderbooks`` (batch, repeated ``tickers``),
``/markets/{ticker}/orderbook`` and ``/markets/{ticker}``, with the venue's nested error bodies."""

from __future__ import annotations

import base64
import zlib

from starlette.requests import Request
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim.kalshi import trades as kt
from collector.sim.kalshi.market import render_batch
from collector.sim.kalshi.venue import STATUS_FILTER
from collector.sim.pipeline import Sim
from collector.sim.replies import Reply, json_reply

BASE = "/kalshi/trade-api/v2"
EVENTS_MAX = 200
TICKERS_MAX = 100


def kal_error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message, "service": "exchange"}})


NOT_FOUND = kal_error(404, "not_found", "not found")


def encode_cursor(offset: int) -> str:
    return base64.b64encode(f"off:{offset}".encode()).decode()


def decode_cursor(c: str) -> int:
    try:
        kind, _, n = base64.b64decode(c.encode(), validate=True).decode().partition(":")
        if kind != "off":
            raise ValueError
        return int(n)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None


def routes(sim: Sim) -> list[Route]:
    kal = sim.state.kalshi
    faults = sim.faults

    def _events(combos: bool):
        async def handler(request: Request) -> tuple[Reply, int]:
            qp = request.query_params
            status = qp.get("status") or None
            if status is not None and status not in STATUS_FILTER:
                return kal_error(400, "invalid_parameters", "status must be one of unopened, open, closed, settled"), 0
            try:
                limit = int(qp.get("limit") or EVENTS_MAX)
                offset = decode_cursor(qp["cursor"]) if qp.get("cursor") else 0
                if limit < 1 or offset < 0:
                    raise ValueError
            except ValueError:
                return kal_error(400, "invalid_parameters", "invalid limit or cursor"), 0
            limit = faults.page_limit("kalshi", min(limit, EVENTS_MAX))  # above the maximum: clamped
            series = qp.get("series_ticker") or None
            items = kal.list_events(status, series, combos)
            nested = (qp.get("with_nested_markets") or "").lower() == "true"
            now = now_ms()
            page = [ev.to_dict(now, nested) for ev in items[offset: offset + limit]]
            # The end is "" on some queries and null on others: clients must take both.
            end = "" if series else None
            cursor = encode_cursor(offset + limit) if offset + limit < len(items) else end
            return json_reply(200, {"cursor": cursor, "events": page, "milestones": []}), 0
        return handler

    async def _books(request: Request) -> tuple[Reply, int]:
        tickers = request.query_params.getlist("tickers")
        if not tickers:
            return kal_error(400, "missing_parameters", "tickers is required"), 0
        if len(tickers) > TICKERS_MAX:
            return kal_error(400, "invalid_parameters", f"at most {TICKERS_MAX} tickers"), 0
        now = now_ms()
        out: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for t in tickers:
            t = t.split(",", 1)[0]  # a comma-joined value returns one book on the venue
            if t in seen:
                continue
            seen.add(t)
            b = kal.book(t, now)
            if b is not None:  # unknown tickers are left out of the reply
                out.append((t, b))
        out.sort(key=lambda x: zlib.crc32(x[0].encode()))  # not the request order: clients join on ticker
        return Reply(200, render_batch(out)), len(out)

    async def _book(request: Request) -> tuple[Reply, int]:
        b = kal.book(request.path_params["ticker"], now_ms())
        if b is None:
            return NOT_FOUND, 0
        return Reply(200, b'{"orderbook_fp":' + b + b"}"), 1

    async def _trades(request: Request) -> tuple[Reply, int]:
        qp = request.query_params
        try:
            limit = int(qp.get("limit") or kt.DEFAULT_LIMIT)
            after = kt.decode_cursor(qp["cursor"]) if qp.get("cursor") else None
            min_ts = int(qp["min_ts"]) if qp.get("min_ts") else None
            max_ts = int(qp["max_ts"]) if qp.get("max_ts") else None
            if limit < 1:
                raise ValueError
        except ValueError:
            return kal_error(400, "invalid_parameters", "invalid limit, cursor, min_ts or max_ts"), 0
        limit = min(limit, kt.MAX_LIMIT)  # above the maximum: clamped
        ticker = qp.get("ticker") or None
        found = kt.market_trades(kal, now_ms(), ticker)
        page, last = [], None
        for m, t in found:
            k = kt.order(m.ticker, t)
            if after is not None and k <= after:
                continue
            if min_ts is not None and t.ts_ms < min_ts * 1000:
                last = None
                break  # newest first: everything after this is older still
            if max_ts is not None and t.ts_ms > max_ts * 1000:
                continue
            if len(page) == limit:
                break
            page.append(kt.item(m, m.book.tape, t))
            last = k
        else:
            last = None  # nothing after this page
        # The end is "" for one market's trades and null for all markets' (a quirk clients must take).
        cursor = kt.encode_cursor(last) if last is not None else ("" if ticker else None)
        return json_reply(200, {"cursor": cursor, "trades": faults.trade_page("kalshi", page, kt.MISSING)}), 0

    async def _market(request: Request) -> tuple[Reply, int]:
        m = kal.tickers.get(request.path_params["ticker"])
        if m is None:
            return NOT_FOUND, 0
        return json_reply(200, {"market": m.to_dict(now_ms())}), 0

    r = sim.route
    return [
        r(BASE + "/events", "GET", "kalshi", "kalshi", "kalshi.events", (), _events(False)),
        r(BASE + "/events/multivariate", "GET", "kalshi", "kalshi", "kalshi.events_multivariate", (), _events(True)),
        r(BASE + "/markets/orderbooks", "GET", "kalshi", "kalshi", "kalshi.orderbooks", (), _books),
        r(BASE + "/markets/trades", "GET", "kalshi", "kalshi", "kalshi.trades", (), _trades),
        r(BASE + "/markets/{ticker}/orderbook", "GET", "kalshi", "kalshi", "kalshi.orderbook", (), _book),
        r(BASE + "/markets/{ticker}", "GET", "kalshi", "kalshi", "kalshi.market", (), _market),
    ]
