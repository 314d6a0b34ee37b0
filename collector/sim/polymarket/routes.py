"""Polymarket's HTTP surface: Gamma ``/gamma/markets/keyset`` and the CLOB ``/clob/book``,
``/clob/books``, ``/clob/`` and ``/clob/time``, with the venue's own error bodies."""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.routing import Route

from collector.model.clock import now_ms
from collector.sim.clock import SimError
from collector.sim.pipeline import Sim
from collector.sim.polymarket.venue import PolymarketSim
from collector.sim.replies import Reply, json_reply

GAMMA_SCHEMA = "https://gamma-api.polymarket.com/schemas/MarketsKeysetPage.json"
INVALID_TOKEN = json_reply(400, {"error": "Invalid token id"})
NO_BOOK = json_reply(404, {"error": "No orderbook exists for the requested token id"})
INVALID_PAYLOAD = json_reply(400, {"error": "Invalid payload"})
TOO_MANY_ITEMS = json_reply(400, {"error": "Payload exceeds the limit"})
GAMMA_DEFAULT_LIMIT = 20
BOOKS_MAX = 500


def _gamma_422(msg: str) -> Reply:
    return json_reply(422, {"type": "validation error", "error": msg})


def routes(sim: Sim) -> list[Route]:
    poly = sim.state.polymarket
    faults = sim.faults

    async def _gamma_keyset(request: Request) -> tuple[Reply, int]:
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
        limit = faults.page_limit("polymarket", limit)
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
                after = PolymarketSim.decode_cursor(ac)
            except SimError:
                return _gamma_422("invalid after_cursor"), 0
        parts, last = poly.gamma_page(after, limit, closed)
        body = b'{"$schema":"' + GAMMA_SCHEMA.encode() + b'","markets":[' + b",".join(parts) + b"]"
        if last is not None:
            body += b',"next_cursor":"' + PolymarketSim.encode_cursor(last).encode() + b'"'
        return Reply(200, body + b"}"), 0

    async def _clob_book(request: Request) -> tuple[Reply, int]:
        tid = request.query_params.get("token_id", "")
        if not tid or not tid.isdigit():
            return INVALID_TOKEN, 0
        b = poly.book_bytes(tid, now_ms())
        if b is None:
            return NO_BOOK, 0
        return Reply(200, faults.book_body("polymarket", b)), 1

    async def _clob_books(request: Request) -> tuple[Reply, int]:
        raw = await request.body()
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return INVALID_PAYLOAD, 0
        if not isinstance(items, list):
            return INVALID_PAYLOAD, 0
        if len(items) > BOOKS_MAX:
            return TOO_MANY_ITEMS, 0
        now = now_ms()
        keys = poly.shuffle_key
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
            b = poly.book_bytes(tid, now)
            if b is not None:
                found.append((keys[tid], faults.book_body("polymarket", b)))
        found.sort(key=lambda x: x[0])  # deterministic, but not the request order
        return Reply(200, b"[" + b",".join(b for _, b in found) + b"]"), len(found)

    async def _ok(_: Request) -> tuple[Reply, int]:
        return Reply(200, b'"OK"'), 0

    async def _time(_: Request) -> tuple[Reply, int]:
        return Reply(200, str(int(time.time())).encode()), 0

    r = sim.route
    return [
        r("/gamma/markets/keyset", "GET", "polymarket", "gamma", "gamma.markets_keyset", ("gamma",), _gamma_keyset),
        r("/clob/book", "GET", "polymarket", "clob", "clob.book", ("clob.book", "clob"), _clob_book),
        r("/clob/books", "POST", "polymarket", "clob", "clob.books", ("clob.books", "clob"), _clob_books),
        r("/clob/", "GET", "polymarket", "clob", "clob.ok", ("clob",), _ok),
        r("/clob/time", "GET", "polymarket", "clob", "clob.time", ("clob",), _time),
    ]
