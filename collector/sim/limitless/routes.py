"""Limitless's HTTP surface: ``/limitless/markets/active`` (paged), ``.../active/slugs``,
``/limitless/markets/{slug}``, ``.../{slug}/orderbook`` and ``.../{slug}/events`` (trades and
other market events, newest first, paged), with NestJS-style error bodies."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim.limitless import trades as lt
from collector.sim.pipeline import Sim
from collector.sim.replies import Reply, json_reply

LIM_NOT_FOUND = json_reply(404, {"statusCode": 404, "message": "Market not found", "error": "Not Found"})
LIM_AMM = json_reply(400, {"statusCode": 400, "message": "Market does not support orderbook (AMM market)"})
LIM_GROUP = json_reply(400, {"statusCode": 400, "message": "Market does not support orderbook (group market)"})


def _nest_400(msg: str) -> Reply:
    return json_reply(400, {"statusCode": 400, "message": [msg], "error": "Bad Request"})


def routes(sim: Sim) -> list[Route]:
    lim = sim.state.limitless
    faults = sim.faults

    async def _active(request: Request) -> tuple[Reply, int]:
        qp = request.query_params
        try:
            page = int(qp.get("page") or 1)
            if page < 1:
                raise ValueError
        except ValueError:
            return _nest_400("page must be a positive number"), 0
        try:
            limit = int(qp.get("limit") or 25)
            if limit < 1:
                raise ValueError
        except ValueError:
            return _nest_400("limit must be a positive number"), 0
        limit = faults.page_limit("limitless", min(limit, 25))
        tt = qp.get("tradeType") or None
        if tt is not None and tt not in ("amm", "clob", "group"):
            return _nest_400("tradeType must be one of the following values: amm, clob, group"), 0
        items = lim.active(tt)
        sl = items[(page - 1) * limit: page * limit]
        return json_reply(200, {"data": [m.to_dict() for m in sl], "totalMarketsCount": len(items)}), 0

    async def _slugs(_: Request) -> tuple[Reply, int]:
        out = []
        for m in lim.active(None):
            tick = m.slug.split("-", 1)[0].upper() if m.recurring else "USDC"
            d: dict[str, Any] = {"slug": m.slug, "strikePrice": None, "ticker": tick,
                                 "deadline": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.exp_ms / 1000))}
            if m.kind == "group":
                d["markets"] = [{"slug": c.slug} for c in m.children if c.active]
            out.append(d)
        return json_reply(200, out), 0

    async def _market(r: Request) -> tuple[Reply, int]:
        m = lim.slugs.get(r.path_params["slug"])
        if m is None:
            return LIM_NOT_FOUND, 0
        return json_reply(200, m.to_dict()), 0

    async def _orderbook(request: Request) -> tuple[Reply, int]:
        m = lim.slugs.get(request.path_params["slug"])
        if m is None:
            return LIM_NOT_FOUND, 0
        if m.kind == "amm":
            return LIM_AMM, 0
        if m.kind == "group":
            return LIM_GROUP, 0
        if not m.live:
            return LIM_NOT_FOUND, 0
        return Reply(200, lim.book(m, now_ms())), 1

    async def _events(request: Request) -> tuple[Reply, int]:
        slug = request.path_params["slug"]
        if slug not in lim.slugs:
            return LIM_NOT_FOUND, 0
        qp = request.query_params
        try:
            page = int(qp.get("page") or 1)
            limit = int(qp.get("limit") or lt.DEFAULT_LIMIT)
            if page < 1 or limit < 1:
                raise ValueError
        except ValueError:
            return _nest_400("page and limit must be positive numbers"), 0
        limit = min(limit, lt.MAX_LIMIT)
        evs = [e for m, t in lt.market_trades(lim, now_ms(), slug) for e in lt.events_of(m.book.tape, t)]
        sl = faults.trade_page("limitless", evs[(page - 1) * limit: page * limit], lt.MISSING)
        return json_reply(200, {"events": sl, "totalPages": -(-len(evs) // limit)}), 0

    # Limitless has no per-endpoint buckets: its limiter counts concurrency and spacing.
    r = sim.route
    return [
        r("/limitless/markets/active", "GET", "limitless", "limitless", "limitless.markets_active", (), _active),
        r("/limitless/markets/active/slugs", "GET", "limitless", "limitless", "limitless.active_slugs", (), _slugs),
        r("/limitless/markets/{slug}/orderbook", "GET", "limitless", "limitless", "limitless.orderbook", (),
          _orderbook),
        r("/limitless/markets/{slug}/events", "GET", "limitless", "limitless", "limitless.events", (), _events),
        r("/limitless/markets/{slug}", "GET", "limitless", "limitless", "limitless.market", (), _market),
    ]
