"""Soak: `collector run` (discovery loop + poller, one process, no Prefect) for SOAK_SECONDS against
the simulator at ~2,000 Polymarket instruments plus a few Limitless ones, with 2 % injected errors
and market churn; samples RSS, open file descriptors and CPU of the collector every SOAK_SAMPLE_S,
then checks every record on disk and computes coverage. (``make soak``)

Two simulators: one serves Polymarket (SOAK_INSTRUMENTS / 2 markets selected by a
``max_markets`` rule from a larger catalogue, 20 +- 10 ms latency, the venue's rate limits), one
serves Limitless (SOAK_LIMITLESS markets at the venue's 300 ms spacing). Faults on both:
1 % 5xx, 0.5 % truncated JSON, 0.5 % HTML error pages. Every SOAK_CHURN_S one market closes and
one opens on each venue (the script triggers it, so it knows the close times); discovery runs
every SOAK_DISCOVERY_S and picks the changes up.

Figures:

* coverage: instrument-seconds with a fresh book (younger than 2 x interval) over
  instrument-seconds active, after a warm-up, where "active" is the membership recorded in the
  market records, cut at the moment the venue closed the market (a closed market has no book to
  record; until the next discovery the poller meets 404s). ``coverage_raw`` does not cut.
  Instruments the venue lists but has no book for (``has_book`` false in the simulator, ~2 %: a
  real Polymarket quirk) are left out of both and counted in ``instruments_without_book``.
* gaps: gap records (instrument and venue-wide) and the seconds they span.
* RSS, fds, threads over time. Flatness is judged on the second half of the run (the bounded
  text/mid caches of the Polymarket client take ~10 minutes at 2,000 books/s to fill): growth =
  last sample - first sample of that half, and the least-squares slope (MB/h). Flat: growth <
  max(8 MB, 5 %) and fds within +-4. (A short run's second half is still warming up: its RSS
  verdict means little; the full soak's does.)
* CPU per book: user+sys seconds of the collector process over books written (all venues).

Prints one line per sample, a summary, and as the LAST line one JSON object.

Environment (all optional):
  SOAK_SECONDS=1800      run length (the full soak; ~34 min wall clock with set-up and checks)
  SOAK_INSTRUMENTS=2000  Polymarket instruments (tokens; 2 per market)
  SOAK_LIMITLESS=3       Limitless markets
  SOAK_LIMITLESS_INTERVAL_S=2.5  their poll interval. The venue allows ~2.5 requests/s at the
                         0.4 s spacing used here and discovery takes some; membership is sticky
                         (a member stays until it closes), so with churn the 3 selected markets
                         become 3-6 members: 2.5 s keeps 6 fresh, 1 s cannot keep 3 (a book counts
                         as fresh for 2 x interval)
  SOAK_ERROR_RATE=0.02   injected fault rate per request (split 1/2 5xx, 1/4 malformed, 1/4 HTML)
  SOAK_SAMPLE_S          sampling period (default 60, or SOAK_SECONDS/12 for short runs)
  SOAK_WARMUP_S          excluded from coverage (default min(120, 1/6 run))
  SOAK_CHURN_S=60        one market closes and one opens per venue this often (0: never)
  SOAK_DISCOVERY_S=60    discovery loop interval
  SOAK_DATA=/path        data directory (default: a temp dir, removed unless SOAK_KEEP=1)
  SOAK_KEEP=1            keep the data directory

    .venv/bin/python bench/soak.py            # 30 minutes
    SOAK_SECONDS=120 .venv/bin/python bench/soak.py
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector import read  # noqa: E402
from collector.read.records import book_times  # noqa: E402
from collector.sim.testing import run_sim  # noqa: E402
from collector.store.files import iter_jsonl_lines  # noqa: E402
from tests.reliability import schema  # noqa: E402

POLY, LIM = "polymarket", "limitless"


def env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


class StatsTail:
    """Reads new complete poll_stats lines as they are written (per-file offsets)."""

    def __init__(self, data: Path):
        self.data = data
        self.offsets: dict[Path, int] = {}
        self.books = Counter()
        self.last: dict[str, dict] = {}
        self.last_ts_ms = 0  # capture time of the newest stats record read

    def poll(self) -> None:
        for f in sorted(self.data.glob("*/poll_stats/date=*/*.jsonl")):
            off = self.offsets.get(f, 0)
            try:
                with open(f, "rb") as fh:
                    fh.seek(off)
                    chunk = fh.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].split(b"\n")[:-1]:
                try:
                    r = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                self.books[r["venue"]] += r.get("books_written", 0)
                self.last[r["venue"]] = r
                self.last_ts_ms = max(self.last_ts_ms, r["ts_ms"])
            self.offsets[f] = off + end


def sample(proc: psutil.Process) -> dict[str, float]:
    with proc.oneshot():
        mem = proc.memory_info()
        cpu = proc.cpu_times()
        return {
            "rss_mb": mem.rss / 2**20,
            "fds": proc.num_fds(),
            "threads": proc.num_threads(),
            "cpu_s": cpu.user + cpu.system,
        }


def warnings_summary(log: Path) -> dict[str, int]:
    """WARNING lines of the collector's log, grouped by logger and the start of the message."""
    out: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[2] == "WARNING":
            out[f"{parts[3]} {parts[4][:60]}"] += 1
    return dict(out.most_common(12))


