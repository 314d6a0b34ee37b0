"""Bytes on disk per instrument-hour: JSONL, JSONL.zst and the daily Parquet, for ``every_poll``
and ``changes``, at two change regimes (``make bench-bytes``).

For each regime it starts the simulator (``--no-rate-limit``, 50+10 ms latency like
bench/poller_bench.py), discovers its Polymarket catalogue, writes a snapshot of N instruments
and runs two pollers side by side (``python -m collector poll --duration D``, streams off, one
data dir each), one with ``COLLECTOR_WRITER__RECORD=every_poll``, one with ``changes``, so both
see the same books. Regimes: ``default`` (the sim's ``--change-prob 0.3`` per 1 s tick) and
``mix`` (``--change-mix``, default 5 % of books changing every tick, 95 % at 0.02).

For each run: the JSONL as written, the same files zstd-compressed (``collector.store.compress``,
the writer's level), and the daily Parquet (``collector.store.compact.compact_day`` on every UTC
day the run touched, so a run over midnight counts both files). Figures are per
instrument-hour, one poll being one second of one instrument (1 Hz), over the **steady part**:
the bytes of the whole run minus those of its first ``BENCH_BYTES_WARMUP`` seconds (the same
files cut at that time, compressed and compacted the same way), divided by the polls in
between. That leaves out what a file or a day pays once per instrument (its first full book),
which a short run would otherwise spread over a few minutes instead of a day. The whole-run
figures are in the JSON too.

Checks in passing: each run's Parquet reads back (``collector.read.iter_books``) as many polls
as its JSONL holds (orderbook + unchanged records), and as the changes JSONL read through
``collector.read``. Prints a table, the 20x target per regime, then one JSON line, last.

Environment (all optional):
  BENCH_BYTES_INSTRUMENTS=300   Polymarket tokens polled at 1 Hz
  BENCH_BYTES_SECONDS=120       poller run per regime (both modes at once)
  BENCH_BYTES_WARMUP=30         seconds left out at the start (0: whole runs)
  BENCH_BYTES_REGIMES=default,mix
  BENCH_BYTES_MIX=0.05:1.0,0.95:0.02   the sim's --change-mix for the ``mix`` regime
  BENCH_BYTES_LIMITLESS=0       Limitless markets polled too, also at 1 Hz (the client's rate
                                limits lifted: the venue's own allow ~3 books/s in all), rows of
                                their own in the table
  BENCH_BYTES_KEEP=1            keep the temp dir (path printed)

    .venv/bin/python bench/bytes_bench.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from poller_bench import env_num, markets_for, pick_instruments  # noqa: E402

from collector import read  # noqa: E402
from collector.config.settings import LimitlessSettings  # noqa: E402
from collector.model.clock import now_ms  # noqa: E402
from collector.model.records import Instrument  # noqa: E402
from collector.sim.testing import run_sim, stop_process  # noqa: E402
from collector.store.compact import compact_day  # noqa: E402
from collector.store.compress import compress_file  # noqa: E402
from collector.store.files import iter_jsonl_lines  # noqa: E402
from collector.store.layout import date_partitions, snapshot_path  # noqa: E402
from collector.store.snapshot import Snapshot, write_snapshot  # noqa: E402
from collector.venues.limitless import LimitlessClient  # noqa: E402

MODES = ("every_poll", "changes")
TARGET = 20.0
DAY_MS = 86_400_000


# --------------------------------------------------------------------------- recording


def poller_env(sim, data: Path, record: str, venues: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env |= sim.env
    env |= {
        "COLLECTOR_VENUES": ",".join(venues),
        "COLLECTOR_DATA_DIR": str(data),
        "COLLECTOR_LOG_LEVEL": "WARNING",
        "COLLECTOR_STREAMS__POLYMARKET__ENABLED": "false",
        # books only: trade capture has its own bench (make bench-trades)
        "COLLECTOR_TRADES__POLYMARKET__ENABLED": "false", "COLLECTOR_TRADES__LIMITLESS__ENABLED": "false",
        "COLLECTOR_TRADES__KALSHI__ENABLED": "false",
        "COLLECTOR_STREAMS__LIMITLESS__ENABLED": "false",
        "COLLECTOR_WRITER__RECORD": record,
        "COLLECTOR_WRITER__COMPRESS_CLOSED": "false",  # compressed below, file for file
        "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    }
    if "limitless" in venues:  # 1 Hz per market: the venue's limits would allow ~3 books/s in all
        env |= {"COLLECTOR_LIMITLESS__RATE_REQUESTS": "100000", "COLLECTOR_LIMITLESS__MIN_SPACING_S": "0",
                "COLLECTOR_LIMITLESS__SHARE_SPACING": "false", "COLLECTOR_LIMITLESS__MAX_WORKERS": "16",
                "COLLECTOR_LIMITLESS__INFLIGHT_START": "8", "COLLECTOR_LIMITLESS__INFLIGHT_CEILING": "16"}
    return env


def pick_limitless(sim, n: int) -> list[Instrument]:
    s = LimitlessSettings(api_url=sim.limitless_url, discovery_rate_requests=100_000, discovery_rate_window_s=1.0,
                          min_spacing_s=0.0, share_spacing=False)
    client = LimitlessClient(s)
    try:
        found = client.discover().instruments
    finally:
        client.close()
    live = set(sim.live_slugs())
    return [i for i in found if i.poll_key in live][:n]


def record_regime(name: str, sim_args: list[str], n: int, n_lim: int, seconds: float,
                  workdir: Path) -> dict[str, Path]:
    """Both modes' recordings of one regime: {mode: data dir}."""
    out: dict[str, Path] = {}
    with open(workdir / f"sim-{name}.stderr", "wb") as sim_err, run_sim(
        "--markets", str(max(markets_for(n), n_lim * 2)), "--latency-ms", "50", "--jitter-ms", "10",
        "--no-rate-limit", "--seed", "1", "--log-size", "1000", *sim_args, stderr=sim_err,
    ) as sim:
        insts = {"polymarket": pick_instruments(sim, n, now_ms() + int((seconds + 120) * 1000))}
        if n_lim:
            insts["limitless"] = pick_limitless(sim, n_lim)
        for v, want in (("polymarket", n), ("limitless", n_lim)):
            if v in insts and len(insts[v]) < want:
                print(f"warning: only {len(insts[v])} usable {v} instruments (asked for {want})", file=sys.stderr)
        procs = []
        for mode in MODES:
            data = workdir / name / mode
            for v, vi in insts.items():
                write_snapshot(snapshot_path(data, v),
                               Snapshot(venue=v, asof_ms=now_ms(), rules=[{"name": "all"}],
                                        counts={"instruments": len(vi)}, instruments=vi))
            err = open(workdir / f"poller-{name}-{mode}.stderr", "wb")
            cmd = [sys.executable, "-m", "collector", "poll", "--duration", f"{seconds:g}"]
            env = poller_env(sim, data, mode, list(insts))
            procs.append((mode, subprocess.Popen(cmd, env=env, cwd=str(ROOT),
                                                 stdout=subprocess.DEVNULL, stderr=err), err))
            out[mode] = data
        try:
            for mode, p, _err in procs:
                rc = p.wait(timeout=seconds + 120)
                if rc != 0:
                    tail = (workdir / f"poller-{name}-{mode}.stderr").read_bytes()[-2000:].decode(errors="replace")
                    raise RuntimeError(f"poller {name}/{mode} exited with {rc}:\n{tail}")
        finally:
            for _mode, p, err in procs:
                stop_process(p)
                err.close()
    return out


