"""The request pipeline every venue route goes through: log, outage, throttle, rate limit,
latency, then a drawn fault (timeout, error, HTML, truncation) or the venue's own handler.

``Sim`` is what route modules get: the world (``state``), the faults, the request log and the
push feeds (``feeds``, a ``collector.sim.feeds.hub.FeedHub``, set by ``collector.sim.server``).
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from typing import Any, Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.sim.faults import FaultEngine
from collector.sim.replies import Reply, down_reply, json_reply
from collector.sim.requestlog import RequestLog
from collector.sim.state import SimState

# A venue handler: the reply plus how many books it carries (for books_served).
Handler = Callable[[Request], Awaitable[tuple[Reply, int]]]


def _resp(rep: Reply) -> Response:
    return Response(rep.body, rep.status, headers=rep.headers, media_type=rep.ctype)


def jresp(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status, media_type="application/json")


class Sim:
    def __init__(self, state: SimState, faults: FaultEngine, log: RequestLog, churn_s: float = 0.0) -> None:
        self.state = state
        self.faults = faults
        self.log = log
        self.churn_s = churn_s
        self.started = time.time()
        self.feeds: Any = None

    def route(self, path: str, method: str, venue: str, app: str, endpoint: str, buckets: tuple[str, ...],
              handler: Handler) -> Route:
        """A venue route: ``handler`` behind the fault pipeline. ``buckets`` are the rate-limit
        windows the request counts against (``app`` picks the error bodies)."""

        async def endpoint_fn(request: Request) -> Response:
            return await self.guard(request, venue, app, endpoint, buckets, handler)

        return Route(path, endpoint_fn, methods=[method])

    async def guard(self, request: Request, venue: str, app: str, endpoint: str, buckets: tuple[str, ...],
                    handler: Handler) -> Response:
        t = time.time()
        q = request.url.query
        e = self.log.start(t, venue, endpoint, request.method, request.url.path + ("?" + q[:200] if q else ""))
        fe = self.faults
        cfg = fe.cfg[venue]
        fault: str | None = None
        nbooks = 0
        held = False
        rep: Reply | None = None
        try:
            if cfg["down"]:
                rep, fault = down_reply(venue), "down"
            else:
                rep = fe.throttled(venue, app, t)
                if rep is not None:
                    fault = "throttle"
                else:
                    rep = fe.limit(venue, buckets, t)
                    if rep is not None:
                        fault = "rate_limit"
            if rep is None:
                fe.inflight[venue] += 1
                held = True
                d = fe.delay_s(venue)
                if d > 0:
                    await asyncio.sleep(d)
                fault = fe.draw(venue)
                if fault == "timeout":
                    rep = await self._hold(request, float(cfg["timeout_s"]))
                elif fault == "error":
                    rep = fe.error_reply(venue, app)
                elif fault == "html":
                    rep = fe.html_reply(app)
                else:
                    rep, nbooks = await handler(request)
                    if fault == "malformed":
                        if rep.status == 200:
                            rep = Reply(200, fe.truncate(rep.body), rep.ctype, rep.headers)
                        else:
                            fault = None
        except Exception:  # noqa: BLE001 - the sim must answer, and say why on stderr
            traceback.print_exc(file=sys.stderr)
            rep = json_reply(500, {"error": "simulator internal error"})
            fault = "bug"
        finally:
            if held:
                fe.inflight[venue] -= 1
        self.log.finish(e, rep.status, fault, time.time(), nbooks)
        return _resp(rep)

    async def _hold(self, request: Request, secs: float) -> Reply:
        """Never answer (until ``secs``); stop early once the client has gone away."""
        end = time.monotonic() + secs
        try:
            while time.monotonic() < end:
                if await request.is_disconnected():
                    return Reply(499, b"", "application/json")  # nginx's "client closed request"
                await asyncio.sleep(0.2)
        except asyncio.CancelledError:  # server shutting down: end quietly instead of a traceback
            return json_reply(503, {"error": "Service Unavailable"})
        return json_reply(504, {"error": "Gateway Timeout"})
