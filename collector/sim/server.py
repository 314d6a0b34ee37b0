"""The simulator's HTTP server: one Starlette app serving both venues on 127.0.0.1.

Routes (P = the port):
  /gamma/markets/keyset                  Polymarket Gamma discovery (keyset paging)
  /clob/book, /clob/books, /clob/, /clob/time
  /limitless/markets/active, /limitless/markets/active/slugs,
  /limitless/markets/{slug}, /limitless/markets/{slug}/orderbook
  /_sim/health, /_sim/control, /_sim/markets, /_sim/requests, /_sim/requests/reset
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import traceback
from typing import Any, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim.faults import (
    ControlError,
    FaultEngine,
    Reply,
    RequestLog,
    down_reply,
    json_reply,
)
from collector.sim.state import GAMMA_SCHEMA, SimError, SimState

Handler = Callable[[Request], Awaitable[tuple[Reply, int]]]

INVALID_TOKEN = json_reply(400, {"error": "Invalid token id"})
NO_BOOK = json_reply(404, {"error": "No orderbook exists for the requested token id"})
INVALID_PAYLOAD = json_reply(400, {"error": "Invalid payload"})
TOO_MANY_ITEMS = json_reply(400, {"error": "Payload exceeds the limit"})
LIM_NOT_FOUND = json_reply(404, {"statusCode": 404, "message": "Market not found", "error": "Not Found"})
LIM_AMM = json_reply(400, {"statusCode": 400, "message": "Market does not support orderbook (AMM market)"})
LIM_GROUP = json_reply(400, {"statusCode": 400, "message": "Market does not support orderbook (group market)"})
GAMMA_DEFAULT_LIMIT = 20
BOOKS_MAX = 500


def _gamma_422(msg: str) -> Reply:
    return json_reply(422, {"type": "validation error", "error": msg})


def _nest_400(msg: str) -> Reply:
    return json_reply(400, {"statusCode": 400, "message": [msg], "error": "Bad Request"})


def _resp(rep: Reply) -> Response:
    return Response(rep.body, rep.status, headers=rep.headers, media_type=rep.ctype)


def _jresp(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status, media_type="application/json")


class Sim:
    def __init__(self, state: SimState, faults: FaultEngine, log: RequestLog, churn_s: float = 0.0) -> None:
        self.state = state
        self.faults = faults
        self.log = log
        self.churn_s = churn_s
        self.started = time.time()

    # ------------------------------------------------------------------ fault pipeline

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

    # ------------------------------------------------------------------ Polymarket

    async def gamma_keyset(self, request: Request) -> Response:
        return await self.guard(request, "polymarket", "gamma", "gamma.markets_keyset", ("gamma",), self._gamma_keyset)

    async def _gamma_keyset(self, request: Request) -> tuple[Reply, int]:
        qp = request.query_params
        if "offset" in qp:
            return _gamma_422("offset is not supported on keyset endpoints, use after_cursor"), 0
        limit = GAMMA_DEFAULT_LIMIT
        if qp.get("limit"):
            try:
                limit = int(qp["limit"])
            except ValueError:
                return _gamma_422("invalid limit"), 0
            if limit < 1:
                limit = GAMMA_DEFAULT_LIMIT
            limit = min(limit, 100)  # silently capped
        limit = self.faults.page_limit("polymarket", limit)
        closed: bool | None = None
        c = qp.get("closed")
        if c is not None and c != "":
            if c.lower() not in ("true", "false"):
                return _gamma_422("invalid closed"), 0
            closed = c.lower() == "true"
        after = None
        ac = qp.get("after_cursor")
        if ac:
            try:
                after = SimState.decode_cursor(ac)
            except SimError:
                return _gamma_422("invalid after_cursor"), 0
        parts, last = self.state.gamma_page(after, limit, closed)
        body = b'{"$schema":"' + GAMMA_SCHEMA.encode() + b'","markets":[' + b",".join(parts) + b"]"
        if last is not None:
            body += b',"next_cursor":"' + SimState.encode_cursor(last).encode() + b'"'
        return Reply(200, body + b"}"), 0

    async def clob_book(self, request: Request) -> Response:
        return await self.guard(request, "polymarket", "clob", "clob.book", ("clob.book", "clob"), self._clob_book)

    async def _clob_book(self, request: Request) -> tuple[Reply, int]:
        tid = request.query_params.get("token_id", "")
        if not tid or not tid.isdigit():
            return INVALID_TOKEN, 0
        b = self.state.book_bytes(tid, now_ms())
        if b is None:
            return NO_BOOK, 0
        return Reply(200, self.faults.book_body("polymarket", b)), 1

    async def clob_books(self, request: Request) -> Response:
        return await self.guard(request, "polymarket", "clob", "clob.books", ("clob.books", "clob"), self._clob_books)

    async def _clob_books(self, request: Request) -> tuple[Reply, int]:
        raw = await request.body()
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return INVALID_PAYLOAD, 0
        if not isinstance(items, list):
            return INVALID_PAYLOAD, 0
        if len(items) > BOOKS_MAX:
            return TOO_MANY_ITEMS, 0
        st = self.state
        now = now_ms()
        keys = st.shuffle_key
        seen: set[str] = set()
        found: list[tuple[int, bytes]] = []
        for it in items:
            if not isinstance(it, dict):
                return INVALID_PAYLOAD, 0
            tid = it.get("token_id")
            if not isinstance(tid, str) or not tid:
                return INVALID_PAYLOAD, 0
            if tid in seen:
                continue
            seen.add(tid)
            b = st.book_bytes(tid, now)
            if b is not None:
                found.append((keys[tid], self.faults.book_body("polymarket", b)))
        found.sort(key=lambda x: x[0])  # deterministic, but not the request order
        return Reply(200, b"[" + b",".join(b for _, b in found) + b"]"), len(found)

    async def clob_root(self, request: Request) -> Response:
        async def h(_: Request) -> tuple[Reply, int]:
            return Reply(200, b'"OK"'), 0

        return await self.guard(request, "polymarket", "clob", "clob.ok", ("clob",), h)

    async def clob_time(self, request: Request) -> Response:
        async def h(_: Request) -> tuple[Reply, int]:
            return Reply(200, str(int(time.time())).encode()), 0

        return await self.guard(request, "polymarket", "clob", "clob.time", ("clob",), h)

    # ------------------------------------------------------------------ Limitless

    async def lim_active(self, request: Request) -> Response:
        return await self.guard(request, "limitless", "limitless", "limitless.markets_active", (), self._lim_active)

    async def _lim_active(self, request: Request) -> tuple[Reply, int]:
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
        limit = self.faults.page_limit("limitless", min(limit, 25))
        tt = qp.get("tradeType") or None
        if tt is not None and tt not in ("amm", "clob", "group"):
            return _nest_400("tradeType must be one of the following values: amm, clob, group"), 0
        items = self.state.lim_active(tt)
        sl = items[(page - 1) * limit: page * limit]
        return json_reply(200, {"data": [m.to_dict() for m in sl], "totalMarketsCount": len(items)}), 0

    async def lim_slugs(self, request: Request) -> Response:
        async def h(_: Request) -> tuple[Reply, int]:
            out = []
            for m in self.state.lim_active(None):
                tick = m.slug.split("-", 1)[0].upper() if m.recurring else "USDC"
                d: dict[str, Any] = {"slug": m.slug, "strikePrice": None, "ticker": tick,
                                     "deadline": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.exp_ms / 1000))}
                if m.kind == "group":
                    d["markets"] = [{"slug": c.slug} for c in m.children if c.active]
                out.append(d)
            return json_reply(200, out), 0

        return await self.guard(request, "limitless", "limitless", "limitless.active_slugs", (), h)

    async def lim_market(self, request: Request) -> Response:
        async def h(r: Request) -> tuple[Reply, int]:
            m = self.state.lim_slugs.get(r.path_params["slug"])
            if m is None:
                return LIM_NOT_FOUND, 0
            return json_reply(200, m.to_dict()), 0

        return await self.guard(request, "limitless", "limitless", "limitless.market", (), h)

    async def lim_orderbook(self, request: Request) -> Response:
        return await self.guard(request, "limitless", "limitless", "limitless.orderbook", (), self._lim_orderbook)

    async def _lim_orderbook(self, request: Request) -> tuple[Reply, int]:
        m = self.state.lim_slugs.get(request.path_params["slug"])
        if m is None:
            return LIM_NOT_FOUND, 0
        if m.kind == "amm":
            return LIM_AMM, 0
        if m.kind == "group":
            return LIM_GROUP, 0
        if not m.live:
            return LIM_NOT_FOUND, 0
        return Reply(200, self.state.lim_book(m, now_ms())), 1

    # ------------------------------------------------------------------ control plane

    async def health(self, request: Request) -> Response:
        st = self.state
        return _jresp({"status": "ok", "uptime_s": round(time.time() - self.started, 3), "seed": st.seed,
                       "markets": {"polymarket": len(st.poly), "limitless": len(st.lim_items)}})

    async def control(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = orjson.loads(await request.body() or b"{}")
                return _jresp(self.faults.apply(body))
            except (orjson.JSONDecodeError, ControlError) as e:
                return _jresp({"error": str(e)}, 400)
        return _jresp(self.faults.snapshot())

    async def markets(self, request: Request) -> Response:
        st = self.state
        if request.method == "GET":
            v = request.query_params.get("venue")
            out = {}
            if v in (None, "polymarket"):
                out["polymarket"] = st.poly_info()
            if v in (None, "limitless"):
                out["limitless"] = st.lim_info()
            return _jresp(out)
        try:
            body = orjson.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise SimError("body must be a JSON object")
            action = body.get("action")
            if action == "churn":
                return _jresp(st.churn_step())
            venue = body.get("venue")
            if venue not in ("polymarket", "limitless"):
                raise SimError("venue must be polymarket or limitless")
            spec = {k: v for k, v in body.items() if k not in ("venue", "action")}
            if action == "add":
                res = st.add(venue, spec)
            elif action == "close":
                res = st.close(venue, spec)
            elif action == "expire":
                res = st.expire(venue, spec)
            elif action == "update":
                res = st.update(venue, spec)
            else:
                raise SimError("action must be add, close, expire, update or churn")
            return _jresp({"venue": venue, "action": action, "markets": res})
        except (orjson.JSONDecodeError, SimError, ValueError, TypeError) as e:
            return _jresp({"error": str(e)}, 400)

    async def requests(self, request: Request) -> Response:
        qp = request.query_params
        try:
            since = float(qp["since"]) if qp.get("since") else None
            limit = int(qp.get("limit", 1000))
        except ValueError:
            return _jresp({"error": "bad since/limit"}, 400)
        return _jresp(self.log.report(since, qp.get("venue"), qp.get("endpoint"), limit))

    async def requests_reset(self, request: Request) -> Response:
        self.log.reset()
        return _jresp({"status": "ok", "since": self.log.since})

    # ------------------------------------------------------------------ app

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
            task = None
            if self.churn_s > 0:
                task = asyncio.create_task(self._churn_loop())
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()

        routes = [
            Route("/gamma/markets/keyset", self.gamma_keyset, methods=["GET"]),
            Route("/clob/book", self.clob_book, methods=["GET"]),
            Route("/clob/books", self.clob_books, methods=["POST"]),
            Route("/clob/", self.clob_root, methods=["GET"]),
            Route("/clob/time", self.clob_time, methods=["GET"]),
            Route("/limitless/markets/active", self.lim_active, methods=["GET"]),
            Route("/limitless/markets/active/slugs", self.lim_slugs, methods=["GET"]),
            Route("/limitless/markets/{slug}/orderbook", self.lim_orderbook, methods=["GET"]),
            Route("/limitless/markets/{slug}", self.lim_market, methods=["GET"]),
            Route("/_sim/health", self.health, methods=["GET"]),
            Route("/_sim/control", self.control, methods=["GET", "POST"]),
            Route("/_sim/markets", self.markets, methods=["GET", "POST"]),
            Route("/_sim/requests", self.requests, methods=["GET"]),
            Route("/_sim/requests/reset", self.requests_reset, methods=["POST"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    async def _churn_loop(self) -> None:
        while True:
            await asyncio.sleep(self.churn_s)
            try:
                self.state.churn_step()
            except Exception:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)


def build(args: Any) -> Sim:
    g = (lambda k, d: getattr(args, k, d))  # noqa: E731 - tolerate Namespaces without the newer flags
    seed = int(g("seed", 1))
    state = SimState(
        seed=seed,
        markets=int(g("markets", 50)),
        epoch=g("epoch", None),
        tick_s=float(g("tick_s", 1.0)),
        change_prob=float(g("change_prob", 0.3)),
    )
    return Sim(state, FaultEngine(seed, args), RequestLog(int(g("log_size", 5000))), float(g("churn_s", 0.0) or 0.0))


def env_lines(port: int) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    return [
        f"COLLECTOR_POLYMARKET__GAMMA_URL={base}/gamma",
        f"COLLECTOR_POLYMARKET__CLOB_URL={base}/clob",
        f"COLLECTOR_LIMITLESS__API_URL={base}/limitless",
    ]


def main(args: Any) -> int:
    import uvicorn

    sim = build(args)
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every keep-alive reply stalls ~40 ms (Nagle vs. delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", int(getattr(args, "port", 8765))))
    except OSError as e:
        print(f"collector sim: cannot bind 127.0.0.1:{getattr(args, 'port', 8765)}: {e}", file=sys.stderr)
        return 1
    sock.listen(2048)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    sys.stdout.write("\n".join(env_lines(port)) + "\n")
    sys.stdout.flush()
    st = sim.state
    print(
        f"collector sim: 127.0.0.1:{port} seed={st.seed} polymarket={len(st.poly)} markets/{len(st.tokens)} tokens, "
        f"limitless={len(st.lim_items)} items, churn_s={sim.churn_s}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        sim.app(),
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0
