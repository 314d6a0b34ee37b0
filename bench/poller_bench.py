"""The poller under load: 5,000 Polymarket instruments at 1 Hz against the simulator (``make bench``).

Starts ``python -m collector sim --port 0 --latency-ms 50 --jitter-ms 10 --no-rate-limit`` as a
subprocess, discovers its Polymarket catalogue (every live token whose market outlives the run),
writes a snapshot selecting BENCH_INSTRUMENTS of them, then runs the poller as a separate process
(``python -m collector poll --duration D``, venues = polymarket, data dir in a temp dir) twice:

* ``batch``: the default client, ``POST /books`` batches (budget 500 requests / 10 s);
* ``single``: the per-instrument baseline, ``GET /book`` per token
  (COLLECTOR_POLYMARKET__BOOKS_ENDPOINT=single, budget 1500 / 10 s as on the real venue, more
  workers and a higher in-flight cap so concurrency is not what limits it).
* ``kalshi``: as many Kalshi markets (or all the sim trades) in batches of 100,
  on Polymarket's budget (500 / 10 s): the two venues' hot paths compared, not their rate limits.

CPU (user+sys) and RSS are read from the poller process only (psutil), CPU over the steady window
that follows a warm-up. From the data files and poll_stats it computes books/s, the ratio to the
target rate, CPU per book and book age (every instrument sampled at 1 s ticks: age of its latest
book). Prints a table with both modes side by side, then as the LAST line one JSON object:
the batch run's keys, plus ``baseline`` with the same keys for the single run.

Metrics: books_per_s = polled books (orderbook and unchanged records) whose ts_ms falls in the window / window length;
target_ratio = books_per_s / (instruments / 1 s); cpu_us_per_book = poller user+sys CPU in the
window / those records; p50/p99_age_s = age of each instrument's latest record, sampled every
1 s with a per-instrument phase (instruments fetched in one batch share a phase on the 1 s grid,
so sampling all at the same instant would alias; the poll_stats book_age_* fields, computed at
stats time, are shown as stats_age_* for comparison and do alias); rss_mb = max RSS over the
whole run (rss_first/mid/last_mb and the trend line: samples inside the window);
machine_ref_us = this machine's time for a fixed pure-Python workload (see machine_ref_us), so
figures from two machines can be put side by side.

Environment (all optional):
  BENCH_SECONDS=30        steady-state window per mode (600 for a long RSS-flatness run)
  BENCH_WARMUP=10         seconds before the window starts
  BENCH_INSTRUMENTS=5000  Polymarket tokens polled (the /books budget, 500 per 10 s x 100 tokens, is 5,000/s)
  BENCH_LATENCY_MS=50     simulator latency (BENCH_JITTER_MS=10 on top, uniform)
  BENCH_CHANGE_MIX=""     the simulator's --change-mix (e.g. "0.05:1.0,0.95:0.02": a few busy
                          books, many quiet, as in bench/bytes_bench.py); default: every book
                          changes with the simulator's default probability (0.3 per tick)
  BENCH_BASELINE=1        0 skips the GET /book run (its JSON keys are then null)
  BENCH_MODES=batch,single,kalshi  which runs to do (e.g. "single" alone; "nohash" = batch with
                          polymarket.verify_book_hash=false, to see the hash check's CPU;
                          "kalshi" = Kalshi batches next to Polymarket's)
  BENCH_BASELINE_RATE=1500, BENCH_BASELINE_WORKERS=64   budget / threads of the GET /book run
  BENCH_KEEP=1            keep the temp data dirs (path printed)
  BENCH_POLLER_ENV=K=V,...  poller settings without the COLLECTOR_ prefix (e.g. POLLER__GC_THRESHOLD=0)
  BENCH_PROFILE=/path/to/py-spy   wrap each poller run in ``py-spy record --format raw``
                          (collapsed stacks kept in the temp dir; CPU numbers then include
                          sampling overhead)

    .venv/bin/python bench/poller_bench.py
"""

from __future__ import annotations

import bisect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config.settings import KalshiSettings, PolymarketSettings  # noqa: E402
from collector.model.clock import now_ms  # noqa: E402
from collector.model.records import Instrument  # noqa: E402
from collector.sim.testing import run_sim, stop_process  # noqa: E402
from collector.store.files import iter_jsonl_lines  # noqa: E402
from collector.store.layout import snapshot_path  # noqa: E402
from collector.store.snapshot import Snapshot, write_snapshot  # noqa: E402
from collector.venues.kalshi import KalshiClient  # noqa: E402
from collector.venues.polymarket import PolymarketClient  # noqa: E402

