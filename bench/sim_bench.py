"""Throughput of the venue simulator's POST /clob/books.

Starts ``python -m collector sim --port 0 --markets 1000 --no-rate-limit`` as a subprocess,
drives it with a few httpx client threads posting batches of 100 live tokens for ~10 s, and
prints books/s, req/s and the simulator's own CPU time per book (from psutil / /proc).

    .venv/bin/python bench/sim_bench.py [--duration 10] [--threads 4] [--batch 100] [--markets 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.sim.testing import run_sim  # noqa: E402


def cpu_s(pid: int) -> float:
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--markets", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    with run_sim("--markets", str(a.markets), "--no-rate-limit", "--seed", str(a.seed)) as sim:
        tokens = sim.live_tokens()
        url = sim.clob_url + "/books"
        stop = threading.Event()
        lock = threading.Lock()
        tot = {"req": 0, "books": 0, "bytes": 0, "errors": 0, "lat": 0.0}

        def worker(i: int) -> None:
            rng = random.Random(i)
            n = req = books = nbytes = errors = 0
            lat = 0.0
            with httpx.Client(timeout=10.0, trust_env=False) as c:
                while not stop.is_set():
                    start = (n * a.batch + i * 7919) % max(1, len(tokens) - a.batch)
                    n += 1
                    batch = tokens[start: start + a.batch]
                    if rng.random() < 0.1:
                        rng.shuffle(batch)
                    body = orjson.dumps([{"token_id": t} for t in batch])
                    t0 = time.perf_counter()
                    r = c.post(url, content=body, headers={"content-type": "application/json"})
                    lat += time.perf_counter() - t0
                    req += 1
                    if r.status_code != 200:
                        errors += 1
                        continue
                    got = orjson.loads(r.content)
                    books += len(got)
                    nbytes += len(r.content)
            with lock:
                tot["req"] += req
                tot["books"] += books
                tot["bytes"] += nbytes
                tot["errors"] += errors
                tot["lat"] += lat

        # warm up (first touch builds every book) before measuring
        with httpx.Client(timeout=30.0, trust_env=False) as c:
            for i in range(0, len(tokens), 500):
                c.post(url, json=[{"token_id": t} for t in tokens[i: i + 500]])
        sim.reset_requests()
        cpu0, t0 = cpu_s(sim.pid), time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
        for t in threads:
            t.start()
        time.sleep(a.duration)
        stop.set()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = cpu_s(sim.pid) - cpu0
        served = sim.requests(limit=0)["books_served"]["polymarket"]

    books_s = tot["books"] / wall
    res = {
        "markets": a.markets,
        "tokens": len(tokens),
        "threads": a.threads,
        "batch": a.batch,
        "wall_s": round(wall, 3),
        "requests": tot["req"],
        "errors": tot["errors"],
        "books": tot["books"],
        "books_served_by_sim": served,
        "req_per_s": round(tot["req"] / wall, 1),
        "books_per_s": round(books_s, 1),
        "mb_per_s": round(tot["bytes"] / wall / 1e6, 2),
        "mean_latency_ms": round(tot["lat"] / max(1, tot["req"]) * 1000, 2),
        "sim_cpu_s": round(cpu, 3),
        "sim_cpu_util": round(cpu / wall, 3),
        "sim_cpu_us_per_book": round(cpu / max(1, tot["books"]) * 1e6, 2),
        "sim_books_per_cpu_s": round(tot["books"] / cpu, 1) if cpu > 0 else None,
        "cpus": os.cpu_count(),
    }
    w = max(len(k) for k in res)
    print(f"{'metric':<{w}}  value")
    print(f"{'-' * w}  -----")
    for k, v in res.items():
        print(f"{k:<{w}}  {v}")
    print(orjson.dumps(res).decode())
    return 0 if tot["errors"] == 0 and tot["books"] > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
