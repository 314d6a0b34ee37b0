"""Run the venue simulator as a real subprocess, for tests and benchmarks.

    from collector.sim.testing import run_sim

    with run_sim("--markets", "40", "--seed", "3") as sim:
        os.environ.update(sim.env)           # or pass sim.env to a child process
        httpx.get(sim.env["COLLECTOR_POLYMARKET__CLOB_URL"] + "/book", params={"token_id": ...})
        sim.control(venue="limitless", error_rate=0.5)
        sim.markets("add", venue="polymarket", kind="crypto")
        assert sim.requests()["counts"]["limitless"] == 1

Trades: ``sim.trades(venue, key)`` is the ground truth (every trade REST and the feeds report).
Feeds (docs/simulator.md): ``sim.poly_ws_url`` for ``websockets.sync.client.connect``,
``sim.limitless_sio_url`` for ``socketio.Client().connect(url, namespaces=["/markets"],
transports=["websocket"])``, ``sim.feeds()`` for the feeds' counters and
``sim.control(venue="polymarket", ws_disconnect=True)`` for their faults.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

# The base-URL variables the sim prints; run_sim waits for all of them. The first five are
# REST (the fifth Polymarket's data API, for trades), the last three the feeds
# (collector/config/streams.py).
ENV_KEYS = ("COLLECTOR_POLYMARKET__GAMMA_URL", "COLLECTOR_POLYMARKET__CLOB_URL", "COLLECTOR_LIMITLESS__API_URL",
            "COLLECTOR_KALSHI__API_URL", "COLLECTOR_TRADES__POLYMARKET__DATA_URL",
            "COLLECTOR_STREAMS__POLYMARKET__URL", "COLLECTOR_STREAMS__LIMITLESS__URL", "COLLECTOR_STREAMS__KALSHI__URL")
_REPO_ROOT = str(Path(__file__).resolve().parents[2])


class SimHandle:
    """A running simulator. ``env`` holds the COLLECTOR_* base URLs (REST and feeds); ``base`` is
    http://127.0.0.1:P."""

    def __init__(self, proc: subprocess.Popen, env: dict[str, str], base: str) -> None:
        self.proc = proc
        self.env = env
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])
        self.gamma_url = env["COLLECTOR_POLYMARKET__GAMMA_URL"]
        self.clob_url = env["COLLECTOR_POLYMARKET__CLOB_URL"]
        self.limitless_url = env["COLLECTOR_LIMITLESS__API_URL"]
        self.kalshi_url = env["COLLECTOR_KALSHI__API_URL"]
        self.poly_ws_url = env.get("COLLECTOR_STREAMS__POLYMARKET__URL", f"ws://127.0.0.1:{self.port}/ws/market")
        self.limitless_ws_url = env.get("COLLECTOR_STREAMS__LIMITLESS__URL", f"ws://127.0.0.1:{self.port}")
        # python-socketio clients take the http form of the same host.
        self.limitless_sio_url = "http" + self.limitless_ws_url[2:]
        self._http = httpx.Client(base_url=base, timeout=10.0, trust_env=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _ok(self, r: httpx.Response) -> Any:
        if r.status_code != 200:
            raise RuntimeError(f"sim {r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
        return r.json()

    def health(self) -> dict[str, Any]:
        return self._ok(self._http.get("/_sim/health"))

    def control(self, venue: str | None = None, **kw: Any) -> dict[str, Any]:
        """POST /_sim/control. ``venue`` None = both venues. No keywords = just read the config.

        Keys: error_rate, timeout_rate, malformed_rate, html_rate, throttle_rate, bad_hash_rate (fractions),
        latency_ms, jitter_ms, timeout_s, rate_limit, down, retry_after_s (number, "auto" or None),
        throttle_for_s, limits ({bucket: [n, window_s]} / {"concurrency": n, "min_spacing_s": s}),
        page_cap (discovery pages hold at most N items whatever limit asks; 0 = off),
        trade_dup_rate, trade_shuffle_rate, trade_missing_rate (REST trade pages),
        reset (back to the start-up flags).
        Feeds: ws_drop_rate, ws_dup_rate, ws_reorder_rate, ws_bad_hash_rate (fractions),
        ws_disconnect_every_s, ws_send_queue_max, ws_snapshot_on_subscribe (Limitless),
        ws_stall_ids (tokens / slugs), ws_trade_dup_rate, ws_trade_reorder_rate,
        ws_trade_missing_rate (trade messages), and the one-shot ws_disconnect / ws_stall (True = every
        open connection, N = that many)."""
        if venue is None and not kw:
            return self._ok(self._http.get("/_sim/control"))
        return self._ok(self._http.post("/_sim/control", json={"venue": venue, **kw}))

    def reset_faults(self) -> dict[str, Any]:
        return self.control(reset=True)

    def feeds(self, reset: bool = False) -> dict[str, Any]:
        """GET /_sim/feeds: per venue connections, subscribed, messages sent by type, faults
        applied; ``clock``: the book timer (watched books, lag). ``reset``: zero the counters."""
        if reset:
            return self._ok(self._http.post("/_sim/feeds/reset"))
        return self._ok(self._http.get("/_sim/feeds"))

    def markets(self, action: str | None = None, venue: str | None = None, **kw: Any) -> dict[str, Any]:
        """No action: GET /_sim/markets (catalogue with has_book flags). Otherwise POST
        {"venue", "action": add|close|expire|update|churn, ...selectors/options}."""
        if action is None:
            params = {"venue": venue} if venue else None
            return self._ok(self._http.get("/_sim/markets", params=params))
        return self._ok(self._http.post("/_sim/markets", json={"venue": venue, "action": action, **kw}))

    def live_tokens(self) -> list[str]:
        """Polymarket token ids that currently have a book."""
        return [t for m in self.markets(venue="polymarket")["polymarket"] if m["has_book"] for t in m["tokens"]]

    def live_slugs(self, listed_only: bool = True) -> list[str]:
        """Limitless slugs that currently have an order book."""
        return [m["slug"] for m in self.markets(venue="limitless")["limitless"]
                if m["has_book"] and (m["listed"] or not listed_only)]

    def live_tickers(self, series: str | None = None) -> list[str]:
        """Kalshi market tickers that are trading (status active, combos included)."""
        return [m["ticker"] for m in self.markets(venue="kalshi")["kalshi"]
                if m["has_book"] and series in (None, m["series"])]

    def requests(self, since: float | None = None, venue: str | None = None, endpoint: str | None = None,
                 limit: int = 1000) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = repr(since)
        if venue:
            params["venue"] = venue
        if endpoint:
            params["endpoint"] = endpoint
        return self._ok(self._http.get("/_sim/requests", params=params))

    def trades(self, venue: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        """GET /_sim/trades: the ground truth, every trade on the books' tapes, newest first:
        venue, key (token / slug / ticker), id (tx hash / trade_id / event id), price and size
        as the venue writes them, shares, side, ts_ms (docs/simulator.md, "Trades")."""
        params = {k: v for k, v in (("venue", venue), ("key", key)) if v}
        return self._ok(self._http.get("/_sim/trades", params=params))["trades"]

    def reset_requests(self) -> dict[str, Any]:
        return self._ok(self._http.post("/_sim/requests/reset"))

    def close(self) -> None:
        self._http.close()
        stop_process(self.proc)


def all_venues_env(settings: Any) -> dict[str, str]:
    """``COLLECTOR_VENUES`` naming every venue the simulator serves, unless ``settings`` chose the
    venues (environment or TOML): a dry run records them all, a chosen list stays as it is."""
    if "venues" in settings.model_fields_set:
        return {}
    from collector.sim.venue import VENUES

    return {"COLLECTOR_VENUES": ",".join(VENUES)}


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)
    if proc.stdout:
        with contextlib.suppress(Exception):
            proc.stdout.close()


@contextlib.contextmanager
def run_sim(*extra_args: str, startup_timeout: float = 20.0, env: dict[str, str] | None = None,
            stderr: Any = None) -> Iterator[SimHandle]:
    """Start ``python -m collector sim --port 0 *extra_args``; yield a SimHandle; stop it on exit.

    ``stderr`` is passed to Popen (default: inherit, so pytest captures it)."""
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = _REPO_ROOT + (os.pathsep + child_env["PYTHONPATH"] if child_env.get("PYTHONPATH") else "")
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [sys.executable, "-m", "collector", "sim", "--port", "0", *map(str, extra_args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=child_env, cwd=_REPO_ROOT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # keep draining stdout so the child can never block on it
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name="sim-stdout", daemon=True).start()
    handle: SimHandle | None = None
    try:
        deadline = time.monotonic() + startup_timeout
        found: dict[str, str] = {}
        while len(found) < len(ENV_KEYS):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"sim did not print its URLs within {startup_timeout}s")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"sim exited early with code {proc.wait()}")
            k, sep, v = line.partition("=")
            if sep and k in ENV_KEYS:
                found[k] = v
        base = found["COLLECTOR_POLYMARKET__GAMMA_URL"].rsplit("/", 1)[0]
        handle = SimHandle(proc, found, base)
        while True:
            try:
                handle.health()
                break
            except (httpx.HTTPError, RuntimeError):
                if proc.poll() is not None:
                    raise RuntimeError(f"sim exited early with code {proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield handle
    finally:
        if handle is not None:
            handle.close()
        else:
            stop_process(proc)