# --------------------------------------------------------------------------- measuring


def book_files(data: Path, venue: str | None = None) -> list[Path]:
    return sorted(data.glob(f"{venue or '*'}/orderbooks/date=*/*.jsonl*"))


def poll_count(data: Path, venue: str) -> tuple[int, int, int, int]:
    """(polls, full books, unchanged, first ts_ms) in the JSONL of a recording."""
    polls = full = same = 0
    first = 1 << 62
    for f in book_files(data, venue):
        for line in iter_jsonl_lines(f):
            rec = orjson.loads(line)
            rt = rec.get("record_type")
            if rt in ("orderbook", "unchanged"):
                polls += 1
                full += rt == "orderbook"
                same += rt == "unchanged"
                first = min(first, rec["ts_ms"])
    return polls, full, same, first


def cut_copy(src: Path, dst: Path, cut_ms: int | None) -> None:
    """The orderbooks of ``src`` under ``dst``, only the records with ``ts_ms < cut_ms`` when
    given. One instrument's lines are in poll order in a file, so a cut leaves each file's
    markers after the full book they stand for."""
    for f in book_files(src):
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if cut_ms is None:
            shutil.copyfile(f, out)
            continue
        keep = [line for line in iter_jsonl_lines(f) if orjson.loads(line)["ts_ms"] < cut_ms]
        out.write_bytes(b"".join(x + b"\n" for x in keep))


