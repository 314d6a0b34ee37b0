"""The daily Parquet layout: bytes and query times of writer options over the same day of books
(``make bench-parquet``).

The day is made by fast-forwarding the simulator in process: ``SimState`` books (the same walk
and change clock as ``collector sim``, ``--change-prob 0.3`` or a ``--change-mix``) are read at
each poll time as the REST bytes ``/books`` serves and normalized by the Polymarket client's
``book_record``: N instruments polled at 1 Hz in batches of 50, one made-up latency per batch
request (50-60 ms, like the sim of bench/bytes_bench.py). The rows are what compaction makes of
them (each record as its JSON line reads back, ``encode_changes``, ``records_to_table``, sorted by
instrument and time), without its JSONL round trip and verification, which for a day this size
would take many passes (bench/bytes_bench.py runs the real compaction). The table is then
written with each layout below: same rows, same order, only the writer options differ.

Per layout: file size, the columns that take the most room, and best-of-R times of

* ``asof_sql``: DuckDB, one instrument's book at a time: the last ``orderbook`` row with
  ``ts_ms <= t`` plus the per-poll fields of its last poll (the file filtered on
  ``instrument_id`` and ``ts_ms``);
* ``asof_view``: the same through the ``parquet_books`` view of docs/reading-data.md;
* ``scan``: DuckDB full-day scan, ``count(*)``, ``avg(mid)``, ``sum(len(bid_prices))`` over the
  view (every poll expanded);
* ``ohlc``: the per-minute OHLC of the mid of every instrument over the view;
* ``books_at`` / ``iter_books``: ``collector.read`` (Python) for one instrument: its book at
  ``t``, and all its polls of the day.

Prints a table (best runs), the medians of the old and the chosen layout, their columns' sizes,
and whether a query got slower (best and median both more than 10 % slower), then one JSON line.

Environment (all optional):
  BENCH_PQ_INSTRUMENTS=300   instruments (Polymarket tokens)
  BENCH_PQ_HOURS=2           hours recorded (from 00:00 UTC, at most 24)
  BENCH_PQ_MIX=              a --change-mix (empty: --change-prob 0.3)
  BENCH_PQ_REPEAT=5          runs per query (best kept)
  BENCH_PQ_LAYOUTS=...       comma-separated subset of the layouts below
  BENCH_PQ_KEEP=1            keep the temp dir (path printed)
  BENCH_PQ_DAY=path.parquet  the day to use: read when the file exists (any book Parquet, e.g. a
                             real compacted day), else made as above and saved there

    .venv/bin/python bench/parquet_bench.py
"""

from __future__ import annotations

import calendar
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector import read  # noqa: E402
from collector.model.records import Instrument  # noqa: E402
from collector.sim.clock import parse_change_mix  # noqa: E402
from collector.sim.state import SimState  # noqa: E402
from collector.store import compact as cm  # noqa: E402
from collector.store import layout  # noqa: E402
from collector.store.changes import encode_changes  # noqa: E402
from collector.store.parquet import (  # noqa: E402
    BOOK_FIXED,
    FieldTypes,
    book_schema,
    records_to_table,
)
from collector.venues.polymarket_book import book_record  # noqa: E402

VENUE = "polymarket"
DAY = "2026-01-10"
DAY0_MS = calendar.timegm((2026, 1, 10, 0, 0, 0)) * 1000
BATCH = 50


