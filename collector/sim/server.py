"""The simulator's HTTP server: one Starlette app serving every venue on 127.0.0.1.

Routes (P = the port), each group from its own module:
  /gamma/markets/keyset                  Polymarket Gamma discovery (keyset paging)
  /clob/book, /clob/books, /clob/, /clob/time                (collector.sim.polymarket.routes)
  /data-api/trades                       Polymarket trades    (collector.sim.polymarket.data_routes)
  /limitless/markets/active, /limitless/markets/active/slugs,
  /limitless/markets/{slug}, /limitless/markets/{slug}/orderbook,
  /limitless/markets/{slug}/events (trades)                  (collector.sim.limitless.routes)
  /kalshi/trade-api/v2/events, .../events/multivariate, .../markets/orderbooks,
  .../markets/trades, .../markets/{ticker}/orderbook, .../markets/{ticker}  (collector.sim.kalshi.routes)
  /_sim/health, /_sim/control, /_sim/markets, /_sim/requests, /_sim/requests/reset,
  /_sim/feeds, /_sim/feeds/reset, /_sim/trades (ground truth)  (collector.sim.control)
  ws://.../ws/market                 Polymarket market channel  (collector.sim.feeds.polymarket_ws)
  /socket.io/ namespace /markets     Limitless Socket.IO feed   (collector.sim.feeds.limitless_sio)
  ws://.../kalshi/trade-api/ws/v2    Kalshi orderbook_delta and trade  (collector.sim.feeds.kalshi_ws)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import traceback
from typing import Any

from starlette.applications import Starlette

from collector.sim import control
from collector.sim.clock import parse_change_mix
from collector.sim.faults import FaultEngine
from collector.sim.feeds.hub import FeedHub
from collector.sim.kalshi import routes as kalshi_routes
from collector.sim.limitless import routes as limitless_routes
from collector.sim.pipeline import Sim
from collector.sim.polymarket import data_routes
from collector.sim.polymarket import routes as polymarket_routes
from collector.sim.requestlog import RequestLog
from collector.sim.state import SimState
from collector.sim.tape import DEFAULT_BUDGET, DEFAULT_PER_BOOK

# Route groups in matching order (the venues first, then the control plane).
ROUTES = (polymarket_routes.routes, data_routes.routes, limitless_routes.routes, kalshi_routes.routes, control.routes)


def app(sim: Sim) -> Any:
    """The ASGI app: the feeds' entry in front of the Starlette app (REST and /_sim/*)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
        task = None
        if sim.churn_s > 0:
            task = asyncio.create_task(_churn_loop(sim))
        if sim.feeds is not None:
            await sim.feeds.start()
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if sim.feeds is not None:
                await sim.feeds.stop()

    rest = Starlette(routes=[r for group in ROUTES for r in group(sim)], lifespan=lifespan)
    return sim.feeds.app(rest) if sim.feeds is not None else rest


async def _churn_loop(sim: Sim) -> None:
    while True:
        await asyncio.sleep(sim.churn_s)
        try:
            sim.state.churn_step()
        except Exception:  # noqa: BLE001 - a failed tick must not stop the churn
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
        change_mix=parse_change_mix(g("change_mix", None)),
        tape_per_book=int(g("trade_tape", DEFAULT_PER_BOOK)),
        tape_budget=int(g("trade_budget", DEFAULT_BUDGET)),
    )
    faults = FaultEngine(seed, args)
    sim = Sim(state, faults, RequestLog(int(g("log_size", 5000))), float(g("churn_s", 0.0) or 0.0))
    sim.feeds = FeedHub(state, faults, float(g("sio_ping_interval", 25.0)), float(g("sio_ping_timeout", 20.0)),
                        float(g("feed_flush_ms", 5.0)))
    return sim


def env_lines(port: int) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    return [
        f"COLLECTOR_POLYMARKET__GAMMA_URL={base}/gamma",
        f"COLLECTOR_POLYMARKET__CLOB_URL={base}/clob",
        f"COLLECTOR_LIMITLESS__API_URL={base}/limitless",
        f"COLLECTOR_KALSHI__API_URL={base}/kalshi/trade-api/v2",
        f"COLLECTOR_TRADES__POLYMARKET__DATA_URL={base}/data-api",
        f"COLLECTOR_STREAMS__POLYMARKET__URL=ws://127.0.0.1:{port}/ws/market",
        # Socket.IO host; clients connect to it (http scheme) with namespace /markets.
        f"COLLECTOR_STREAMS__LIMITLESS__URL=ws://127.0.0.1:{port}",
        f"COLLECTOR_STREAMS__KALSHI__URL=ws://127.0.0.1:{port}/kalshi/trade-api/ws/v2",
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
    venues = ", ".join(f"{name}={v.summary()}" for name, v in st.venues.items())
    mix = st.clock.change_mix
    changes = f"change_prob={st.clock.change_prob:g}" if mix is None else "change_mix=" + ",".join(f"{a:g}:{b:g}" for a, b in mix)
    print(
        f"collector sim: 127.0.0.1:{port} seed={st.seed} {venues}, churn_s={sim.churn_s}, {changes}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app(sim),
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
        server_header=False,
        # No compression (it would cost more CPU than the feeds themselves) and no server
        # keepalive pings: a stalled feed connection is then silent; clients ping (Polymarket's
        # text PING, Engine.IO's own heartbeat).
        ws_per_message_deflate=False,
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0
