"""A whole venue, sharded, under the local Prefect stack (``make bench-scale``).

1. Starts the simulator (``python -m collector sim --port 0 --no-rate-limit``, 50+10 ms latency)
   with enough markets for BENCH_INSTRUMENTS live Polymarket tokens, and **writes** the snapshot
   of those instruments (every token with a book whose market outlives the run, as
   bench/poller_bench.py picks them): the simulator also lists markets without a book, which a
   discovery-published set would include and which would 404 for ever. Discovery is pointed at
   a dead Gamma URL and its schedule paused, so nothing replaces the snapshot.
2. Brings up the stack with ``python -m flows.stack.up --shards N`` (flows/stack): a Prefect
   server on 127.0.0.1 with a temporary PREFECT_HOME, the process pool, the deployments (shard
   deployments poller-shard-<k>of<N>), the automations, one worker, one poller run per shard.
   Polymarket only, stream capture off (REST polling at 1 Hz is what this measures),
   ``books_batch_size`` 250: each shard gets 500 // N requests per 10 s (250 for N = 2, i.e.
   25/s) and 5,000 tokens at 1 Hz need 20/s; ``inflight_start`` 8 (the default 4 holds it to ~15/s).
3. Measures each shard's flow-run process (psutil: CPU user+sys, RSS) over BENCH_SECONDS after
   BENCH_WARMUP, and reads each shard's ``poll_stats`` records (``ok`` = polled books, not the
   ``orderbook`` lines, which a changes-only writer may skip): books/s against the target
   (instruments / 1 s), CPU per polled book, CPU use, p99 book age (``book_age_p99_s``, worst
   record of the window), requests/s, 429s.
4. Checks that the shards' instrument sets (ids in each shard's order-book files, and the ids in
   its restart state file) are disjoint and together exactly the snapshot.
5. SIGKILLs the flow-run process of the last shard and times the automation's restart (Crashed,
   Running again, first poll_stats of the new process) and the ``restart`` gaps the new process
   writes for that shard's instruments.
6. Ctrl-C to the stack (every run Cancelled). Prints a table, then as the LAST line one JSON object.

Environment: BENCH_SECONDS=60, BENCH_WARMUP=15, BENCH_INSTRUMENTS=10000, BENCH_SHARDS=2,
BENCH_BATCH=250, BENCH_INFLIGHT=8 (polymarket.inflight_start), BENCH_LATENCY_MS=50, BENCH_JITTER_MS=10,
BENCH_KILL=1 (0: no kill phase),
BENCH_KEEP=1 (keep the temp directory), BENCH_POLLER_ENV=K=V,... (settings without COLLECTOR_).

    .venv/bin/python bench/scale_bench.py
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from poller_bench import cpu_s, env_num, markets_for, pick_instruments  # noqa: E402

from collector.model.clock import now_ms  # noqa: E402
from collector.poller.shard import in_shard, shard_slug, shards_of  # noqa: E402
from collector.sim.testing import run_sim, stop_process  # noqa: E402
from collector.store.files import iter_jsonl_lines  # noqa: E402
from collector.store.layout import poller_state_path, snapshot_path  # noqa: E402
from collector.store.snapshot import Snapshot, write_snapshot  # noqa: E402
from flows.stack.api import DISCOVERY, api_client, local_api, runs_of  # noqa: E402
from flows.stack.shards import poller_deployments_for  # noqa: E402

VENUE = "polymarket"
PID_RE = re.compile(r"-(\d+)-[0-9a-f]+\.jsonl")
IID_RE = re.compile(rb'"instrument_id":"([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, fn, timeout: float, every: float = 0.5) -> Any:
    end = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except httpx.HTTPError:  # a busy SQLite server can take longer than the client timeout
            v = None
        if v:
            return v
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def pid_of(run: dict[str, Any]) -> int:
    return int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])


def stream_files(data: Path, stream: str) -> list[Path]:
    return sorted((data / VENUE / stream).rglob("*.jsonl*"))


def stats_of(data: Path, pid: int) -> list[dict[str, Any]]:
    out = []
    for f in stream_files(data, "poll_stats"):
        m = PID_RE.search(f.name)
        if m and int(m.group(1)) == pid:
            out += [orjson.loads(line) for line in iter_jsonl_lines(f)]
    return sorted(out, key=lambda r: r["ts_ms"])


def restart_gaps(data: Path, pid: int) -> list[dict[str, Any]]:
    out = []
    for f in stream_files(data, "orderbooks"):
        m = PID_RE.search(f.name)
        if not (m and int(m.group(1)) == pid):
            continue
        for line in iter_jsonl_lines(f):
            if b'"record_type":"gap"' in line:
                g = orjson.loads(line)
                if g["reason"] == "restart":
                    out.append(g)
    return out


def polled_ids(data: Path) -> dict[int, set[str]]:
    """Instrument ids in each process's order-book files (every instrument's first book of a
    process is always written)."""
    out: dict[int, set[str]] = {}
    for f in stream_files(data, "orderbooks"):
        m = PID_RE.search(f.name)
        if m:
            out.setdefault(int(m.group(1)), set()).update(x.decode() for x in IID_RE.findall(f.read_bytes()))
    return out


def stack_procs(up_pid: int) -> dict[str, psutil.Process]:
    """The server and the worker (children of `up`)."""
    out = {}
    for p in psutil.Process(up_pid).children():
        with contextlib.suppress(psutil.Error):
            cmd = p.cmdline()
            if "start" in cmd and ("server" in cmd or "worker" in cmd):
                out["server" if "server" in cmd else "worker"] = p
    return out


def family_of(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return []


def pct(vals: list[float], q: float) -> float | None:
    s = sorted(vals)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def window_figures(stats: list[dict[str, Any]], w0: float, w1: float, n_inst: int) -> dict[str, Any]:
    """Rates from the poll_stats records inside [w0, w1] (each counts since the one before)."""
    recs = [r for r in stats if w0 * 1000 <= r["ts_ms"] <= w1 * 1000]
    if len(recs) < 2:
        raise RuntimeError(f"only {len(recs)} poll_stats records in the window: make BENCH_SECONDS longer")
    span = (recs[-1]["ts_ms"] - recs[0]["ts_ms"]) / 1000
    body = recs[1:]
    ok = sum(r["ok"] for r in body)
    ages = [r["book_age_p99_s"] for r in recs if r.get("book_age_p99_s") is not None]
    bps = ok / span
    return {
        "instruments": n_inst,
        "target_books_per_s": round(n_inst / 1.0, 1),
        "books_per_s": round(bps, 1),
        "ratio": round(bps / n_inst, 4) if n_inst else None,
        "req_per_s": round(sum(r["requests"] for r in body) / span, 2),
        "latency_p50_ms": statistics.median(r["latency_p50_ms"] for r in body if r["latency_p50_ms"] is not None),
        "latency_p95_ms": max(r["latency_p95_ms"] for r in body if r["latency_p95_ms"] is not None),
        "inflight_cap": max(r["inflight_cap"] for r in body),
        "p99_book_age_s": max(ages) if ages else None,
        "p99_book_age_median_s": round(statistics.median(ages), 3) if ages else None,
        "failed_polls": sum(r["failed"] for r in body),
        "http_429": sum(r["http_429"] for r in body),
        "stale_instruments_max": max(r["stale_instruments"] for r in recs),
        "stats_span_s": round(span, 1),
    }


def measure(procs: dict[str, psutil.Process], seconds: float) -> dict[str, dict[str, Any]]:
    cpu0 = {s: cpu_s(p) for s, p in procs.items()}
    rss: dict[str, list[float]] = {s: [] for s in procs}
    w0 = time.time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s, p in procs.items():
            rss[s].append(p.memory_info().rss / 2**20)
        time.sleep(1.0)
    w1 = time.time()
    out = {}
    for s, p in procs.items():
        cpu = cpu_s(p) - cpu0[s]
        out[s] = {"w0": w0, "w1": w1, "cpu_s": cpu, "cpu_util": round(cpu / (w1 - w0), 3),
                  "rss_mb": round(max(rss[s]), 1), "rss_first_last_mb": (round(rss[s][0], 1), round(rss[s][-1], 1))}
    return out


def stack_env(sim, data: Path, batch: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
    env |= sim.env
    env |= {
        "COLLECTOR_VENUES": VENUE,
        "COLLECTOR_DATA_DIR": str(data),
        "COLLECTOR_LOG_LEVEL": "WARNING",
        "COLLECTOR_STREAMS__POLYMARKET__ENABLED": "false",
        # books only: trade capture has its own bench (make bench-trades)
        "COLLECTOR_TRADES__POLYMARKET__ENABLED": "false", "COLLECTOR_TRADES__LIMITLESS__ENABLED": "false",
        "COLLECTOR_TRADES__KALSHI__ENABLED": "false",
        "COLLECTOR_POLYMARKET__BOOKS_BATCH_SIZE": str(batch),
        # a request holds its slot for latency + parse + normalize (~200 ms for 250 books here):
        # 20 requests/s need more than the default 4 in flight (AIMD adds 1 per 15 stable minutes)
        "COLLECTOR_POLYMARKET__INFLIGHT_START": os.environ.get("BENCH_INFLIGHT", "8"),
        "COLLECTOR_POLYMARKET__GAMMA_URL": "http://127.0.0.1:9",  # discovery must not replace the written snapshot
        "COLLECTOR_DISCOVERY__TASK_RETRIES": "0",
        "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    }
    for kv in filter(None, os.environ.get("BENCH_POLLER_ENV", "").split(",")):
        k, v = kv.split("=", 1)
        env[f"COLLECTOR_{k}"] = v
    return env


def pause_discovery(api) -> None:
    d = api.get(f"/deployments/name/{DISCOVERY}").json()
    for s in d.get("schedules", []):
        api.patch(f"/deployments/{d['id']}/schedules/{s['id']}", json={"active": False}).raise_for_status()


def kill_phase(api, data: Path, dep: str, run: dict[str, Any], n_inst: int) -> dict[str, Any]:
    """SIGKILL a shard's flow-run process; time the automation's restart and the restart gaps."""
    pid = pid_of(run)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    t = {}
    wait_for("Crashed", lambda: api.get(f"/flow_runs/{run['id']}").json()["state_type"] == "CRASHED", 60, 0.2)
    t["crashed_s"] = round(time.time() - t_kill, 1)
    new = wait_for("the restarted run", lambda: [r for r in runs_of(api, dep, ["RUNNING"]) if r["id"] != run["id"]],
                   120, 0.2)[0]
    t["running_again_s"] = round(time.time() - t_kill, 1)
    new_pid = pid_of(new)
    wait_for("the restarted process's first stats", lambda: stats_of(data, new_pid), 60, 0.2)
    t["first_stats_s"] = round(time.time() - t_kill, 1)
    end = time.monotonic() + 60  # every instrument's first book after the restart closes its gap
    while len(gaps := restart_gaps(data, new_pid)) < n_inst and time.monotonic() < end:
        time.sleep(1.0)
    t["gaps_complete_s"] = round(time.time() - t_kill, 1)
    lag = [t_kill - g["from_ts_ms"] / 1000 for g in gaps if g["from_ts_ms"] is not None]
    span = [(g["to_ts_ms"] - (g["from_ts_ms"] or g["to_ts_ms"])) / 1000 for g in gaps]
    return {
        **t, "new_pid": new_pid, "old_pid": pid, "restart_gaps": len(gaps), "instruments": n_inst,
        "gaps_in_shard": all(in_shard(g["instrument_id"], new["parameters"]["shard"]) for g in gaps),
        "gaps_span_kill": all((g["from_ts_ms"] or 0) <= t_kill * 1000 <= g["to_ts_ms"] for g in gaps),
        "from_before_kill_p50_s": round(pct(lag, 0.5), 2), "from_before_kill_max_s": round(max(lag), 2),
        "gap_len_p50_s": round(pct(span, 0.5), 2), "gap_len_max_s": round(max(span), 2),
    }


def run(workdir: Path) -> dict[str, Any]:
    n = int(env_num("BENCH_INSTRUMENTS", 10000))
    shards = int(env_num("BENCH_SHARDS", 2))
    seconds = env_num("BENCH_SECONDS", 60)
    warmup = env_num("BENCH_WARMUP", 15)
    batch = int(env_num("BENCH_BATCH", 250))
    lat, jit = env_num("BENCH_LATENCY_MS", 50), env_num("BENCH_JITTER_MS", 10)
    data, home, port = workdir / "data", workdir / ".prefect", free_port()
    res: dict[str, Any] = {"shards": shards, "batch": batch, "budget_per_shard": f"{500 // shards}/10s",
                           "seconds": seconds}
    with open(workdir / "sim.stderr", "wb") as sim_err, run_sim(
        "--markets", str(markets_for(n)), "--latency-ms", f"{lat:g}", "--jitter-ms", f"{jit:g}", "--no-rate-limit",
        "--seed", "1", "--log-size", "1000", stderr=sim_err,
    ) as sim:
        insts = pick_instruments(sim, n, now_ms() + int((warmup + seconds + 600) * 1000))
        write_snapshot(snapshot_path(data, VENUE), Snapshot(venue=VENUE, asof_ms=now_ms(), rules=[{"name": "bench"}],
                                                            counts={"instruments": len(insts)}, instruments=insts))
        ids = {i.instrument_id for i in insts}
        per_shard = {s: sum(in_shard(i, s) for i in ids) for s in shards_of(shards)}
        print(f"scale bench: {len(ids)} {VENUE} instruments ({per_shard}), {shards} shards, batch {batch}, "
              f"sim latency {lat:g}+{jit:g} ms, warm-up {warmup:g} s + {seconds:g} s", file=sys.stderr, flush=True)
        out = open(workdir / "up.out", "wb")
        t0 = time.monotonic()
        up = subprocess.Popen([sys.executable, "-m", "flows.stack.up", "--port", str(port), "--home", str(home),
                               "--shards", str(shards)], cwd=ROOT, env=stack_env(sim, data, batch),
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, process_group=0)
        family: list[psutil.Process] = []
        try:
            wait_for("`collector up`", lambda: b"UI at " in (workdir / "up.out").read_bytes() or up.poll() is not None, 300)
            if up.poll() is not None:
                raise RuntimeError((workdir / "up.out").read_text(errors="replace"))
            res["up_ready_s"] = round(time.monotonic() - t0, 1)
            api = api_client(local_api(port))
            pause_discovery(api)
            deps = dict(zip(shards_of(shards), poller_deployments_for(shards)))
            runs = {s: wait_for(f"{d} Running", lambda d=d: runs_of(api, d, ["RUNNING"]), 180)[0] for s, d in deps.items()}
            res["shards_running_s"] = round(time.monotonic() - t0, 1)
            procs = {s: psutil.Process(pid_of(r)) for s, r in runs.items()}
            family = family_of(up.pid)
            for s, r in runs.items():
                wait_for(f"shard {s} polling", lambda r=r: any(x["ok"] for x in stats_of(data, pid_of(r))), 120)
            time.sleep(warmup)
            others = {"sim": psutil.Process(sim.pid), **stack_procs(up.pid)}
            o0 = {k: cpu_s(p) for k, p in others.items()}
            load0 = os.getloadavg()
            win = measure(procs, seconds)
            res["load_avg_1m"] = [round(load0[0], 2), round(os.getloadavg()[0], 2)]
            span = next(iter(win.values()))
            res["other_cpu_util"] = {k: round((cpu_s(p) - o0[k]) / (span["w1"] - span["w0"]), 3) for k, p in others.items()}
            res["per_shard"] = {}
            for s, r in runs.items():
                w = win[s]
                f = window_figures(stats_of(data, pid_of(r)), w["w0"], w["w1"], per_shard[s])
                f |= {"cpu_util": w["cpu_util"], "rss_mb": w["rss_mb"],
                      "cpu_us_per_book": round(w["cpu_util"] / f["books_per_s"] * 1e6, 1) if f["books_per_s"] else None,
                      "pid": pid_of(r)}
                res["per_shard"][s] = f
            if os.environ.get("BENCH_KILL", "1") != "0":
                victim = shards_of(shards)[-1]
                res["kill"] = {"shard": victim, **kill_phase(api, data, deps[victim], runs[victim], per_shard[victim])}
            res["coverage"] = coverage_check(data, ids, runs, res.get("kill"))
        finally:
            family += [p for p in family_of(up.pid) if p not in family]
            up.send_signal(signal.SIGINT)
            try:
                res["stack_stopped_rc"] = up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                res["stack_stopped_rc"] = None
            for p in family:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            stop_process(up)
            out.close()
    return res


def coverage_check(data: Path, ids: set[str], runs: dict[str, Any], kill: dict[str, Any] | None) -> dict[str, Any]:
    """Union of the shards' instrument sets = the snapshot, intersection empty: from the order-book
    files of each shard's processes and from each shard's restart state file."""
    by_pid = polled_ids(data)
    pids = {s: {pid_of(r)} for s, r in runs.items()}
    if kill:
        pids[kill["shard"]].add(kill["new_pid"])
    polled = {s: set().union(*(by_pid.get(p, set()) for p in ps)) for s, ps in pids.items()}
    held = {}
    for s in runs:
        st = orjson.loads(poller_state_path(data, VENUE, shard_slug(s)).read_bytes())
        held[s] = {f"{VENUE}:{k}" for k in st["last_ok_ms"]}
    union = set().union(*polled.values())
    pairs = [(a, b) for a in polled for b in polled if a < b]
    return {
        "snapshot": len(ids),
        "union_equals_snapshot": union == ids,
        "intersection_empty": all(polled[a].isdisjoint(polled[b]) for a, b in pairs),
        "state_files_agree": all(held[s] == polled[s] for s in runs),
        "polled_per_shard": {s: len(v) for s, v in polled.items()},
    }


def table(res: dict[str, Any]) -> str:
    rows = ["instruments", "target_books_per_s", "books_per_s", "ratio", "req_per_s", "latency_p50_ms",
            "latency_p95_ms", "inflight_cap", "cpu_us_per_book", "cpu_util",
            "p99_book_age_s", "p99_book_age_median_s", "rss_mb", "failed_polls", "http_429", "stale_instruments_max"]
    cols = res["per_shard"]
    w = max(map(len, rows)) + 2
    out = [f"{'metric':<{w}}" + "".join(f"{'shard ' + s:>14}" for s in cols), "-" * (w + 14 * len(cols))]
    out += [f"{r:<{w}}" + "".join(f"{str(cols[s].get(r)):>14}" for s in cols) for r in rows]
    return "\n".join(out)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        res = run(workdir)
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(res))
    print(f"budget per shard: {res['budget_per_shard']} (Polymarket /books 500 per 10 s, split {res['shards']} ways), "
          f"batch {res['batch']}; stack ready in {res['up_ready_s']} s, shards Running at {res['shards_running_s']} s")
    print(f"other processes' CPU use over the window: {res['other_cpu_util']}; load average {res['load_avg_1m']}")
    c = res["coverage"]
    print(f"coverage: union of shards = snapshot ({c['snapshot']}): {c['union_equals_snapshot']}; intersection empty: "
          f"{c['intersection_empty']}; state files agree: {c['state_files_agree']}; per shard {c['polled_per_shard']}")
    k = res.get("kill")
    if k:
        print(f"kill -9 of shard {k['shard']} (pid {k['old_pid']}): Crashed after {k['crashed_s']} s, Running again after "
              f"{k['running_again_s']} s, first poll_stats {k['first_stats_s']} s; {k['restart_gaps']} restart gaps for "
              f"{k['instruments']} instruments by {k['gaps_complete_s']} s, all in the shard: {k['gaps_in_shard']}, all "
              f"spanning the kill: {k['gaps_span_kill']}; from_ts_ms {k['from_before_kill_p50_s']} s (max "
              f"{k['from_before_kill_max_s']}) before the kill; gap length p50 {k['gap_len_p50_s']} s, max {k['gap_len_max_s']} s")
    for s, f in res["per_shard"].items():
        ok = f["ratio"] is not None and f["ratio"] >= 0.98
        print(f"target shard {s} ratio >= 0.98: {f['ratio']} {'ok' if ok else 'MISSED'}")
    print(orjson.dumps(res).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