def env_num(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


# --------------------------------------------------------------------------- the day


def record_day(n: int, hours: float, mix: str | None) -> pa.Table:
    """Fast-forward the sim over ``hours`` of ``n`` instruments: the day's table in the Parquet
    layout. Rows are made as compaction makes them: each poll's
    ``BookRecord`` as its JSON line reads back, stored as changes, sorted by instrument and time.
    Books are independent, so the day is made one market at a time (its tokens share a book)."""
    t0 = DAY0_MS / 1000
    st = SimState(seed=1, markets=max(50, int(n * 0.6) + 20), epoch=t0, tick_s=1.0, change_prob=0.3,
                  t0=t0, change_mix=parse_change_mix(mix))
    pm = st.polymarket
    insts: list[tuple[Instrument, int]] = []  # (instrument, its batch)
    for tok, (m, side) in pm.tokens.items():
        if m.live and len(insts) < n:
            outcome = m.outcomes[side] if isinstance(m.outcomes, list) else ("Yes", "No")[side]
            inst = Instrument(venue=VENUE, poll_key=tok, market_id=m.condition_id, outcome=outcome)
            insts.append((inst, len(insts) // BATCH))
    seconds = int(hours * 3600)
    rng = random.Random(5)
    n_batches = (len(insts) + BATCH - 1) // BATCH
    phases = [rng.randrange(1000) for _ in range(n_batches)]
    # one latency per batch request, as the poller's POST /books
    lat = [[round(rng.uniform(50.0, 60.0), 3) for _ in range(seconds)] for _ in range(n_batches)]
    by_market: dict[str, list[tuple[Instrument, int]]] = {}
    for inst, b in insts:
        by_market.setdefault(inst.market_id, []).append((inst, b))
    tables: dict[str, pa.Table] = {}
    schema = None
    for group in by_market.values():
        rows: dict[str, list[dict]] = {i.instrument_id: [] for i, _ in group}
        for s in range(seconds):
            # the book is read in time order (a lazy book cannot go back)
            for inst, b in sorted(group, key=lambda x: phases[x[1]]):
                sent = DAY0_MS + s * 1000 + phases[b]
                la = lat[b][s]
                rec = book_record(inst, orjson.loads(pm.book_bytes(inst.poll_key, sent)), True, sent + int(la), la)
                rows[inst.instrument_id].append(orjson.loads(rec.to_json()))
        for iid, recs in rows.items():
            if schema is None:
                types = FieldTypes(BOOK_FIXED)
                for r in recs:
                    types.add(r)
                schema = book_schema(types.seen)
            tables[iid] = records_to_table(list(encode_changes(recs)), schema)
    return pa.concat_tables([tables[k] for k in sorted(tables)])


# --------------------------------------------------------------------------- layouts

STRINGS = ("record_type", "venue", "instrument_id", "poll_key", "market_id", "outcome", "hash", "source")
# the writer options of compaction before this bench tuned them
BEFORE: dict[str, Any] = {"compression": "zstd", "compression_level": 6, "use_dictionary": True, "row_group_size": 100_000}


def layouts(table: pa.Table) -> dict[str, dict[str, Any]]:
    names = table.column_names
    doubles = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    delta = {"ts_ms": "DELTA_BINARY_PACKED", "ob_ts_ms": "DELTA_BINARY_PACKED"}
    bss = {c: "BYTE_STREAM_SPLIT" for c in doubles}
    strings = [c for c in STRINGS if c in names]
    lists = ("bid_prices", "bid_sizes", "ask_prices", "ask_sizes")
    chosen = cm.writer_options(table.schema) | {"row_group_size": cm.ROW_GROUP_ROWS}
    before = {**BEFORE, "sorting_columns": chosen["sorting_columns"]}
    return {
        "before": before,
        "before+zstd9": {**before, "compression_level": 9},
        "before+zstd15": {**before, "compression_level": 15},
        "dict_strings_only": {**before, "use_dictionary": strings},
        "plain_lists": {**before, "use_dictionary": [c for c in names if c not in lists]},
        "delta_ts": {**before, "use_dictionary": [c for c in names if c not in delta], "column_encoding": delta},
        "hash_delta_bytes": {**before, "use_dictionary": [c for c in names if c != "hash"],
                             "column_encoding": {"hash": "DELTA_BYTE_ARRAY"}},
        "bss_doubles": {**before, "use_dictionary": [c for c in names if c not in bss], "column_encoding": bss},
        "chosen+zstd6": {**chosen, "compression_level": 6},
        "chosen+zstd12": {**chosen, "compression_level": 12},
        "chosen+zstd19": {**chosen, "compression_level": 19},
        "chosen+rg25k": {**chosen, "row_group_size": 25_000},
        "chosen+rg250k": {**chosen, "row_group_size": 250_000},
        "chosen": chosen,
        "chosen+ts_first_sort": {**chosen, "_sort": [("ts_ms", "ascending"), ("instrument_id", "ascending")]},
        "chosen+hash_binary20": {**chosen, "_hash_binary": True},
    }


def write_layout(table: pa.Table, path: Path, opts: dict[str, Any]) -> None:
    opts = dict(opts)
    sort = opts.pop("_sort", None)
    if sort is not None:
        table = table.sort_by(sort)
    if opts.pop("_hash_binary", False):  # size only: the readers would need to turn it back to hex
        i = table.schema.get_field_index("hash")
        h = pa.array([None if x is None else bytes.fromhex(x) for x in table.column(i).to_pylist()], pa.binary(20))
        table = table.set_column(i, "hash", h)
        opts["column_encoding"] = {k: v for k, v in opts.get("column_encoding", {}).items() if k != "hash"}
    rg = opts.pop("row_group_size")
    path.parent.mkdir(parents=True, exist_ok=True)
    opts.setdefault("write_statistics", True)
    pq.write_table(table, path, row_group_size=rg, **opts)


def column_sizes(path: Path) -> dict[str, int]:
    md = pq.ParquetFile(path).metadata
    out: dict[str, int] = {}
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            name = col.path_in_schema.split(".")[0]
            out[name] = out.get(name, 0) + col.total_compressed_size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- queries


def view_sql(glob: str) -> str:
    """The parquet_books view of docs/reading-data.md over ``glob``."""
    return f"""CREATE OR REPLACE VIEW parquet_books AS
SELECT * EXCLUDE (book_no) REPLACE (
       'orderbook' AS record_type,
       first_value(poll_key) OVER w AS poll_key, first_value(market_id) OVER w AS market_id,
       first_value(outcome) OVER w AS outcome,
       first_value(bid_prices) OVER w AS bid_prices, first_value(bid_sizes) OVER w AS bid_sizes,
       first_value(ask_prices) OVER w AS ask_prices, first_value(ask_sizes) OVER w AS ask_sizes,
       first_value(best_bid) OVER w AS best_bid, first_value(best_ask) OVER w AS best_ask,
       first_value(mid) OVER w AS mid, first_value(spread) OVER w AS spread,
       first_value(tick_size) OVER w AS tick_size, first_value(source) OVER w AS source)
FROM (SELECT *, count(*) FILTER (WHERE record_type = 'orderbook') OVER (
             PARTITION BY venue, date, instrument_id ORDER BY ts_ms ROWS UNBOUNDED PRECEDING) AS book_no
      FROM read_parquet('{glob}', hive_partitioning = true))
WHERE book_no > 0
WINDOW w AS (PARTITION BY venue, date, instrument_id, book_no ORDER BY ts_ms)"""


def queries(path: Path, iid: str, t: int) -> dict[str, str]:
    f = str(path)
    return {
        "asof_sql": f"""
WITH b AS (SELECT * FROM read_parquet('{f}')
           WHERE instrument_id = '{iid}' AND ts_ms <= {t} AND record_type = 'orderbook'
           ORDER BY ts_ms DESC LIMIT 1),
     p AS (SELECT ts_ms, ob_ts_ms, hash, latency_ms FROM read_parquet('{f}')
           WHERE instrument_id = '{iid}' AND ts_ms <= {t} ORDER BY ts_ms DESC LIMIT 1)
SELECT p.ts_ms, p.ob_ts_ms, p.hash, p.latency_ms, b.best_bid, b.best_ask, b.bid_prices, b.ask_sizes FROM b, p""",
        "asof_view": f"""SELECT ts_ms, best_bid, best_ask, bid_prices FROM parquet_books
WHERE instrument_id = '{iid}' AND ts_ms <= {t} ORDER BY ts_ms DESC LIMIT 1""",
        "scan": "SELECT count(*), avg(mid), sum(len(bid_prices)) FROM parquet_books",
        "ohlc": """SELECT count(*) FROM (
SELECT instrument_id, time_bucket(INTERVAL 1 MINUTE, epoch_ms(ts_ms)) AS minute,
       arg_min(mid, ts_ms) AS open, max(mid) AS high, min(mid) AS low, arg_max(mid, ts_ms) AS close,
       count(*) AS books
FROM parquet_books GROUP BY ALL)""",
    }


def best_of(fn, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def time_once(data: Path, date: str, iid: str, t: int) -> tuple[dict[str, float], dict[str, Any]]:
    """One run of every query on one layout: (seconds, answers)."""
    import duckdb

    path = layout.parquet_path(data, VENUE, date)
    con = duckdb.connect()
    con.execute(view_sql(str(data / "*" / "orderbooks_parquet" / "date=*" / "orderbooks.parquet")))
    times: dict[str, float] = {}
    answers: dict[str, Any] = {}
    for name, q in queries(path, iid, t).items():
        t0 = time.perf_counter()
        answers[name] = con.sql(q).fetchall()
        times[name] = time.perf_counter() - t0
    con.close()
    t0 = time.perf_counter()
    answers["books_at"] = read.books_at(data, VENUE, [iid], t)[iid]["ts_ms"]
    times["books_at"] = time.perf_counter() - t0
    day = layout.day_bounds(date)
    t0 = time.perf_counter()
    answers["iter_books"] = sum(1 for _ in read.iter_books(data, VENUE, [iid], *day))
    times["iter_books"] = time.perf_counter() - t0
    # sums of doubles in another order differ in the last bits
    answers["scan"] = [tuple(round(x, 9) if isinstance(x, float) else x for x in row) for row in answers["scan"]]
    return times, answers


def time_layouts(dirs: dict[str, Path], date: str, iid: str, t: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """``repeat`` times of each query and layout, the layouts taken in turn in each round (a load
    spike from elsewhere then hits them all alike). Warns when a layout answers differently."""
    runs: dict[str, dict[str, list[float]]] = {k: {} for k in dirs}
    ref: dict[str, Any] | None = None
    for _ in range(repeat):
        for name, d in dirs.items():
            times, answers = time_once(d, date, iid, t)
            for q, v in times.items():
                runs[name].setdefault(q, []).append(v)
            if ref is None:
                ref = answers
            elif answers != ref and "sort" not in name:
                print(f"WARNING: layout {name} answers differently: {answers} vs {ref}", file=sys.stderr)
    return runs


# --------------------------------------------------------------------------- main


def main() -> int:
    n = int(env_num("BENCH_PQ_INSTRUMENTS", 300))
    hours = min(24.0, env_num("BENCH_PQ_HOURS", 2))
    mix = os.environ.get("BENCH_PQ_MIX") or None
    repeat = int(env_num("BENCH_PQ_REPEAT", 5))
    tmp = Path(tempfile.mkdtemp(prefix="parquet-bench-"))
    load0 = os.getloadavg()
    try:
        t = time.perf_counter()
        saved = Path(os.environ["BENCH_PQ_DAY"]) if os.environ.get("BENCH_PQ_DAY") else None
        if saved is not None and saved.exists():
            table = pq.read_table(saved)
            origin = f"read from {saved}"
        else:
            table = record_day(n, hours, mix)
            origin = f"made in {time.perf_counter() - t:.0f} s"
            if saved is not None:
                saved.parent.mkdir(parents=True, exist_ok=True)
                write_layout(table, saved, {**BEFORE, "compression_level": 3})
        ids = sorted(set(table.column("instrument_id").to_pylist()))
        polls = table.num_rows
        ts = table.column("ts_ms")
        lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
        hours, date = (hi - lo) / 3_600_000, layout.utc_day(lo)
        full = sum(1 for x in table.column("record_type").to_pylist() if x == "orderbook")
        print(f"parquet bench: {len(ids)} instruments x {hours:.2g} h at 1 Hz ({polls:,} polls, "
              f"{100 * full / polls:.0f} % changed books, {origin}); best of {repeat}", flush=True)
        iid = ids[len(ids) // 2]
        t_q = lo + int((hi - lo) * 0.6) + 123
        wanted = [x for x in os.environ.get("BENCH_PQ_LAYOUTS", "").split(",") if x]
        results: dict[str, dict[str, Any]] = {}
        dirs: dict[str, Path] = {}
        for name, opts in layouts(table).items():
            if wanted and name not in wanted and name not in ("before", "chosen"):
                continue
            d = tmp / name
            path = layout.parquet_path(d, VENUE, date)
            write_layout(table, path, opts)
            size = path.stat().st_size
            results[name] = {"bytes": size, "bytes_per_poll": round(size / polls, 2), "_columns": column_sizes(path)}
            if "binary" not in name:  # its hash column is not what the readers expect
                dirs[name] = d
        for name, runs in time_layouts(dirs, date, iid, t_q, repeat).items():
            results[name] |= {k: round(min(v) * 1000, 1) for k, v in runs.items()}
            results[name] |= {f"{k}_median": round(statistics.median(v) * 1000, 1) for k, v in runs.items()}
        print(table_text(results))
        for name in ("before", "chosen"):
            cols = results[name]["_columns"]
            print(f"columns ({name}), kB: " + ", ".join(f"{k} {v / 1e3:,.0f}" for k, v in cols.items()))
        b, c = results["before"], results["chosen"]
        # slower only when both the best and the median run are: one of them alone is the load
        qs = ("asof_sql", "asof_view", "scan", "ohlc", "books_at", "iter_books")
        slower = [k for k in qs if c[k] > b[k] * 1.10 and c[f"{k}_median"] > b[f"{k}_median"] * 1.10]
        print("medians, ms: " + "; ".join(f"{q} {b[q + '_median']:,.1f} -> {c[q + '_median']:,.1f}" for q in qs))
        print(f"chosen vs before: {b['bytes'] / c['bytes']:.2f}x smaller; "
              + ("no query more than 10 % slower" if not slower else f"slower: {', '.join(slower)}"))
        load1 = os.getloadavg()
        print(f"load {load0[0]:.2f} -> {load1[0]:.2f} (2 cores)")
        out = {"bench": "parquet", "instruments": len(ids), "hours": round(hours, 3), "polls": polls, "mix": mix,
               "changed_share": round(full / polls, 3), "load": [round(load0[0], 2), round(load1[0], 2)],
               "results": {k: {kk: vv for kk, vv in v.items() if kk != "_columns"} for k, v in results.items()},
               "columns": {k: results[k]["_columns"] for k in ("before", "chosen")}}
        print(orjson.dumps(out).decode())
    finally:
        if os.environ.get("BENCH_PQ_KEEP") == "1":
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def table_text(results: dict[str, dict[str, Any]]) -> str:
    cols = ("asof_sql", "asof_view", "scan", "ohlc", "books_at", "iter_books")
    head = f"{'layout':<24}{'MB':>8}{'B/poll':>8}" + "".join(f"{c + ' ms':>14}" for c in cols)
    out = [head, "-" * len(head)]
    for name, r in results.items():
        out.append(f"{name:<24}{r['bytes'] / 1e6:>8.2f}{r['bytes_per_poll']:>8.2f}"
                   + "".join(f"{r[c]:>14,.1f}" if c in r else f"{'-':>14}" for c in cols))
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
