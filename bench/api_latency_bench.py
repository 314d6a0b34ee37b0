"""Prefect API latency on SQLite vs PostgreSQL under the collector's own load (``make bench-api``).

For each database (SQLite in a temp PREFECT_HOME, then a throwaway PostgreSQL from
tests/postgres.py, skipped with a note when it is not installed):

1. ``python -m flows.stack.up`` against the simulator (``--database`` for PostgreSQL): server,
   pool, deployments, automations, one worker, discovery every minute (its schedule left on), one
   poller run sending a heartbeat event every second (``poller.heartbeat_interval_s`` 1; the
   default is 10) plus its flow-run heartbeats.
2. After BENCH_WARMUP seconds, for BENCH_SECONDS, one client reads the API in a loop (one request
   at a time, BENCH_RATE per second): the reads an operator, CI or `collector status` makes —
   ``GET /deployments/name/discovery/discovery``, ``POST /flow_runs/filter`` (last 20 discovery
   runs), ``POST /events/filter`` (last 50 poller heartbeats), ``POST /work_pools/local/workers/filter``,
   ``GET /health``. The window spans at least one scheduled discovery run.
3. Ctrl-C to the stack; prints p50 / p90 / p99 / max per read and database, and as the LAST line
   one JSON object.

Environment: BENCH_SECONDS=150, BENCH_WARMUP=20, BENCH_RATE=5, BENCH_DATABASES=sqlite,postgresql.

    .venv/bin/python bench/api_latency_bench.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from collector.sim.testing import run_sim  # noqa: E402
from tests import postgres as pgtest  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "150"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "20"))
RATE = float(os.environ.get("BENCH_RATE", "5"))
DATABASES = os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",")


def reads(since_iso: str) -> dict[str, tuple[str, str, dict | None]]:
    return {
        "GET deployment": ("GET", "/deployments/name/discovery/discovery", None),
        "flow_runs/filter": ("POST", "/flow_runs/filter", {
            "flows": {"name": {"any_": ["discovery"]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 20}),
        "events/filter": ("POST", "/events/filter", {
            "filter": {"event": {"name": ["collector.poller.heartbeat"]}, "occurred": {"since": since_iso},
                       "order": "DESC"}, "limit": 50}),
        "workers/filter": ("POST", "/work_pools/local/workers/filter", {}),
        "GET health": ("GET", "/health", None),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def measure(database: str, pg_url: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-api-{database}-"))
    port = free_port()
    with run_sim("--markets", "20", "--seed", "3", "--no-rate-limit") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        env.update(sim.env, COLLECTOR_DATA_DIR=str(tmp / "data"), COLLECTOR_POLLER__HEARTBEAT_INTERVAL_S="1",
                   COLLECTOR_POLYMARKET__RULES='[{"name": "top", "max_markets": 10}]',
                   COLLECTOR_LIMITLESS__RULES='[{"name": "top", "max_markets": 3}]')
        args = [sys.executable, "-m", "flows.stack.up", "--port", str(port), "--home", str(tmp / ".prefect")]
        if pg_url:
            args += ["--database", pg_url]
        out = open(tmp / "up.out", "ab")  # noqa: SIM115
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, process_group=0)
        try:
            deadline = time.monotonic() + 240
            while "UI at " not in (tmp / "up.out").read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "up.out").read_text(errors="replace"))
                time.sleep(0.5)
            time.sleep(WARMUP)
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
            lat: dict[str, list[float]] = {k: [] for k in reads(since)}
            errors = 0
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30, trust_env=False) as api:
                t_end = time.monotonic() + SECONDS
                while time.monotonic() < t_end:
                    for name, (method, path, body) in reads(since).items():
                        t0 = time.perf_counter()
                        r = api.request(method, path, json=body)
                        dt = (time.perf_counter() - t0) * 1000
                        if r.status_code != 200:
                            errors += 1
                        lat[name].append(dt)
                        time.sleep(max(0.0, 1 / RATE - dt / 1000))
                done = api.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["discovery"]}},
                                                            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
                completed = len(done.json())
                beats = api.post("/events/count-by/event", json={"filter": {"occurred": {"since": since}}})
                events = sum(x["count"] for x in beats.json()) if beats.status_code == 200 else None
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=90)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            out.close()
    return {"database": database, "errors": errors, "discovery_completed": completed, "events": events,
            "reads": {k: {"n": len(v), "p50": pct(v, .5), "p90": pct(v, .9), "p99": pct(v, .99), "max": max(v)}
                      for k, v in lat.items()}}


def main() -> None:
    results = []
    load0 = os.getloadavg()[0]
    for db in DATABASES:
        if db == "postgresql":
            why = pgtest.missing()
            if why:
                print(f"postgresql: skipped ({why})")
                continue
            with pgtest.postgres() as pg:
                results.append(measure(db, pg.url))
        else:
            results.append(measure(db, None))
    print(f"\nPrefect API latency, ms (one client, {RATE:g} reads/s, {SECONDS:.0f} s after {WARMUP:.0f} s warm-up; "
          f"poller heartbeat event every 1 s, discovery every minute; load average {load0:.1f} -> {os.getloadavg()[0]:.1f})")
    print(f"{'read':<18} {'database':<11} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name in reads("x"):
        for r in results:
            s = r["reads"][name]
            print(f"{name:<18} {r['database']:<11} {s['n']:>5} {s['p50']:>8.1f} {s['p90']:>8.1f} {s['p99']:>8.1f} {s['max']:>8.1f}")
    for r in results:
        print(f"{r['database']}: non-200 answers {r['errors']}, discovery runs Completed {r['discovery_completed']}, "
              f"events in the window {r['events']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
