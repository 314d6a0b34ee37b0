"""Polymarket's data API under ``/data-api``: ``GET /data-api/trades`` from the books' trade
tapes (collector.sim.polymarket.trades), newest first, offset-paged, as a bare JSON array."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim.pipeline import Sim
from collector.sim.polymarket import trades as pt
from collector.sim.replies import Reply, json_reply

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 10_000
# What a missing-field fault may leave out of an item: its size or its id.
MISSING = ("size", "transactionHash")


def _bad(msg: str) -> Reply:
    return json_reply(400, {"error": msg})


def routes(sim: Sim) -> list[Route]:
    poly = sim.state.polymarket
    faults = sim.faults

    async def _trades(request: Request) -> tuple[Reply, int]:
        qp = request.query_params
        try:
            limit = int(qp.get("limit") or DEFAULT_LIMIT)
            offset = int(qp.get("offset") or 0)
        except ValueError:
            return _bad("invalid limit or offset"), 0
        if limit < 0 or offset < 0:
            return _bad("limit and offset must be >= 0"), 0
        if offset > MAX_OFFSET:
            return _bad(f"max historical activity offset of {MAX_OFFSET} exceeded"), 0
        limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)  # silently capped
        taker_only = (qp.get("takerOnly") or "true").lower() != "false"
        conds = {c for c in (qp.get("market") or "").split(",") if c} or None
        asset = qp.get("asset") or None
        items: list[dict] = []
        want = offset + limit
        for m, t in pt.market_trades(poly, now_ms(), conds):  # lazy: stops once the page is full
            tape = m.book.tape
            it = pt.data_item(m, tape, t)
            if asset is not None and it["asset"] != asset:
                continue
            items.append(it)
            if not taker_only:  # the makers' records of the same fill follow the taker's
                items.append(pt.data_item(m, tape, t, maker=True))
            if len(items) >= want:
                break
        page = faults.trade_page("polymarket", items[offset: offset + limit], MISSING)
        return json_reply(200, page), 0

    r = sim.route
    return [
        r("/data-api/trades", "GET", "polymarket", "data", "data.trades", ("data.trades", "data"), _trades),
    ]