def discovery_outcomes(log: Path) -> dict[str, dict[str, int]]:
    """Per venue: discovery passes that wrote a snapshot / failed (and why), from the log."""
    out: dict[str, Counter[str]] = {POLY: Counter(), LIM: Counter()}
    for line in log.read_text(errors="replace").splitlines():
        if " collector.discovery.run: discovery " not in line:
            continue
        rest = line.split(" collector.discovery.run: discovery ", 1)[1]
        venue = rest.split(":", 1)[0]
        if venue not in out:
            continue
        if ": ok " in rest:
            out[venue]["written"] += 1
        elif "failed: " in rest:
            out[venue]["failed " + rest.split("failed: ", 1)[1].split(":", 1)[0]] += 1
    return {v: dict(c) for v, c in out.items()}


def poll_stats(data: Path, venue: str) -> list[dict]:
    out = []
    for f in sorted(data.glob(f"{venue}/poll_stats/date=*/*.jsonl")):
        out += [orjson.loads(x) for x in iter_jsonl_lines(f)]
    return out


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600


def check_files(data: Path) -> dict[str, Any]:
    """Stream every data file: schema, duplicates within a file, level order, torn lines."""
    problems: list[str] = []
    records = Counter()
    torn = 0
    files = schema.data_files(data)
    for f in files:
        raw_tail = b""
        with open(f, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 1))
            raw_tail = fh.read()
        if raw_tail and raw_tail != b"\n":
            torn += 1
            problems.append(f"{f}: last line not terminated")
        seen: set[tuple[str, int]] = set()
        for n, line in enumerate(iter_jsonl_lines(f), 1):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(f"{f}:{n}: not JSON")
                continue
            errs = schema.validate(rec)
            if errs:
                if len(problems) < 50:
                    problems.append(f"{f}:{n}: {'; '.join(errs[:3])}")
                continue
            records[rec["record_type"]] += 1
            if rec["record_type"] == "orderbook":
                key = (rec["instrument_id"], rec["ts_ms"])
                if key in seen:
                    problems.append(f"{f}:{n}: duplicate {key}")
                seen.add(key)
    return {"files": len(files), "records": dict(records), "torn": torn, "problems": problems}


def coverage(data: Path, venue: str, lo_ms: int, hi_ms: int, closed_at: dict[str, int], fresh_ms: int,
             no_book: set[str]) -> dict[str, Any]:
    """Coverage of ``venue`` over [lo_ms, hi_ms) from the market records (see the module doc)."""
    cat = read.market_catalog(data, venue)
    skipped = [iid for iid in cat if iid in no_book]
    cat = {iid: e for iid, e in cat.items() if iid not in no_book}
    times, gaps = book_times(data, venue, lo_ms - fresh_ms, hi_ms)
    act_raw = act = fresh_raw = fresh = 0
    worst: list[tuple[float, str]] = []
    for iid, e in cat.items():
        for a, b in e["intervals"]:
            a = max(lo_ms, a if a is not None else lo_ms)
            b = min(hi_ms, b if b is not None else hi_ms)
            if b <= a:
                continue
            ts = times.get(iid, [])
            f_raw = fresh_overlap(ts, fresh_ms, a, b)
            act_raw += b - a
            fresh_raw += f_raw
            c = closed_at.get(iid)
            b2 = min(b, c) if c is not None else b
            if b2 > a:
                f = fresh_overlap(ts, fresh_ms, a, b2)
                act += b2 - a
                fresh += f
                worst.append((f / (b2 - a), iid))
    g_inst = [g for g in gaps if g.get("instrument_id")]
    g_venue = [g for g in gaps if g.get("instrument_id") is None]
    span = sum((g["to_ts_ms"] - g["from_ts_ms"]) for g in gaps if g.get("from_ts_ms") is not None) / 1000
    worst.sort()
    return {
        "instruments": len(cat),
        "without_book": len(skipped),
        "active_s": round(act / 1000, 1),
        "coverage": round(fresh / act, 5) if act else None,
        "coverage_raw": round(fresh_raw / act_raw, 5) if act_raw else None,
        "gaps_instrument": len(g_inst),
        "gaps_venue": len(g_venue),
        "gap_seconds": round(span, 1),
        "worst": [(iid[-12:], round(c, 4)) for c, iid in worst[:3]],
    }