KEYS = ("books_per_s", "target_ratio", "cpu_us_per_book", "p50_age_s", "p99_age_s", "rss_mb", "instruments", "seconds")
INTERVAL_S = 1.0


def env_num(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


# --------------------------------------------------------------------------- set-up


def pick_instruments(sim, n: int, must_outlive_ms: int) -> list[Instrument]:
    """Discover the sim's catalogue with the real client; keep tokens that have a book and
    whose market does not expire during the run (so the active set stays constant)."""
    s = PolymarketSettings(gamma_url=sim.gamma_url, clob_url=sim.clob_url,
                           discovery_rate_requests=100_000, discovery_rate_window_s=1.0)
    client = PolymarketClient(s)
    try:
        found = client.discover().instruments
    finally:
        client.close()
    live = set(sim.live_tokens())
    ok = [i for i in found if i.poll_key in live and (i.expires_at_ms is None or i.expires_at_ms > must_outlive_ms)]
    return ok[:n]


def pick_kalshi(sim, n: int, must_outlive_ms: int) -> list[Instrument]:
    """The sim's trading Kalshi markets (every series, no combos) that outlive the run."""
    client = KalshiClient(KalshiSettings(api_url=sim.kalshi_url, series=[], discovery_rate_requests=100_000,
                                         discovery_rate_window_s=1.0, min_spacing_s=0, share_spacing=False))
    try:
        found = client.discover().instruments
    finally:
        client.close()
    live = set(sim.live_tickers())
    return [i for i in found if i.poll_key in live and (i.expires_at_ms is None or i.expires_at_ms > must_outlive_ms)][:n]


def markets_for(n_instruments: int) -> int:
    # 2 tokens per market; ~20 % of sim markets have no live book and short crypto slots expire.
    return max(50, int(n_instruments * 0.75) + 50)


# --------------------------------------------------------------------------- one mode


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def sys_s(p: psutil.Process) -> float:
    return p.cpu_times().system


def main_thread_s(p: psutil.Process) -> float:
    """CPU of the loop thread (the main thread: its id is the pid) alone."""
    return sum(t.user_time + t.system_time for t in p.threads() if t.id == p.pid)


def run_mode(name: str, sim, insts: list[Instrument], extra_env: dict[str, str], seconds: float,
             warmup: float, workdir: Path, venue: str = "polymarket") -> dict[str, Any]:
    data = workdir / name
    write_snapshot(snapshot_path(data, venue),
                   Snapshot(venue=venue, asof_ms=now_ms(), rules=[{"name": "all"}],
                            counts={"instruments": len(insts)}, instruments=insts))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env |= sim.env
    env |= {
        "COLLECTOR_VENUES": venue,
        "COLLECTOR_DATA_DIR": str(data),
        "COLLECTOR_LOG_LEVEL": "WARNING",
        # REST polling at 1 Hz is what this measures (bench/stream_bench.py measures the feeds)
        "COLLECTOR_STREAMS__POLYMARKET__ENABLED": "false",
        # books only: trade capture has its own bench (make bench-trades)
        "COLLECTOR_TRADES__POLYMARKET__ENABLED": "false", "COLLECTOR_TRADES__LIMITLESS__ENABLED": "false",
        "COLLECTOR_TRADES__KALSHI__ENABLED": "false",
        "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    }
    env |= extra_env
    for kv in filter(None, os.environ.get("BENCH_POLLER_ENV", "").split(",")):  # e.g. POLLER__GC_THRESHOLD=0
        k, v = kv.split("=", 1)
        env[f"COLLECTOR_{k}"] = v
    duration = warmup + seconds + 1.0
    cmd = [sys.executable, "-m", "collector", "poll", "--duration", f"{duration:g}"]
    spy = os.environ.get("BENCH_PROFILE")
    if spy:  # collapsed stacks (flamegraph.pl / speedscope input), one file per mode
        out = workdir / f"profile-{name}.txt"
        cmd = [spy, "record", "--format", "raw", "-o", str(out), "--rate", "250", "--threads",
               *os.environ.get("BENCH_PROFILE_ARGS", "--gil").split(), "--", *cmd]
    errlog = open(workdir / f"poller-{name}.stderr", "wb")
    spawn_wall = time.time()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        pp = psutil.Process(proc.pid)
        if spy:  # measure the python child, not py-spy
            for _ in range(100):
                kids = pp.children()
                if kids:
                    pp = kids[0]
                    break
                time.sleep(0.05)
        sim_p = psutil.Process(sim.pid)
        rss: list[tuple[float, float]] = []  # (seconds since spawn, MB)
        win0 = win1 = None
        cpu0 = cpu1 = sim_cpu0 = sim_cpu1 = sys0 = sys1 = main0 = main1 = 0.0
        tick = 0
        while proc.poll() is None:
            tick += 1
            target = t0 + tick * 1.0
            time.sleep(max(0.0, target - time.monotonic()))
            el = time.monotonic() - t0
            try:
                rss.append((el, pp.memory_info().rss / 2**20))
                if win0 is None and el >= warmup:
                    cpu0, sim_cpu0, win0, sys0, main0 = cpu_s(pp), cpu_s(sim_p), time.time(), sys_s(pp), main_thread_s(pp)
                elif win0 is not None and win1 is None and el >= warmup + seconds:
                    cpu1, sim_cpu1, win1, sys1, main1 = cpu_s(pp), cpu_s(sim_p), time.time(), sys_s(pp), main_thread_s(pp)
            except psutil.NoSuchProcess:
                break
        rc = proc.wait(timeout=30)
    finally:
        stop_process(proc)
        errlog.close()
    if win0 is None or win1 is None:
        tail = (workdir / f"poller-{name}.stderr").read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"poller ({name}) exited early with code {proc.returncode}:\n{tail}")
    res = analyse(data, insts, spawn_wall, win0, win1, venue)
    cpu = cpu1 - cpu0
    books = res.pop("_books_in_window")
    res["cpu_us_per_book"] = round(cpu / books * 1e6, 1) if books else None
    res["cpu_util"] = round(cpu / (win1 - win0), 3)
    # The loop thread (schedule, normalize, write) vs the rest (fetch threads: HTTP, split, hash).
    res["cpu_loop_us_per_book"] = round((main1 - main0) / books * 1e6, 1) if books else None
    res["cpu_sys_share"] = round((sys1 - sys0) / cpu, 3) if cpu else None
    res["sim_cpu_util"] = round((sim_cpu1 - sim_cpu0) / (win1 - win0), 3)
    res["rss_mb"] = round(max(m for _, m in rss), 1)
    in_win = [m for e, m in rss if warmup <= e <= warmup + seconds] or [rss[-1][1]]
    res["rss_first_mb"] = round(in_win[0], 1)
    res["rss_mid_mb"] = round(in_win[len(in_win) // 2], 1)
    res["rss_last_mb"] = round(in_win[-1], 1)
    step = max(1, len(in_win) // 10)
    res["_rss_trend"] = [round(m, 1) for m in in_win[::step]] + ([round(in_win[-1], 1)] if (len(in_win) - 1) % step else [])
    res["exit_code"] = rc
    res["stderr_lines"] = sum(1 for _ in open(workdir / f"poller-{name}.stderr", "rb"))
    return res


# --------------------------------------------------------------------------- analysis


def analyse(data: Path, insts: list[Instrument], spawn_wall: float, win0: float, win1: float,
            venue: str = "polymarket") -> dict[str, Any]:
    ts_by_inst: dict[str, list[int]] = {i.instrument_id: [] for i in insts}
    gaps = other = unchanged = 0
    for path in sorted((data / venue / "orderbooks").rglob("*.jsonl*")):
        for line in iter_jsonl_lines(path):
            rec = orjson.loads(line)
            if rec.get("record_type") in ("orderbook", "unchanged"):  # a polled book either way
                ts_by_inst.setdefault(rec["instrument_id"], []).append(rec["ts_ms"])
                if rec["record_type"] == "unchanged":
                    unchanged += 1
            elif rec.get("record_type") == "gap":
                gaps += 1
            else:
                other += 1
    w0, w1 = int(win0 * 1000), int(win1 * 1000)
    seconds = (w1 - w0) / 1000
    spawn_ms = int(spawn_wall * 1000)
    in_window = 0
    ages: list[float] = []
    # Each instrument is sampled every 1 s with its own phase (golden-ratio spread over the
    # second): instruments polled in the same batch share a phase on the 1 s grid, and sampling
    # them all at the same instant would alias (always just before or just after a batch).
    for j, tss in enumerate(ts_by_inst.values()):
        tss.sort()
        in_window += bisect.bisect_left(tss, w1) - bisect.bisect_left(tss, w0)
        phase = int((j * 0.6180339887498949) % 1.0 * 1000)
        for t in range(w0 + phase, w1, 1000):
            k = bisect.bisect_right(tss, t)
            ages.append((t - (tss[k - 1] if k else spawn_ms)) / 1000)
    ages.sort()
    n = len(insts)
    bps = in_window / seconds
    stats = []
    for path in sorted((data / venue / "poll_stats").rglob("*.jsonl*")):
        stats += [r for r in map(orjson.loads, iter_jsonl_lines(path)) if w0 <= r["ts_ms"] <= w1 + 500]
    tot = {k: sum(s.get(k) or 0 for s in stats) for k in ("requests", "requests_failed", "failed", "http_429", "timeouts")}

    def med(k: str) -> float | None:
        v = [s[k] for s in stats if s.get(k) is not None]
        return round(statistics.median(v), 3) if v else None

    span = (stats[-1]["ts_ms"] - stats[0]["ts_ms"]) / 1000 if len(stats) > 1 else 0
    reqs = sum(s["requests"] for s in stats[1:]) if len(stats) > 1 else 0
    return {
        "books_per_s": round(bps, 1),
        "target_ratio": round(bps / (n / INTERVAL_S), 4),
        "cpu_us_per_book": None,
        "p50_age_s": round(ages[len(ages) // 2], 3) if ages else None,
        "p99_age_s": round(ages[min(len(ages) - 1, int(0.99 * len(ages)))], 3) if ages else None,
        "rss_mb": None,
        "instruments": n,
        "seconds": round(seconds, 1),
        "_books_in_window": in_window,
        "req_per_s": round(reqs / span, 1) if span else None,
        "requests_failed": tot["requests_failed"],
        "polls_failed": tot["failed"],
        "http_429": tot["http_429"],
        "timeouts": tot["timeouts"],
        "gaps": gaps,
        "stats_age_p50_s": med("book_age_p50_s"),
        "stats_age_p99_s": med("book_age_p99_s"),
        "achieved_interval_p50_s": med("achieved_interval_p50_s"),
        "achieved_interval_p99_s": med("achieved_interval_p99_s"),
        "latency_p50_ms": med("latency_p50_ms"),
        "inflight_cap": med("inflight_cap"),
        "books_total": sum(len(v) for v in ts_by_inst.values()),
        "unchanged_share": round(unchanged / max(1, sum(len(v) for v in ts_by_inst.values())), 3),
    }


# --------------------------------------------------------------------------- main


def machine_ref_us() -> float:
    """This machine's speed at the poller's kind of work, to compare figures across machines: the
    best of 7 runs of a fixed pure-Python workload (dict lookups, tuples, a sort, orjson), in µs;
    lower is faster. CPU per book scales with it (two VMs of the same kind differed 1.4x)."""
    d = {str(i): (str(i * 7), i) for i in range(200)}
    keys = list(d)

    def work() -> bytes:
        out = [(d[k][0], k) for k in keys]
        out.sort()
        return b",".join([orjson.dumps(x) for x in out[:50]])

    return round(min(timeit.repeat(work, number=200, repeat=7)) / 200 * 1e6, 1)


def table(cols: dict[str, dict[str, Any]]) -> str:
    rows = list(KEYS) + [k for k in next(iter(cols.values())) if k not in KEYS]
    w = max(map(len, rows))
    cw = [max(14, len(c) + 2) for c in cols]
    out = [f"{'metric':<{w}}" + "".join(f"{c:>{x}}" for c, x in zip(cols, cw))]
    out.append("-" * len(out[0]))
    for r in rows:
        out.append(f"{r:<{w}}" + "".join(f"{str(cols[c].get(r, '')):>{x}}" for c, x in zip(cols, cw)))
    return "\n".join(out)


def main() -> int:
    seconds = env_num("BENCH_SECONDS", 30)
    warmup = env_num("BENCH_WARMUP", 10)
    n = int(env_num("BENCH_INSTRUMENTS", 5000))
    latency = env_num("BENCH_LATENCY_MS", 50)
    jitter = env_num("BENCH_JITTER_MS", 10)
    baseline = os.environ.get("BENCH_BASELINE", "1") != "0"
    b_rate = int(env_num("BENCH_BASELINE_RATE", 1500))
    b_workers = int(env_num("BENCH_BASELINE_WORKERS", 64))
    wanted = os.environ.get("BENCH_MODES", "batch,single,kalshi" if baseline else "batch,kalshi").split(",")
    modes: dict[str, dict[str, str]] = {}
    if "batch" in wanted:
        modes["batch"] = {}
    if "single" in wanted:
        modes["single"] = {
            "COLLECTOR_POLYMARKET__BOOKS_ENDPOINT": "single",
            "COLLECTOR_POLYMARKET__RATE_REQUESTS": str(b_rate),
            "COLLECTOR_POLYMARKET__MAX_WORKERS": str(b_workers),
            "COLLECTOR_POLYMARKET__INFLIGHT_START": str(b_workers),
            "COLLECTOR_POLYMARKET__INFLIGHT_CEILING": str(b_workers),
        }
    if "nohash" in wanted:  # the batch run with the capture-time hash check off (its CPU cost)
        modes["nohash"] = {"COLLECTOR_POLYMARKET__VERIFY_BOOK_HASH": "false"}
    if "kalshi" in wanted:  # Polymarket's batch budget and concurrency: the hot path, not the limit
        modes["kalshi"] = {f"COLLECTOR_KALSHI__{k}": v for k, v in (
            ("RATE_REQUESTS", "500"), ("MIN_SPACING_S", "0"), ("SHARE_SPACING", "false"), ("MAX_WORKERS", "16"),
            ("INFLIGHT_START", "4"), ("INFLIGHT_CEILING", "16"))}
    ref = machine_ref_us()  # before anything else runs
    run_s = (warmup + seconds + 15) * len(modes) + 120
    workdir = Path(tempfile.mkdtemp(prefix="poller-bench-"))
    results: dict[str, dict[str, Any]] = {}
    mix = ["--change-mix", os.environ["BENCH_CHANGE_MIX"]] if os.environ.get("BENCH_CHANGE_MIX") else []
    try:
        with open(workdir / "sim.stderr", "wb") as sim_err, run_sim(
            "--markets", str(markets_for(n)), "--latency-ms", f"{latency:g}", "--jitter-ms", f"{jitter:g}",
            "--no-rate-limit", "--seed", "1", "--log-size", "1000", *mix, stderr=sim_err,
        ) as sim:
            insts = pick_instruments(sim, n, now_ms() + int(run_s * 1000))
            if len(insts) < n:
                print(f"warning: only {len(insts)} usable instruments (asked for {n})", file=sys.stderr)
            print(f"poller bench: {len(insts)} polymarket instruments at {INTERVAL_S:g} Hz, sim latency "
                  f"{latency:g}+{jitter:g} ms, warm-up {warmup:g} s + {seconds:g} s per mode", file=sys.stderr)
            for name, extra in modes.items():
                venue, chosen = ("kalshi", pick_kalshi(sim, n, now_ms() + int(run_s * 1000))) if name == "kalshi" \
                    else ("polymarket", insts)
                print(f"  running {name} ({len(chosen)} {venue} instruments) ...", file=sys.stderr, flush=True)
                results[name] = run_mode(name, sim, chosen, extra, seconds, warmup, workdir, venue)
                if os.environ.get("BENCH_KEEP") != "1":
                    shutil.rmtree(workdir / name, ignore_errors=True)
    finally:
        if os.environ.get("BENCH_KEEP") == "1" or os.environ.get("BENCH_PROFILE"):
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    labels = {"batch": "batch POST /books", "single": "single GET /book", "nohash": "batch, hash check off",
              "kalshi": "kalshi GET /markets/orderbooks"}
    trends = {k: v.pop("_rss_trend") for k, v in results.items()}
    print(table({labels[k]: v for k, v in results.items()}))
    print(f"machine_ref_us {ref} (a fixed pure-Python workload on this machine, lower is faster: CPU figures scale with it)")
    for k, tr in trends.items():
        print(f"rss_mb over the window ({labels[k]}): {' '.join(map(str, tr))}")
    if "batch" not in results:
        print(orjson.dumps({"baseline": {k: results["single"][k] for k in KEYS}}).decode())
        return 0
    main_r = results["batch"]
    main_r["rss_growth_mb"] = round(main_r["rss_last_mb"] - main_r["rss_first_mb"], 1)  # flat: a few MB at most
    t = {"target_ratio": (">=", 0.98), "p99_age_s": ("<=", 1.5), "cpu_us_per_book": ("<=", 35.0), "rss_mb": ("<=", 200.0),
         "rss_growth_mb": ("<=", 10.0)}
    for k, (op, lim) in t.items():
        v = main_r[k]
        ok = v is not None and (v >= lim if op == ">=" else v <= lim)
        print(f"target {k} {op} {lim:g}: {v} {'ok' if ok else 'MISSED'}")
    out = {k: main_r[k] for k in KEYS}
    out["machine_ref_us"] = ref
    out["baseline"] = {k: results["single"][k] for k in KEYS} if "single" in results else {k: None for k in KEYS}
    if "kalshi" in results:
        out["kalshi"] = {k: results["kalshi"][k] for k in KEYS}
    if "single" in results and results["single"]["books_per_s"]:
        print(f"batching gain: {main_r['books_per_s'] / results['single']['books_per_s']:.1f}x books/s, "
              f"{(results['single']['cpu_us_per_book'] or 0) / (main_r['cpu_us_per_book'] or 1):.1f}x less CPU per book")
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
