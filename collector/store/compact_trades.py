"""Compaction of one UTC day of a venue's trades: ``trades/date=D/`` -> ``trades_parquet/date=D/trades.parquet``.

Part of :func:`collector.store.compact.compact_day`, after the books (a day may have either alone).

* **What**: the day's ``trade`` records, each ``(venue, key)`` once (the first received: smallest
  ``ts_ms``, ties in file then line order), sorted by venue time (``ob_ts_ms``, else ``ts_ms``)
  then ``key``: the order :func:`collector.read.iter_trades` returns. Columns
  :data:`collector.store.parquet.TRADE_FIELDS` (prices, sizes and fees as doubles, as the books'
  Parquet stores them), zstd, ``ts_ms`` / ``ob_ts_ms`` delta-coded.
* **Verified** before it is trusted: written to a hidden temp name, then compared row for row
  with a fresh read and de-duplication of the JSONL (same count, same values, numbers compared
  as decimals), then fsync'ed and renamed into place, and ``trades_parquet/date=D/_verified.json``
  records what was compared (:mod:`collector.store.verified`).
* **The JSONL stays**: it is the only copy of the duplicates (which copy came from where) and of
  the stream's ``gap`` records, and retention only ever removes order-book JSONL. Readers take
  a compacted day's trades from the Parquet only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from collector.model.versions import check_schema_version
from collector.store import layout, verified
from collector.store.durable import clean_stale_tmp, new_tmp_path, replace_durably
from collector.store.files import jsonl_files, numbered_lines
from collector.store.parquet import (
    TRADE_FIXED,
    FieldTypes,
    parquet_rows_to_dicts,
    records_to_table,
    trade_schema,
)
from collector.store.verify import VerificationError, listing

__all__ = ["TradesReport", "compact_trades_day", "deduplicated", "verify_trades"]


@dataclass
class TradesReport:
    status: str = "pending"  # compacted | already | nothing | failed
    files: int = 0
    trades: int = 0  # in the Parquet (after de-duplication)
    duplicates: int = 0  # records dropped as a repeat of a key
    gaps: int = 0  # gap records (they stay in the JSONL)
    bad_lines: int = 0
    other_records: int = 0
    parquet_path: str | None = None
    parquet_bytes: int = 0
    verified: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loads(line: bytes) -> Any:
    return json.loads(line, parse_float=Decimal)  # exact: compared as decimals against the doubles


def _usable(rec: Any) -> bool:
    return (type(rec) is dict and rec.get("record_type") == "trade" and type(rec.get("ts_ms")) is int
            and type(rec.get("key")) is str and type(rec.get("instrument_id")) is str
            and (rec.get("ob_ts_ms") is None or type(rec.get("ob_ts_ms")) is int)
            and type(rec.get("price")) in (int, Decimal) and type(rec.get("size")) in (int, Decimal))


def _records(files: list[Path], rep: TradesReport | None) -> Iterator[tuple[int, dict]]:
    """``(seq, trade record)`` of the day's files, in file then line order."""
    for seq, line in numbered_lines(files):
        try:
            rec = _loads(line)
        except (ValueError, RecursionError):
            rec = None
        if type(rec) is dict:
            check_schema_version(rec, f"{files[seq >> 32]} line {(seq & 0xFFFFFFFF) + 1}")  # a newer collector's: refused
        if _usable(rec):
            yield seq, rec
        elif rep is not None:
            if type(rec) is dict and rec.get("record_type") == "gap":
                rep.gaps += 1
            elif type(rec) is dict and rec.get("record_type") not in (None, "trade"):
                rep.other_records += 1
            else:
                rep.bad_lines += 1


def _t(rec: dict) -> int:
    ob = rec.get("ob_ts_ms")
    return rec["ts_ms"] if ob is None else ob


def deduplicated(records: Iterator[tuple[int, dict]]) -> tuple[list[dict], int]:
    """``(records, duplicates dropped)``: the first received of each ``(venue, key)``, in
    ``(venue time, key)`` order (then capture order)."""
    recs = sorted(records, key=lambda x: (x[1]["ts_ms"], x[0]))
    seen: set[tuple[Any, str]] = set()
    out = []
    for seq, r in recs:
        k = (r.get("venue"), r["key"])
        if k not in seen:
            seen.add(k)
            out.append((_t(r), r["key"], r["ts_ms"], seq, r))
    out.sort(key=lambda x: x[:4])
    return [x[4] for x in out], len(recs) - len(out)


def _writer_options(schema: pa.Schema, level: int) -> dict[str, Any]:
    # ids and labels repeat; keys, hashes and prices mostly do not; times grow (delta-coded)
    dict_cols = [n for n in ("record_type", "venue", "instrument_id", "side", "source") if n in schema.names]
    enc = {n: "DELTA_BINARY_PACKED" for n in ("ts_ms", "ob_ts_ms")}
    return {"compression": "zstd", "compression_level": level, "use_dictionary": dict_cols, "column_encoding": enc,
            "write_statistics": True}


def _norm(rec: dict) -> dict:
    out = {}
    for k, v in rec.items():
        if v is None:
            continue
        out[k] = Decimal(v) if type(v) is int and k in ("price", "size", "fee_rate_bps", "fee") else v
    return out


def verify_trades(files: list[Path], path: Path) -> int:
    """Compare a trades Parquet with a fresh read of the day's JSONL, row for row after
    de-duplication; the number of rows. Raises VerificationError."""
    want, _dups = deduplicated(_records(files, None))
    table = pq.read_table(path)
    if table.num_rows != len(want):
        raise VerificationError(f"trades parquet has {table.num_rows} rows, the JSONL {len(want)} trades")
    for i, (a, b) in enumerate(zip(want, parquet_rows_to_dicts(table, gaps=True, exact=True))):
        na, nb = _norm(a), _norm(b)
        if na != nb:
            diff = sorted(k for k in set(na) | set(nb) if na.get(k) != nb.get(k))
            raise VerificationError(f"trade {i} (key {a['key']!r}) differs in {diff[:5]}")
    return len(want)


def compact_trades_day(data_dir: Path, venue: str, date: str, level: int = 12) -> TradesReport:
    """Compact the day's trades (module doc). Raises OSError, VerificationError, ArrowException
    on failure (the caller reports it; the JSONL is never touched)."""
    rep = TradesReport()
    part = layout.partition_dir(data_dir, venue, layout.TRADES_STREAM, date)
    final = layout.trades_parquet_path(data_dir, venue, date)
    files = jsonl_files(part)
    if not files:
        rep.status = "already" if final.exists() else "nothing"
        rep.parquet_path = str(final) if final.exists() else None
        return rep
    before = listing(part)
    verified.clear_trades(data_dir, venue, date)
    rep.files = len(files)
    recs, rep.duplicates = deduplicated(_records(files, rep))
    rep.trades = len(recs)
    types = FieldTypes(TRADE_FIXED)
    for r in recs:
        types.add(r)
    schema = trade_schema(types.seen)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final)
    tmp = new_tmp_path(final)
    try:
        pq.write_table(records_to_table(recs, schema, gaps=True), tmp, **_writer_options(schema, level))
        del recs
        try:
            verify_trades(files, tmp)
        except VerificationError as e:
            with contextlib.suppress(OSError):
                verified.write_trades_failed(data_dir, venue, date, f"VerificationError: {e}")
            raise
        rep.verified = True
        replace_durably(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    rep.parquet_path, rep.parquet_bytes = str(final), final.stat().st_size
    verified.write_trades_verified(data_dir, venue, date, before, rep.trades, rep.duplicates, final)
    rep.status = "compacted"
    return rep
