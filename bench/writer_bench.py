"""Throughput of collector.store.writer.StreamWriter.write() with realistic ~1 KB order book lines.

Usage: .venv/bin/python bench/writer_bench.py [--lines N] [--size BYTES] [--dir DIR] [--compress]

Measures write() for N lines plus the final close() (flush + fsync), with the real clocks and
tick() called once per 1000 lines, like a busy poll loop would. Prints human lines, then one
JSON line with the results as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.store.files import iter_jsonl_lines  # noqa: E402
from collector.store.writer import StreamWriter  # noqa: E402


def make_lines(n_distinct: int, size: int) -> list[bytes]:
    """Order-book-like JSON lines padded to about ``size`` bytes."""
    out = []
    for i in range(n_distinct):
        rec = {
            "record_type": "orderbook",
            "schema_version": 1,
            "venue": "polymarket",
            "poll_key": f"{i:078d}",
            "instrument_id": f"polymarket:{i:078d}",
            "ts_ms": 1_764_065_400_000 + i,
            "ob_ts_ms": 1_764_065_399_000 + i,
            "bids": [[f"0.{40 - k:02d}", f"{100 + k * 7}.5"] for k in range(8)],
            "asks": [[f"0.{42 + k:02d}", f"{90 + k * 5}.25"] for k in range(8)],
            "best_bid": "0.4",
            "best_ask": "0.42",
            "mid": "0.41",
            "spread": "0.02",
        }
        line = orjson.dumps(rec)
        if len(line) < size:
            rec["pad"] = "x" * (size - len(line) - 9)
            line = orjson.dumps(rec)
        out.append(line)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024, help="approximate bytes per line")
    ap.add_argument("--dir", type=Path, default=None, help="data dir (default: a temp dir, removed)")
    ap.add_argument("--buffer", type=int, default=None, help="buffer_bytes (default: the writer's)")
    ap.add_argument("--compress", action="store_true", help="also time compress on a forced rotation")
    args = ap.parse_args()

    lines = make_lines(256, args.size)
    avg = sum(map(len, lines)) / len(lines) + 1
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        kw = {"buffer_bytes": args.buffer} if args.buffer else {}
        w = StreamWriter(Path(tmp), "polymarket", "orderbooks", fsync_interval_s=1.0, **kw)
        n = args.lines
        write, tick = w.write, w.tick
        t0 = time.perf_counter()
        for i in range(n):
            write(lines[i & 255])
            if i % 1000 == 999:
                tick()
        t_write = time.perf_counter() - t0
        path = w.path
        w.close()
        t_total = time.perf_counter() - t0
        st = w.stats
        assert st.records_written == n and st.records_dropped == 0, st
        result = {
            "bench": "writer",
            "lines": n,
            "avg_line_bytes": round(avg, 1),
            "seconds": round(t_total, 3),
            "lines_per_s": round(n / t_total),
            "mb_per_s": round(st.bytes_written / t_total / 1e6, 1),
            "write_only_lines_per_s": round(n / t_write),
            "fsyncs": st.fsyncs,
            "fsync_seconds_total": round(st.fsync_seconds_total, 3),
            "files_opened": st.files_opened,
            "buffer_bytes": w._buf_limit,
        }
        if args.compress and path is not None:
            from collector.store.compress import compress_file

            raw = path.stat().st_size
            t1 = time.perf_counter()
            zpath = compress_file(path)
            tc = time.perf_counter() - t1
            t2 = time.perf_counter()
            count = sum(1 for _ in iter_jsonl_lines(zpath))
            tr = time.perf_counter() - t2
            assert count == n, (count, n)
            result |= {
                "compress_mb_per_s": round(raw / tc / 1e6, 1),
                "compress_ratio": round(raw / zpath.stat().st_size, 1),
                "read_zst_lines_per_s": round(n / tr),
            }
    print(f"writer: {n} lines of ~{avg:.0f} B in {t_total:.2f} s "
          f"({result['lines_per_s']:,} lines/s, {result['mb_per_s']} MB/s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
