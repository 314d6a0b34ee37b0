"""Read throughput of recorded order books: plain JSONL vs zstd JSONL vs Parquet.

Usage: .venv/bin/python bench/read_bench.py [--minutes 120] [--pm-markets 30] [--ll-markets 10]
                                            [--dir DIR] [--repeat 3] [--no-duckdb]

Generates a realistic recording with the real writer (tests/datagen.py: both venues, 23:00 ->
01:00 UTC by default, rotated files, torn lines, gaps), then makes three copies of its
order books: every file plain ``.jsonl``, every file ``.jsonl.zst``, and every day compacted to
Parquet (``collector.store.compact``). For each it times ``collector.read.load_books`` over everything
(dicts ordered by ``ts_ms``: parse, k-way merge, reorder) and, unless ``--no-duckdb``, a DuckDB
scan (``count(*)``, ``avg(mid)``, ``sum(len(bids))``) of the same files. Best of ``--repeat``.
Prints human lines, then one JSON line with the results as the last line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zstandard  # noqa: E402

from collector import read  # noqa: E402
from collector.store.compact import compact_day  # noqa: E402
from collector.store.compress import compress_file  # noqa: E402
from collector.store.layout import date_partitions  # noqa: E402
from tests.datagen import generate  # noqa: E402


def _size(root: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(pattern) if p.is_file())


def make_variants(src: Path, dst: Path, now_ms: int) -> dict[str, Path]:
    """Three copies of the order books of ``src``: plain, zstd, parquet."""
    out = {}
    for name in ("jsonl", "zstd", "parquet"):
        d = dst / name
        shutil.copytree(src, d)
        for venue_dir in d.iterdir():
            for f in sorted((venue_dir / "orderbooks").rglob("*.jsonl*")):
                if name == "jsonl" and f.name.endswith(".zst"):
                    plain = f.with_name(f.name[:-4])
                    if not plain.exists():
                        with open(f, "rb") as fi:
                            plain.write_bytes(zstandard.ZstdDecompressor().stream_reader(fi).read())
                    f.unlink()
                elif name != "jsonl" and f.name.endswith(".jsonl"):
                    if f.with_name(f.name + ".zst").exists():
                        f.unlink()  # crash-during-compression leftover
                    else:
                        compress_file(f)
        if name == "parquet":
            for venue_dir in d.iterdir():
                for date in date_partitions(venue_dir / "orderbooks"):
                    rep = compact_day(d, venue_dir.name, date, keep_jsonl=False, now_ms=now_ms)
                    assert rep.ok and not rep.kept_jsonl, rep.summary_line()
        out[name] = d
    return out


def time_read(d: Path, repeat: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        books = read.load_books(d)
        el = time.perf_counter() - t
        n = len(books)
        del books
        best = min(best, el)
    return best, n


def time_duckdb(d: Path, kind: str, repeat: int) -> tuple[float, int]:
    import duckdb

    if kind == "parquet":
        q = f"""SELECT count(*), avg(mid), sum(len(bid_prices))
                FROM read_parquet('{d}/*/orderbooks_parquet/date=*/orderbooks.parquet')"""
    else:
        q = f"""SELECT count(*), avg(mid), sum(len(bids))
                FROM read_json('{d}/*/orderbooks/date=*/*.jsonl*', format='newline_delimited',
                               ignore_errors=true,
                               columns={{'record_type': 'VARCHAR', 'mid': 'DOUBLE', 'bids': 'DOUBLE[][]'}})
                WHERE record_type = 'orderbook'"""
    best, n = float("inf"), 0
    for _ in range(repeat):
        con = duckdb.connect()
        t = time.perf_counter()
        n = con.sql(q).fetchall()[0][0]
        best = min(best, time.perf_counter() - t)
        con.close()
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=120.0, help="recorded span (from 23:00 UTC)")
    ap.add_argument("--pm-markets", type=int, default=30, help="Polymarket markets (2 books each)")
    ap.add_argument("--ll-markets", type=int, default=10, help="Limitless markets")
    ap.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-duckdb", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="read-bench-")) if args.dir is None else args.dir
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        gen = generate(
            tmp / "src",
            duration_s=args.minutes * 60,
            markets={"polymarket": args.pm_markets, "limitless": args.ll_markets},
            interval_s={"polymarket": 1.0, "limitless": 2.0},
        )
        print(f"generated {gen.n_books:,} books in {time.perf_counter() - t:.1f}s under {tmp}", flush=True)
        t = time.perf_counter()
        variants = make_variants(gen.data_dir, tmp, now_ms=gen.end_ms + 3 * 86_400_000)
        print(f"made jsonl / zstd / parquet copies in {time.perf_counter() - t:.1f}s", flush=True)
        results: dict[str, dict] = {}
        for kind, d in variants.items():
            pattern = "*.parquet" if kind == "parquet" else "*.jsonl*"
            size = _size(d, pattern) if kind != "parquet" else _size(d, "*.parquet")
            el, n = time_read(d, args.repeat)
            assert n == gen.n_books, (kind, n, gen.n_books)
            r = {"records": n, "bytes": size, "bytes_per_record": round(size / n, 1), "read_s": round(el, 3), "records_per_s": round(n / el)}
            line = f"{kind:8s} collector.read: {n / el:>10,.0f} records/s  ({n:,} records in {el:.2f}s; {size / 1e6:,.1f} MB, {size / n:,.0f} B/record)"
            if not args.no_duckdb:
                del_, dn = time_duckdb(d, kind, args.repeat)
                r.update({"duckdb_s": round(del_, 3), "duckdb_records_per_s": round(dn / del_)})
                line += f"; duckdb scan {dn / del_:,.0f} records/s"
            print(line, flush=True)
            results[kind] = r
        print(json.dumps({"bench": "read", "books": gen.n_books, "minutes": args.minutes, "results": results}))
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
