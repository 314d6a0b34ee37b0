"""Records of one file, filtered by time, instrument and record type: JSONL and Parquet.

Each yields ``(ts_ms, seq, record)``, ``seq`` = file index << 32 | line (or row) number, the
tie-breaker of the merge. JSONL lines are pre-filtered on the raw bytes before they are parsed;
lines inside one file may be out of ``ts_ms`` order by up to :data:`REORDER_MS` (concurrent
requests), which :func:`reorder` repairs. pyarrow is imported only when a Parquet file is read.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import orjson

from collector.model.versions import SCHEMA_VERSION, check_schema_version
from collector.read.datafiles import DataFile
from collector.read.progress import ReadStats
from collector.store.changes import BOOK, BOOK_PREFIX, MARKER, Expander
from collector.store.files import IID_RE, TS_RE, file_lines
from collector.store.layout import PARQUET_GAPS

__all__ = ["REORDER_MS", "expand_instruments", "jsonl_records", "loader", "parquet_records", "reorder"]

log = logging.getLogger(__name__)

REORDER_MS = 10_000  # lines inside one file may be out of ts_ms order by this much


def loader(exact: bool) -> Callable[[bytes], Any]:
    if not exact:
        return orjson.loads

    def loads(b: bytes) -> Any:
        try:
            return json.loads(b, parse_float=Decimal)
        except RecursionError:  # a deeply nested junk line: skipped like any invalid line
            raise ValueError("line nested too deeply") from None

    return loads


def expand_instruments(instruments: Iterable[str] | str | None, venues: Sequence[str]) -> set[str] | None:
    """Instrument ids from ids or poll keys (``"123"`` -> ``"polymarket:123"`` for each venue)."""
    if instruments is None:
        return None
    if isinstance(instruments, str):
        instruments = [instruments]
    out: set[str] = set()
    for s in instruments:
        if any(s.startswith(v + ":") for v in venues):
            out.add(s)
        else:
            out.update(f"{v}:{s}" for v in venues)
    return out


def jsonl_records(
    df: DataFile,
    fidx: int,
    start_ms: int | None,
    end_ms: int | None,
    ids: set[str] | None,
    types: set[str] | None,
    null_ids: bool,
    loads: Callable[[bytes], Any],
    stats: ReadStats | None,
) -> Iterator[tuple[int, int, dict]]:
    """``(ts_ms, seq, record)`` of one JSONL file, filtered, in file order."""
    inside = (start_ms is None or df.lo_ms >= start_ms) and (end_ms is None or df.hi_ms <= end_ms)
    base = fidx << 32
    n = bad = 0
    iid_re, ts_re = IID_RE.search, TS_RE.search
    # Books come back whole: an unchanged record is expanded from its instrument's last full book
    # in this file, which may lie before the range (remembered unparsed).
    exp = Expander(loads) if types is None or BOOK in types else None
    # a record of type T contains the token "T" (any JSON formatting): a cheap pre-filter
    tokens = [f'"{t}"'.encode() for t in (*types, MARKER) if exp is not None or t != MARKER] if types is not None else None
    for n, line in enumerate(file_lines(df.path), 1):  # noqa: B007 - n counts lines
        if tokens is not None and not any(t in line for t in tokens):
            continue
        m = None
        if ids is not None:
            m = iid_re(line)
            if m is not None and m.group(1).decode("utf-8", "replace") not in ids:
                continue
        if not inside:
            mt = ts_re(line)
            if mt is not None:
                t = int(mt.group(1))
                if (start_ms is not None and t < start_ms) or (end_ms is not None and t >= end_ms):
                    if exp is not None and line.startswith(BOOK_PREFIX) and (m := m or iid_re(line)) is not None:
                        exp.remember_line(m.group(1).decode("utf-8", "replace"), line)
                    continue
        try:
            rec = loads(line)
        except ValueError:
            bad += 1
            continue
        if type(rec) is not dict:
            bad += 1
            continue
        ts = rec.get("ts_ms")
        if type(ts) is not int:
            bad += 1
            continue
        sv = rec.get("schema_version")
        if type(sv) is int and sv > SCHEMA_VERSION:
            check_schema_version(rec, f"{df.path} line {n}")  # raises: a newer collector wrote it
        if exp is not None and (rec := exp.feed(rec)) is None:
            continue
        if types is not None and rec.get("record_type") not in types:
            continue
        if ids is not None:
            iid = rec.get("instrument_id")
            if iid not in ids and not (iid is None and null_ids):
                continue
        if (start_ms is not None and ts < start_ms) or (end_ms is not None and ts >= end_ms):
            continue
        yield ts, base | n, rec
    orphans = exp.orphans if exp is not None else 0
    if orphans:
        log.warning("%s: %d unchanged record(s) without a book before them in the file, skipped", df.path, orphans)
    if stats is not None:
        stats.lines += n
        stats.bad_lines += bad + orphans
    if bad:
        log.warning("%s: %d line(s) not valid JSON records, skipped", df.path, bad)


def reorder(items: Iterator[tuple[int, int, dict]], window_ms: int) -> Iterator[tuple[int, int, dict]]:
    """Sort a stream whose items are out of ts order by at most ``window_ms``."""
    heap: list[tuple[int, int, dict]] = []
    push, pop = heapq.heappush, heapq.heappop
    hi = -(1 << 62)
    for it in items:
        push(heap, it)
        if it[0] > hi:
            hi = it[0]
        limit = hi - window_ms
        while heap[0][0] < limit:
            yield pop(heap)
    while heap:
        yield pop(heap)


def parquet_records(
    df: DataFile,
    fidx: int,
    start_ms: int | None,
    end_ms: int | None,
    ids: set[str] | None,
    types: set[str] | None,
    null_ids: bool,
    exact: bool,
    stats: ReadStats | None,
) -> Iterator[tuple[int, int, dict]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from collector.store.parquet import parquet_rows_to_dicts, schema_json_columns

    gaps = df.stream == PARQUET_GAPS
    if types is not None and ("gap" if gaps else "orderbook") not in types:
        return
    if ids is not None and not ids and not (gaps and null_ids):
        return
    filters = []
    if start_ms is not None:
        filters.append(("ts_ms", ">=", start_ms))
    if end_ms is not None:
        filters.append(("ts_ms", "<", end_ms))
    pf = pq.ParquetFile(df.path)
    jcols = schema_json_columns(pf.schema_arrow)
    if ids is not None and not (gaps and null_ids):
        filters.append(("instrument_id", "in", sorted(ids)))
    table = pq.read_table(df.path, filters=filters or None)
    if ids is not None and gaps and null_ids:
        col = table.column("instrument_id")
        table = table.filter(pc.or_(pc.is_in(col, value_set=_pa_strings(ids)), pc.is_null(col)))
    if stats is not None:
        stats.parquet_rows += table.num_rows
    if "schema_version" in table.column_names and table.num_rows:
        top = pc.max(table.column("schema_version")).as_py()
        if top is not None:
            check_schema_version({"record_type": "gap" if gaps else "orderbook", "schema_version": top}, df.path)
    base = fidx << 32
    if not gaps and "record_type" in table.column_names and pc.any(pc.equal(table.column("record_type"), MARKER)).as_py():
        recs = _expanded(df, table, start_ms, exact, jcols)
        recs.sort(key=lambda r: r["ts_ms"])  # stable: within one ts_ms the file order stays
        for n, rec in enumerate(recs):
            yield rec["ts_ms"], base | n, rec
        return
    # stable sort by ts_ms: the file is sorted by (instrument_id, ts_ms)
    table = table.take(pc.sort_indices(table, sort_keys=[("ts_ms", "ascending")]))
    for n, rec in enumerate(parquet_rows_to_dicts(table, gaps=gaps, exact=exact, json_columns=jcols)):
        yield rec["ts_ms"], base | n, rec


def _expanded(df: DataFile, table: Any, start_ms: int | None, exact: bool, jcols: set[str]) -> list[dict]:
    """A Parquet book table's rows (in file order: instrument, ts_ms) with every unchanged row
    expanded; the book an instrument's first row in the range stands for is looked up before it."""
    import pyarrow.parquet as pq

    from collector.store.parquet import parquet_rows_to_dicts

    rows = list(parquet_rows_to_dicts(table, exact=exact, json_columns=jcols))
    need: set[str] = set()
    prev = None
    for r in rows:
        iid = r.get("instrument_id")
        if iid != prev and r.get("record_type") == MARKER:
            need.add(iid)
        prev = iid
    exp = Expander()
    if need and start_ms is not None:
        filters = [("instrument_id", "in", sorted(need)), ("record_type", "=", BOOK), ("ts_ms", "<", start_ms)]
        for b in parquet_rows_to_dicts(pq.read_table(df.path, filters=filters), exact=exact, json_columns=jcols):
            exp.remember(b)  # the last one per instrument wins: rows are in ts_ms order
    out = []
    for r in rows:
        if (r := exp.feed(r)) is not None:
            out.append(r)
    if exp.orphans:
        log.warning("%s: %d unchanged row(s) without a book before them, skipped", df.path, exp.orphans)
    return out


def _pa_strings(ids: Iterable[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(ids), pa.string())