def fresh_overlap(ts: list[int], fresh_ms: int, a: int, b: int) -> int:
    """Milliseconds of [a, b) covered by the union of [t, t + fresh_ms) (ts sorted)."""
    total = 0
    cur_lo = cur_hi = None
    for t in ts:
        if t + fresh_ms <= a:
            continue
        if t >= b:
            break
        lo, hi = max(t, a), min(t + fresh_ms, b)
        if cur_hi is not None and lo <= cur_hi:
            cur_hi = max(cur_hi, hi)
        else:
            if cur_hi is not None:
                total += cur_hi - cur_lo
            cur_lo, cur_hi = lo, hi
    if cur_hi is not None:
        total += cur_hi - cur_lo
    return total


def main() -> int:
    seconds = env_float("SOAK_SECONDS", 1800)
    n_poly = int(env_float("SOAK_INSTRUMENTS", 2000))
    n_lim = int(env_float("SOAK_LIMITLESS", 3))
    lim_interval = env_float("SOAK_LIMITLESS_INTERVAL_S", 2.5)
    err = env_float("SOAK_ERROR_RATE", 0.02)
    # poll_stats (whose books_written the samples read) are flushed every 10 s: sample on that grid
    sample_s = env_float("SOAK_SAMPLE_S", 60.0 if seconds >= 720 else max(10.0, 10 * round(seconds / 120)))
    warmup = env_float("SOAK_WARMUP_S", min(120.0, seconds / 6))
    churn_s = env_float("SOAK_CHURN_S", 60)
    disc_s = env_float("SOAK_DISCOVERY_S", 60)
    keep = os.environ.get("SOAK_KEEP") == "1"
    data = Path(os.environ.get("SOAK_DATA") or tempfile.mkdtemp(prefix="soak-"))
    data.mkdir(parents=True, exist_ok=True)
    markets = n_poly // 2
    catalogue = int(markets * 1.4) + 40
    print(f"soak: {seconds:.0f} s, {n_poly} Polymarket instruments ({markets} of {catalogue} markets), "
          f"{n_lim} Limitless, {err:.1%} errors, sample every {sample_s:.0f} s, warm-up {warmup:.0f} s, data {data}",
          flush=True)

    log = data / "collector.log"
    closed_at: dict[str, int] = {}
    samples: list[dict[str, float]] = []
    sim_counts: dict[str, Any] = {}
    with run_sim("--markets", str(catalogue), "--seed", "2024", "--latency-ms", "20", "--jitter-ms", "10",
                 "--log-size", "2000") as ps, \
            run_sim("--markets", "12", "--seed", "2025", "--log-size", "2000") as ls:
        rule_p = orjson.dumps([{"name": "soak", "min_minutes_to_expiry": 30, "max_markets": markets}]).decode()
        rule_l = orjson.dumps([{"name": "soak", "min_minutes_to_expiry": 30, "max_markets": n_lim}]).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        env.update(
            COLLECTOR_POLYMARKET__GAMMA_URL=ps.gamma_url, COLLECTOR_POLYMARKET__CLOB_URL=ps.clob_url,
            COLLECTOR_LIMITLESS__API_URL=ls.limitless_url, COLLECTOR_DATA_DIR=str(data),
            COLLECTOR_POLYMARKET__RULES=rule_p, COLLECTOR_LIMITLESS__RULES=rule_l,
            COLLECTOR_DISCOVERY__INTERVAL_S=str(disc_s), COLLECTOR_LIMITLESS__MIN_SPACING_S="0.4",
            COLLECTOR_LIMITLESS__INTERVAL_S=str(lim_interval),
            # the soak measures REST polling under faults; streams have their own suite
            COLLECTOR_STREAMS__POLYMARKET__ENABLED="false", COLLECTOR_STREAMS__LIMITLESS__ENABLED="false",
            COLLECTOR_TRADES__POLYMARKET__ENABLED="false", COLLECTOR_TRADES__LIMITLESS__ENABLED="false",
            COLLECTOR_TRADES__KALSHI__ENABLED="false",
            PYTHONPATH=str(ROOT),
        )
        faults = {"error_rate": err / 2, "malformed_rate": err / 4, "html_rate": err / 4}
        t_launch = time.time()
        child = subprocess.Popen([sys.executable, "-m", "collector", "run"], env=env, cwd=ROOT,
                                 stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        tail = StatsTail(data)
        try:
            # discovery runs first (clean); the faults start with the poller
            deadline = time.time() + 120
            while not list(data.glob("polymarket/orderbooks/date=*/*.jsonl")):
                if child.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"collector run did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            ps.control(**faults)
            ls.control(**faults)
            t0 = time.time()
            print(f"soak: collector up and polling after {t0 - t_launch:.1f} s (pid {child.pid})", flush=True)
            print(f"{'t_s':>6} {'rss_mb':>7} {'fds':>4} {'thr':>4} {'cpu_%':>6} {'books':>9} {'books/s':>8} "
                  f"{'us/book':>8} {'poly_stale':>10} {'lim_stale':>9}", flush=True)
            next_sample = t0
            next_churn = t0 + churn_s if churn_s > 0 else math.inf
            prev = None
            while True:
                now = time.time()
                if now >= t0 + seconds:
                    break
                if child.poll() is not None:
                    raise RuntimeError(f"collector run exited with {child.returncode}:\n{log.read_text()[-3000:]}")
                if now >= next_churn:
                    for sim, venue in ((ps, POLY), (ls, LIM)):
                        res = sim.markets("churn")
                        t_ms = int(time.time() * 1000)
                        for mk in res["closed"]:
                            if venue == POLY:
                                for tok in mk.get("tokens") or []:
                                    closed_at.setdefault(f"{POLY}:{tok}", t_ms)
                            else:
                                closed_at.setdefault(f"{LIM}:{mk['slug']}", t_ms)
                                for c in mk.get("children") or []:
                                    closed_at.setdefault(f"{LIM}:{c}", t_ms)
                    next_churn += churn_s
                if now >= next_sample:
                    tail.poll()
                    s = sample(proc)
                    s["t"] = now - t0
                    s["books"] = sum(tail.books.values())
                    s["stats_t"] = tail.last_ts_ms / 1000 - t0  # books are counted up to this moment
                    samples.append(s)
                    if prev is not None:
                        dt = s["t"] - prev["t"]
                        dcpu = s["cpu_s"] - prev["cpu_s"]
                        db = s["books"] - prev["books"]
                        dts = s["stats_t"] - prev["stats_t"]
                        stale = {v: (tail.last.get(v) or {}).get("stale_instruments") for v in (POLY, LIM)}
                        print(f"{s['t']:6.0f} {s['rss_mb']:7.1f} {s['fds']:4d} {s['threads']:4d} {dcpu / dt * 100:6.1f} "
                              f"{s['books']:9d} {db / dts if dts > 0 else float('nan'):8.0f} "
                              f"{dcpu / (db / dts * dt) * 1e6 if db and dts > 0 else float('nan'):8.0f} "
                              f"{stale[POLY]!s:>10} {stale[LIM]!s:>9}", flush=True)
                    else:
                        print(f"{s['t']:6.0f} {s['rss_mb']:7.1f} {s['fds']:4d} {s['threads']:4d} {'':>6} {s['books']:9d}",
                              flush=True)
                    prev = s
                    next_sample += sample_s
                time.sleep(max(0.05, min(next_sample, next_churn) - time.time()))
            t_stop = time.time()
            final = sample(proc)
            child.send_signal(signal.SIGTERM)
            rc = child.wait(timeout=60)
            exit_s = time.time() - t_stop
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        for sim, venue in ((ps, POLY), (ls, LIM)):
            r = sim.requests(limit=0)
            sim_counts[venue] = {"requests": r["counts"][venue], "status": r["status"][venue]}
        # instruments the venue lists as open order-book markets but has no book for (a Polymarket
        # quirk the simulator reproduces): nothing to record, they are reported apart
        no_book = {f"{POLY}:{t}" for mk in ps.markets(venue=POLY)[POLY] if not mk["has_book"] and not mk["closed"]
                   for t in mk["tokens"]}
        no_book |= {f"{LIM}:{mk['slug']}" for mk in ls.markets(venue=LIM)[LIM] if not mk["has_book"] and mk["listed"]}

    # ---------------------------------------------------------------- analysis
    t_an = time.time()
    checks = check_files(data)
    tail.poll()
    stats_books = sum(tail.books.values())
    books_on_disk = checks["records"].get("orderbook", 0)
    fresh_ms = {POLY: 2000, LIM: int(2000 * lim_interval)}  # 2 x the venue's poll interval
    lo_ms, hi_ms = int((t0 + warmup) * 1000), int(t_stop * 1000)
    cov = {v: coverage(data, v, lo_ms, hi_ms, closed_at, fresh_ms[v], no_book) for v in (POLY, LIM)}
    steady = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    second_half = [s for s in samples if s["t"] >= seconds / 2] or samples[-1:]
    rss = [s["rss_mb"] for s in second_half]
    fds = [s["fds"] for s in second_half]
    rss_growth = rss[-1] - rss[0]
    rss_flat = rss_growth < max(8.0, 0.05 * rss[0])
    fds_flat = max(fds) - min(fds) <= 8 and abs(fds[-1] - fds[0]) <= 4
    cpu_total = final["cpu_s"]
    cpu_steady = (steady[-1]["cpu_s"] - steady[0]["cpu_s"]) if len(steady) > 1 else None
    # books per second of the steady window, from the stats records' own times
    rate = ((steady[-1]["books"] - steady[0]["books"]) / (steady[-1]["stats_t"] - steady[0]["stats_t"])
            if len(steady) > 1 and steady[-1]["stats_t"] > steady[0]["stats_t"] else None)
    books_steady = rate * (steady[-1]["t"] - steady[0]["t"]) if rate else None
    result = {
        "seconds": round(t_stop - t0, 1),
        "instruments": {v: cov[v]["instruments"] for v in cov},
        "instruments_without_book": {v: cov[v]["without_book"] for v in cov},
        "books": books_on_disk,
        "books_per_s": round(books_on_disk / (t_stop - t0), 1),
        "books_written_in_poll_stats": stats_books,
        "lost_books": stats_books - books_on_disk,
        "coverage": {v: cov[v]["coverage"] for v in cov},
        "coverage_raw": {v: cov[v]["coverage_raw"] for v in cov},
        "gaps": {v: {k: cov[v][k] for k in ("gaps_instrument", "gaps_venue", "gap_seconds")} for v in cov},
        "worst_instruments": {v: cov[v]["worst"] for v in cov},
        "rss_mb": [round(x, 1) for x in (s["rss_mb"] for s in samples)],
        "rss_growth_mb": round(rss_growth, 2),
        "rss_slope_mb_per_h": round(slope_per_hour([s["t"] for s in second_half], rss), 2),
        "rss_after_warmup_mb": round(steady[0]["rss_mb"], 1),
        "fds": [int(s["fds"]) for s in samples],
        "threads": [int(s["threads"]) for s in samples],
        "cpu_s": round(cpu_total, 1),
        "cpu_us_per_book": round(cpu_steady / books_steady * 1e6, 1) if books_steady else None,
        "cpu_us_per_book_overall": round(cpu_total / books_on_disk * 1e6, 1) if books_on_disk else None,
        "exit_code": rc,
        "exit_s": round(exit_s, 2),
        "files": checks["files"],
        "records": checks["records"],
        "torn_files": checks["torn"],
        "problems": len(checks["problems"]),
        "markets_closed_by_churn": len(closed_at),
        "sim": sim_counts,
        "sample_s": sample_s,
        "warmup_s": warmup,
        "analysis_s": round(time.time() - t_an, 1),
        "log_warnings": warnings_summary(log),
        "discovery_runs": discovery_outcomes(log),
        "limitless_429_poller": sum(r.get("http_429", 0) for r in poll_stats(data, LIM)),
    }
    targets = {
        "coverage>=99.5%": all((result["coverage"][v] or 0) >= 0.995 for v in (POLY, LIM)),
        "rss_flat": rss_flat,
        "fds_flat": fds_flat,
        "no_problems": not checks["problems"] and rc == 0 and result["lost_books"] == 0,
    }
    result["targets"] = targets
    result["ok"] = all(targets.values())
    for p in checks["problems"][:10]:
        print("problem:", p, flush=True)
    print(f"soak: coverage {result['coverage']} (raw {result['coverage_raw']}), gaps {result['gaps']}", flush=True)
    print(f"soak: RSS {rss[0]:.1f} -> {rss[-1]:.1f} MB over the second half (growth {rss_growth:+.1f} MB, "
          f"slope {result['rss_slope_mb_per_h']:+.1f} MB/h), fds {min(fds)}..{max(fds)}, "
          f"CPU {result['cpu_us_per_book']} us/book (steady), {result['books_per_s']} books/s", flush=True)
    print(f"soak: targets {targets} -> {'OK' if result['ok'] else 'FAILED'}", flush=True)
    if keep:
        print(f"soak: data kept in {data}", flush=True)
    else:
        shutil.rmtree(data, ignore_errors=True)
    print(orjson.dumps(result).decode(), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
