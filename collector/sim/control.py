"""The simulator's own control plane, ``/_sim/*``: health, the fault config (REST and feed
faults; the one-shot feed actions ``ws_disconnect`` / ``ws_stall`` run at once), the market
lifecycle (add, close, expire, update, churn), the request log, the feeds' status and the
trades on the books' tapes (``/_sim/trades``, the ground truth for tests)."""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim import truth
from collector.sim.clock import SimError
from collector.sim.faults import ControlError
from collector.sim.pipeline import Sim, jresp


def routes(sim: Sim) -> list[Route]:
    st = sim.state

    async def health(request: Request) -> Response:
        return jresp({"status": "ok", "uptime_s": round(time.time() - sim.started, 3), "seed": st.seed,
                      "markets": {name: v.size() for name, v in st.venues.items()}})

    async def control(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = orjson.loads(await request.body() or b"{}")
                snap = sim.faults.apply(body)
                if sim.feeds is not None:
                    snap["feed_actions"] = sim.feeds.act(body)
                return jresp(snap)
            except (orjson.JSONDecodeError, ControlError) as e:
                return jresp({"error": str(e)}, 400)
        return jresp(sim.faults.snapshot())

    async def markets(request: Request) -> Response:
        if request.method == "GET":
            want = request.query_params.get("venue")
            return jresp({name: v.info() for name, v in st.venues.items() if want in (None, name)})
        try:
            body = orjson.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise SimError("body must be a JSON object")
            action = body.get("action")
            if action == "churn":
                return jresp(st.churn_step())
            venue = body.get("venue")
            spec = {k: v for k, v in body.items() if k not in ("venue", "action")}
            res = st.act(venue, action, spec)
            return jresp({"venue": venue, "action": action, "markets": res})
        except (orjson.JSONDecodeError, SimError, ValueError, TypeError) as e:
            return jresp({"error": str(e)}, 400)

    async def requests(request: Request) -> Response:
        qp = request.query_params
        try:
            since = float(qp["since"]) if qp.get("since") else None
            limit = int(qp.get("limit", 1000))
        except ValueError:
            return jresp({"error": "bad since/limit"}, 400)
        return jresp(sim.log.report(since, qp.get("venue"), qp.get("endpoint"), limit))

    async def requests_reset(request: Request) -> Response:
        sim.log.reset()
        return jresp({"status": "ok", "since": sim.log.since})

    async def trades(request: Request) -> Response:
        qp = request.query_params
        now = now_ms()
        try:
            rows = truth.trades(st, now, qp.get("venue") or None, qp.get("key") or None)
        except SimError as e:
            return jresp({"error": str(e)}, 400)
        return jresp({"now_ms": now, "count": len(rows), "trades": rows})

    async def feeds(request: Request) -> Response:
        if sim.feeds is None:
            return jresp({"error": "no feeds"}, 404)
        if request.method == "POST":
            sim.feeds.reset_stats()
        return jresp(sim.feeds.status())

    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/feeds", feeds, methods=["GET"]),
        Route("/_sim/feeds/reset", feeds, methods=["POST"]),
        Route("/_sim/control", control, methods=["GET", "POST"]),
        Route("/_sim/markets", markets, methods=["GET", "POST"]),
        Route("/_sim/requests", requests, methods=["GET"]),
        Route("/_sim/trades", trades, methods=["GET"]),
        Route("/_sim/requests/reset", requests_reset, methods=["POST"]),
    ]
