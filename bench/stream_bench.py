"""Stream capture under load: 2,000 subscribed Polymarket tokens on the simulator's market channel.

Starts the simulator (``collector sim``) with BENCH_STREAM_MARKETS markets, discovers its tokens with
the real client, writes a snapshot of BENCH_STREAM_TOKENS of them and runs the poller as its own
process (``python -m collector poll``, venues = polymarket, streams on, REST reconciling every 30 s).
Two phases, each with a fresh simulator:

* ``realistic``: the simulator's default book clock (tick 1 s, change probability 0.3);
* ``throughput``: a fast clock (tick BENCH_STREAM_FAST_TICK_S) to push the feed as hard as the
  simulator can on this machine.

Figures (steady window after a warm-up): messages/s and level changes/s recorded (from the
``book_changes`` files), poller CPU (user+sys, psutil) per message and per change, the capacity
of one core at that cost (1e6 / CPU us per change), receive-to-disk latency (now - ``ts_ms`` when a
record is first readable in the file: the bench tails the files every 5 ms, so add up to ~5 ms of
tail delay), hash checks that failed, resyncs, and RSS first/last over the window (flat = no leak).
The simulator runs on the other core; its CPU is shown too (when it is at ~100 %, the feed rate,
not the poller, is the limit). The last line is one JSON object.

Environment: BENCH_SECONDS=30, BENCH_WARMUP=10, BENCH_STREAM_TOKENS=2000, BENCH_STREAM_MARKETS=1100,
BENCH_STREAM_FAST_TICK_S=0.25, BENCH_STREAM_PHASES=realistic,throughput, BENCH_KEEP=1,
BENCH_STREAM_ENV=K=V,... (poller settings without the COLLECTOR_ prefix, e.g. WRITER__FSYNC_INTERVAL_S=5).

    .venv/bin/python bench/stream_bench.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.poller_bench import cpu_s, env_num, pick_instruments  # noqa: E402
from collector.model.clock import now_ms  # noqa: E402
from collector.sim.testing import run_sim, stop_process  # noqa: E402
from collector.store.layout import BOOK_CHANGES_STREAM, POLL_STATS_STREAM, snapshot_path  # noqa: E402
from collector.store.snapshot import Snapshot, write_snapshot  # noqa: E402


class Tail(threading.Thread):
    """Reads new lines of the book_changes files as they appear; latency = arrival - ts_ms."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.offsets: dict[Path, int] = {}
        self.lat: list[tuple[float, float]] = []  # (wall s, latency ms)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.005):
            for p in self.root.rglob("*.jsonl"):
                off = self.offsets.get(p, 0)
                try:
                    with open(p, "rb") as f:
                        f.seek(off)
                        chunk = f.read()
                except OSError:
                    continue
                end = chunk.rfind(b"\n")
                if end < 0:
                    continue
                self.offsets[p] = off + end + 1
                now = time.time()
                lines = chunk[:end].split(b"\n")
                for line in lines[:: max(1, len(lines) // 50)]:  # a sample: parsing all would steal CPU
                    i = line.find(b'"ts_ms":')
                    if i >= 0:
                        ts = int(line[i + 8: line.index(b",", i)])
                        self.lat.append((now, now * 1000 - ts))


def _records(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(root.rglob("*.jsonl")):
        out += [orjson.loads(x) for x in p.read_bytes().splitlines() if x]
    return out


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)


def phase(name: str, sim_args: list[str], tokens: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    data = work / name
    with run_sim(*sim_args) as sim:
        insts = pick_instruments(sim, tokens, now_ms() + int((warmup + seconds + 60) * 1000))
        write_snapshot(snapshot_path(data, "polymarket"),
                       Snapshot(venue="polymarket", asof_ms=now_ms(), rules=[{"name": "all"}],
                                counts={"instruments": len(insts)}, instruments=insts))
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")} | sim.env | {
            "COLLECTOR_VENUES": "polymarket", "COLLECTOR_DATA_DIR": str(data), "COLLECTOR_LOG_LEVEL": "WARNING",
            "COLLECTOR_STREAMS__POLYMARKET__MAX_PER_CONNECTION": "200",
            "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        }
        for kv in filter(None, os.environ.get("BENCH_STREAM_ENV", "").split(",")):  # e.g. WRITER__FSYNC_INTERVAL_S=5
            k, v = kv.split("=", 1)
            env[f"COLLECTOR_{k}"] = v
        cmd = [sys.executable, "-m", "collector", "poll", "--duration", f"{warmup + seconds + 2:g}"]
        errlog = open(work / f"poller-{name}.stderr", "wb")
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=errlog)
        tail = Tail(data / "polymarket" / BOOK_CHANGES_STREAM)
        tail.start()
        pp, sp = psutil.Process(proc.pid), psutil.Process(sim.pid)
        rss: list[float] = []
        t0 = time.monotonic()
        win0 = win1 = None
        c0 = c1 = s0 = s1 = 0.0
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                el = time.monotonic() - t0
                try:
                    if win0 is None and el >= warmup:
                        c0, s0, win0 = cpu_s(pp), cpu_s(sp), time.time()
                    elif win0 is not None and win1 is None and el >= warmup + seconds:
                        c1, s1, win1 = cpu_s(pp), cpu_s(sp), time.time()
                    if win0 is not None and win1 is None:
                        rss.append(pp.memory_info().rss / 2**20)
                except psutil.NoSuchProcess:
                    break
            proc.wait(timeout=30)
        finally:
            stop_process(proc)
            errlog.close()
            tail.stop.set()
            tail.join()
    if win0 is None or win1 is None:
        raise RuntimeError(f"poller ({name}) exited early: {(work / f'poller-{name}.stderr').read_text()[-2000:]}")
    recs = _records(data / "polymarket" / BOOK_CHANGES_STREAM)
    lo, hi = win0 * 1000, win1 * 1000
    win = [r for r in recs if lo <= r["ts_ms"] < hi]
    msgs = {(r["conn"], r["seq"]) for r in win if "conn" in r}
    changes = sum(len(r["bids"]) + len(r["asks"]) for r in win if r["record_type"] == "book_change")
    span = win1 - win0
    cpu = c1 - c0
    lat = [ms for t, ms in tail.lat if win0 <= t < win1]
    stats = [r for r in _records(data / "polymarket" / POLL_STATS_STREAM) if r.get("stream")]
    return {
        "tokens": len(insts),
        "messages_per_s": round(len(msgs) / span, 1),
        "changes_per_s": round(changes / span, 1),
        "records_per_s": round(len(win) / span, 1),
        "cpu_util": round(cpu / span, 3),
        "cpu_us_per_message": round(cpu / len(msgs) * 1e6, 1) if msgs else None,
        "cpu_us_per_change": round(cpu / changes * 1e6, 1) if changes else None,
        "one_core_changes_per_s": round(changes / cpu) if cpu else None,
        "latency_p50_ms": _pct(lat, 0.50),
        "latency_p95_ms": _pct(lat, 0.95),
        "latency_p99_ms": _pct(lat, 0.99),
        "latency_max_ms": round(max(lat), 1) if lat else None,
        "hash_failed": sum(1 for r in win if r.get("hash_ok") is False),
        "resyncs": sum(s["stream"]["resyncs"] for s in stats),
        "gaps": sum(1 for r in win if r["record_type"] == "gap"),
        "rss_first_mb": round(rss[0], 1) if rss else None,
        "rss_last_mb": round(rss[-1], 1) if rss else None,
        "rss_max_mb": round(max(rss), 1) if rss else None,
        "sim_cpu_util": round((s1 - s0) / span, 3),
        "seconds": round(span, 1),
    }


def main() -> int:
    seconds, warmup = env_num("BENCH_SECONDS", 30), env_num("BENCH_WARMUP", 10)
    tokens = int(env_num("BENCH_STREAM_TOKENS", 2000))
    markets = int(env_num("BENCH_STREAM_MARKETS", 1100))
    fast = env_num("BENCH_STREAM_FAST_TICK_S", 0.25)
    phases = os.environ.get("BENCH_STREAM_PHASES", "realistic,throughput").split(",")
    base = ["--markets", str(markets), "--seed", "77", "--no-rate-limit", "--log-size", "100"]
    args = {"realistic": base, "throughput": base + ["--tick-s", f"{fast:g}"]}
    work = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    out: dict[str, Any] = {}
    try:
        for name in phases:
            out[name] = phase(name, args[name], tokens, seconds, warmup, work)
    finally:
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"(data kept in {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    keys = list(next(iter(out.values())))
    print(f"{'':24}" + "".join(f"{n:>14}" for n in out))
    for k in keys:
        print(f"{k:24}" + "".join(f"{str(out[n][k]):>14}" for n in out))
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
