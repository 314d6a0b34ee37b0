"""Compaction's safety checks: the Parquet of a day equals a fresh read of its JSONL, record for
record, and the day's JSONL listing did not change while it was compacted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from collector.store import layout
from collector.store.changes import Expander, expanded_lines
from collector.store.files import jsonl_files
from collector.store.parquet import parquet_rows_to_dicts, schema_json_columns

__all__ = ["VerificationError", "listing", "listing_changed", "verify_parquet"]


class VerificationError(Exception):
    pass


def listing(part: Path) -> dict[str, tuple[str, int]]:
    """``{base name: (kind, size)}`` of a partition (base name without ``.zst``)."""
    out = {}
    for p in jsonl_files(part):
        base = layout.base_name(p.name)
        try:
            out[base] = ("zst" if layout.is_compressed(p.name) else "jsonl", p.stat().st_size)
        except OSError:
            out[base] = ("gone", -1)
    return out


def listing_changed(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> str | None:
    if set(before) != set(after):
        return f"files appeared or vanished during compaction ({len(before)} -> {len(after)})"
    for k, (kind, size) in before.items():
        k2, s2 = after[k]
        if kind == k2 and size != s2:
            return f"{k} changed size during compaction"
        if kind == "zst" and k2 != "zst":
            return f"{k} changed during compaction"
    return None


def _norm(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if v is not None}


def verify_parquet(
    files: list[Path], ranges: list[list[str]], books_path: Path, gaps_path: Path | None, n_books: int, n_gaps: int
) -> None:
    """Compare the Parquet file(s) with a fresh read of the JSONL, record for record."""
    pf = pq.ParquetFile(books_path)
    if pf.metadata.num_rows != n_books:
        raise VerificationError(f"parquet has {pf.metadata.num_rows} books, the JSONL {n_books}")
    jcols = schema_json_columns(pf.schema_arrow)

    def parquet_rows() -> Iterator[dict]:
        exp = Expander()  # rows are in (instrument, ts_ms) order: a marker's book is the row before
        for batch in pf.iter_batches(batch_size=50_000):
            for rec in parquet_rows_to_dicts(pa.Table.from_batches([batch]), json_columns=jcols):
                full = exp.feed(rec)
                if full is None:
                    raise VerificationError(f"parquet unchanged row {rec.get('instrument_id')} has no book before it")
                yield full

    prow = parquet_rows()
    seen = 0
    jgaps: list[tuple[int, int, dict]] = []
    for ri, ids in enumerate(ranges):
        want = set(ids)
        want_b = {i.encode() for i in ids}
        rows = []
        # another range's books are skipped unparsed (the first pass also collects the gaps)
        for seq, rec in expanded_lines(files, want_b, gaps_pass=ri == 0):
            if rec is None:
                continue
            rt = rec.get("record_type")
            if type(rec.get("ts_ms")) is not int:
                continue  # compaction counted it as a bad line and left it out
            if rt == "orderbook" and rec.get("instrument_id") in want:
                rows.append((rec["instrument_id"], rec["ts_ms"], seq, rec))
            elif rt == "gap" and ri == 0:
                jgaps.append((rec["ts_ms"], seq, rec))
        rows.sort(key=lambda x: (x[0], x[1], x[2]))
        for iid, ts, _seq, rec in rows:
            got = next(prow, None)
            if got is None:
                raise VerificationError(f"parquet ends before the JSONL at {iid} ts_ms={ts}")
            a, b = _norm(rec), _norm(got)
            if a != b:
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                raise VerificationError(f"record {iid} ts_ms={ts} differs in {diff[:5]}")
            seen += 1
    if next(prow, None) is not None or seen != n_books:
        raise VerificationError(f"parquet holds more books than the JSONL ({seen} compared)")
    jgaps.sort(key=lambda x: (x[0], x[1]))
    if len(jgaps) != n_gaps:
        raise VerificationError(f"{n_gaps} gaps written, the JSONL has {len(jgaps)}")
    if gaps_path is not None:
        gt = pq.read_table(gaps_path)
        pg = list(parquet_rows_to_dicts(gt, gaps=True, json_columns=schema_json_columns(gt.schema)))
        if len(pg) != len(jgaps):
            raise VerificationError(f"gaps parquet has {len(pg)} rows, the JSONL {len(jgaps)}")
        for (ts, _s, rec), got in zip(jgaps, pg):
            if _norm(rec) != _norm(got):
                raise VerificationError(f"gap at ts_ms={ts} differs")