def sizes(data: Path, venue: str, later_ms: int) -> dict[str, int]:
    """Bytes of the JSONL, of its zstd copies, and of its daily Parquet (every day in it)."""
    jsonl = sum(f.stat().st_size for f in book_files(data, venue))
    for f in book_files(data, venue):
        compress_file(f)
    zst = sum(f.stat().st_size for f in book_files(data, venue))
    parquet = 0
    for date in date_partitions(data / venue / "orderbooks"):
        rep = compact_day(data, venue, date, keep_jsonl=True, now_ms=later_ms)
        if not rep.ok:
            raise RuntimeError(rep.summary_line())
        parquet += rep.parquet_bytes + (Path(rep.gaps_path).stat().st_size if rep.gaps_path else 0)
    return {"jsonl": jsonl, "zst": zst, "parquet": parquet}


def measure(data: Path, venue: str, warmup_s: float, workdir: Path) -> dict[str, Any]:
    polls, full, same, first = poll_count(data, venue)
    later = now_ms() + 3 * DAY_MS
    whole = sizes(_fresh(workdir / "whole", data, None), venue, later)
    # every poll is read back from the Parquet, and from the JSONL through collector.read
    pq_polls = sum(1 for _ in read.iter_books(workdir / "whole", venue))
    jl_polls = sum(1 for _ in read.iter_books(data, venue))
    res: dict[str, Any] = {
        "polls": polls, "full_books": full, "unchanged": same, "parquet_polls": pq_polls,
        "jsonl_read_polls": jl_polls, "readback_ok": pq_polls == polls == jl_polls,
        "days": len(date_partitions(data / venue / "orderbooks")), "whole_bytes": whole,
    }
    steady_polls, steady = polls, dict(whole)
    if warmup_s > 0:
        cut = first + int(warmup_s * 1000)
        head = _fresh(workdir / "head", data, cut)
        hp = poll_count(head, venue)[0]
        hb = sizes(head, venue, later)
        steady_polls = polls - hp
        steady = {k: whole[k] - hb[k] for k in whole}
    res["steady_polls"] = steady_polls
    res["steady_bytes"] = steady
    ih = steady_polls / 3600.0  # one poll = one second of one instrument
    res["instrument_hours"] = round(ih, 3)
    res["bytes_per_ih"] = {k: round(v / ih) for k, v in steady.items()}
    res["bytes_per_poll"] = {k: round(v / steady_polls, 1) for k, v in steady.items()}
    wih = polls / 3600.0
    res["whole_bytes_per_ih"] = {k: round(v / wih) for k, v in whole.items()}
    res["poll_stats_ok"] = _stats_ok(data, venue)
    for d in ("whole", "head"):
        shutil.rmtree(workdir / d, ignore_errors=True)
    return res


def _fresh(dst: Path, src: Path, cut_ms: int | None) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    cut_copy(src, dst, cut_ms)
    return dst


def _stats_ok(data: Path, venue: str) -> int:
    n = 0
    for f in sorted((data / venue / "poll_stats").rglob("*.jsonl*")):
        n += sum(orjson.loads(x).get("ok") or 0 for x in iter_jsonl_lines(f))
    return n


# --------------------------------------------------------------------------- report


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = (f"{'regime':<19}{'record':<12}{'polls':>8}{'inst-h':>8}{'JSONL B/ih':>13}{'zst B/ih':>11}"
            f"{'Parquet B/ih':>14}{'JSONL x':>9}{'zst x':>8}{'Parquet x':>11}")
    out = [head, "-" * len(head)]
    for regime, modes in results.items():
        base = modes["every_poll"]["bytes_per_ih"]["jsonl"]
        for mode, r in modes.items():
            b = r["bytes_per_ih"]
            x = {k: base / v if v else float("inf") for k, v in b.items()}
            out.append(f"{regime:<19}{mode:<12}{r['steady_polls']:>8,}{r['instrument_hours']:>8.2f}{b['jsonl']:>13,}"
                       f"{b['zst']:>11,}{b['parquet']:>14,}{x['jsonl']:>9.1f}{x['zst']:>8.1f}{x['parquet']:>11.1f}")
    return "\n".join(out)


def main() -> int:
    n = int(env_num("BENCH_BYTES_INSTRUMENTS", 300))
    n_lim = int(env_num("BENCH_BYTES_LIMITLESS", 0))
    seconds = env_num("BENCH_BYTES_SECONDS", 120)
    warmup = env_num("BENCH_BYTES_WARMUP", 30)
    mix = os.environ.get("BENCH_BYTES_MIX", "0.05:1.0,0.95:0.02")
    regimes = {"default": [], "mix": ["--change-mix", mix]}
    wanted = [r for r in os.environ.get("BENCH_BYTES_REGIMES", "default,mix").split(",") if r]
    workdir = Path(tempfile.mkdtemp(prefix="bytes-bench-"))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    load0 = os.getloadavg()
    t0 = time.monotonic()
    try:
        for regime in wanted:
            print(f"  {regime}: recording {n} instruments x {seconds:g} s, every_poll and changes side by side ...",
                  file=sys.stderr, flush=True)
            runs = record_regime(regime, regimes[regime], n, n_lim, seconds, workdir)
            for venue in ("polymarket", "limitless") if n_lim else ("polymarket",):
                key = regime if venue == "polymarket" else f"{regime}/limitless"
                results[key] = {mode: measure(data, venue, warmup, workdir / regime / f"{mode}-sizes")
                                for mode, data in runs.items()}
    finally:
        if os.environ.get("BENCH_BYTES_KEEP") == "1":
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load1 = os.getloadavg()
    print(f"bytes bench: {n} polymarket instruments{f' and {n_lim} limitless' if n_lim else ''} at 1 Hz, {seconds:g} s per regime, first {warmup:g} s left out; "
          f"regimes: default = --change-prob 0.3, mix = --change-mix {mix}; load {load0[0]:.2f} -> {load1[0]:.2f} "
          f"(2 cores), {time.monotonic() - t0:.0f} s")
    print(table(results))
    print("(B/ih = bytes per instrument-hour; x = how many times smaller than every_poll JSONL of the same regime)")
    target: dict[str, Any] = {}
    ok_all = True
    for regime, modes in results.items():
        base = modes["every_poll"]["bytes_per_ih"]["jsonl"]
        pq = modes["changes"]["bytes_per_ih"]["parquet"]
        ratio = base / pq if pq else float("inf")
        ok = ratio >= TARGET
        ok_all &= ok
        target[regime] = {"ratio": round(ratio, 1), "ok": ok}
        full = modes["changes"]["full_books"] / max(1, modes["changes"]["polls"])
        print(f"target {regime}: daily Parquet (changes) {ratio:.1f}x smaller than every_poll JSONL "
              f"(>= {TARGET:g}x): {'ok' if ok else 'MISSED'}; {100 * full:.0f} % of polls found a changed book")
    for regime, modes in results.items():
        for mode, r in modes.items():
            if not r["readback_ok"]:
                print(f"CHECK FAILED {regime}/{mode}: JSONL {r['polls']} polls, Parquet read back "
                      f"{r['parquet_polls']}, JSONL read back {r['jsonl_read_polls']}")
    out = {"bench": "bytes", "instruments": n, "limitless_instruments": n_lim, "seconds": seconds, "warmup_s": warmup, "mix": mix,
           "load": [round(load0[0], 2), round(load1[0], 2)], "target": target, "results": results}
    print(orjson.dumps(out).decode())
    return 0 if all(r["readback_ok"] for m in results.values() for r in m.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
