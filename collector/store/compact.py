"""Compaction: one UTC day of a venue's order-book JSONL -> one verified, sorted Parquet file.

``compact_day(data_dir, venue, "2026-01-10", keep_jsonl=False)`` reads every file of
``<venue>/orderbooks/date=2026-01-10/`` (``.jsonl`` and ``.jsonl.zst``; the ``.zst`` when both
exist; torn last lines skipped) and writes

* ``<venue>/orderbooks_parquet/date=2026-01-10/orderbooks.parquet``: every ``orderbook`` record,
  sorted by ``instrument_id`` then ``ts_ms`` (stable: file then line order for equal keys), zstd,
  dictionary-encoded strings, statistics per row group (so DuckDB/polars skip row groups by
  instrument and time), ``sorting_columns`` metadata. Columns: every scalar field of the records
  (``ts_ms``, ``ob_ts_ms``, ``best_bid``, ``mid``, ``hash``, ``latency_ms``, venue extras, ...) and
  the levels as four list columns ``bid_prices``, ``bid_sizes``, ``ask_prices``, ``ask_sizes``
  (``list<double>``, best first). Numbers are doubles, ints int64, flags bool; a field of an
  unknown shape (object, list, mixed types) is stored as JSON text and named in the schema
  metadata key ``collector.json_columns`` (``collector.read.books`` decodes it).
* ``<venue>/gaps_parquet/date=2026-01-10/gaps.parquet``: the ``gap`` records, sorted by
  ``ts_ms`` (only when the day has gaps). A separate file keeps the book file's schema tight.

Safety, in this order:

1. The day must be over: ``now >= end of day + grace_s`` (default 15 min), so the writer has
   rotated (and compressed) the day's last files. Today's and future days are refused.
2. Files are written to hidden temp names, then **verified record for record** against a fresh
   read of the JSONL: same number of books and gaps, and for each position in
   ``(instrument_id, ts_ms)`` order the same values (the Parquet row read back through
   ``collector.read.books`` equals the JSONL record, absent and null fields being the same).
3. Only then are they fsync'ed and renamed into place (gaps first; ``orderbooks.parquet`` is the
   marker readers look for).
4. The JSONL of that day is deleted only when ``keep_jsonl`` is False, the listing of the day did
   not change meanwhile, and nothing was left out: no unparsable complete line and no record of an
   unknown ``record_type`` (those days keep their JSONL; the report says why).

Memory: books are held per range of instruments of at most ``max_rows`` rows (~4.5 kB each as
Python dicts); a bigger day is done in several passes over the files (each pass parses only the
lines of its instruments, found by a regex on the raw line).

Re-running on a compacted day with its JSONL kept rewrites the same Parquet; a day with Parquet
and no JSONL left is reported ``already``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collector.config.settings import Settings
from collector.read.books import (
    BOOK_STREAM,
    IID_RE,
    JSON_COLUMNS_KEY,
    LEVEL_COLUMNS,
    PARQUET_BOOKS,
    PARQUET_GAPS,
    day_bounds,
    file_lines,
    gc_paused,
    jsonl_files,
    parquet_rows_to_dicts,
)
from collector.store.snapshot import clean_stale_tmp, fsync_dir

log = logging.getLogger(__name__)

__all__ = ["CompactReport", "book_schema", "cli_compact", "compact_day", "gap_schema", "records_to_table"]

DEFAULT_GRACE_S = 900.0
DEFAULT_MAX_ROWS = 100_000  # books held in memory at once (~4.5 kB each as dicts: ~450 MB)
ROW_GROUP_ROWS = 100_000
ZSTD_LEVEL = 6

_F64 = pa.float64()
_LIST = pa.list_(_F64)
BOOK_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_type", pa.string()),
    ("schema_version", pa.int64()),
    ("venue", pa.string()),
    ("instrument_id", pa.string()),
    ("poll_key", pa.string()),
    ("market_id", pa.string()),
    ("outcome", pa.string()),
    ("ts_ms", pa.int64()),
    ("ob_ts_ms", pa.int64()),
    ("bid_prices", _LIST),
    ("bid_sizes", _LIST),
    ("ask_prices", _LIST),
    ("ask_sizes", _LIST),
    ("best_bid", _F64),
    ("best_ask", _F64),
    ("mid", _F64),
    ("spread", _F64),
    ("hash", pa.string()),
    ("tick_size", _F64),
    ("latency_ms", _F64),
    ("source", pa.string()),
]
# Venue extras of docs/schema.md with their types; other fields are inferred from the data.
KNOWN_EXTRAS: dict[str, pa.DataType] = {
    "last_trade_price": _F64,
    "min_order_size": _F64,
    "neg_risk": pa.bool_(),
    "size_decimals": pa.int64(),
    "token_id": pa.string(),
    "adjusted_midpoint": _F64,
    "midpoint": _F64,
}
GAP_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record_type", pa.string()),
    ("schema_version", pa.int64()),
    ("venue", pa.string()),
    ("instrument_id", pa.string()),
    ("ts_ms", pa.int64()),
    ("from_ts_ms", pa.int64()),
    ("to_ts_ms", pa.int64()),
    ("reason", pa.string()),
    ("failures", pa.int64()),
]
_BOOK_FIXED = {n for n, _ in BOOK_FIELDS} | {"bids", "asks"}


# --------------------------------------------------------------------------- schema & tables


class _Types:
    """Python types seen per field (to type the fields the schema does not know)."""

    def __init__(self, fixed: set[str]) -> None:
        self.fixed = fixed
        self.seen: dict[str, set[type]] = {}

    def add(self, rec: dict) -> None:
        for k, v in rec.items():
            if k not in self.fixed:
                s = self.seen.get(k)
                if s is None:
                    s = self.seen[k] = set()
                s.add(type(v))


def _infer(types: set[type]) -> tuple[pa.DataType, bool]:
    """(arrow type, stored as JSON text) for the Python types of one extra field."""
    t = types - {type(None)}
    if not t:
        return pa.string(), False
    if t == {bool}:
        return pa.bool_(), False
    if t == {int}:
        return pa.int64(), False
    if t <= {int, float, Decimal}:
        return _F64, False
    if t == {str}:
        return pa.string(), False
    return pa.string(), True


def _schema(fixed: list[tuple[str, pa.DataType]], extras: dict[str, set[type]], known: dict[str, pa.DataType]) -> pa.Schema:
    fields = [pa.field(n, t) for n, t in fixed]
    json_cols = []
    for k in extras:  # first-seen order
        if k in known:
            t = known[k]
            if _infer(extras[k])[1]:  # a known extra with an unexpected shape: keep it as JSON text
                t = pa.string()
                json_cols.append(k)
        else:
            t, as_json = _infer(extras[k])
            if as_json:
                json_cols.append(k)
        fields.append(pa.field(k, t))
    return pa.schema(fields, metadata={JSON_COLUMNS_KEY: orjson.dumps(json_cols)})


def book_schema(extras: dict[str, set[type]] | None = None) -> pa.Schema:
    """The Parquet schema of books: :data:`BOOK_FIELDS` then the extras (name -> Python types seen)."""
    return _schema(BOOK_FIELDS, extras or {}, KNOWN_EXTRAS)


def gap_schema(extras: dict[str, set[type]] | None = None) -> pa.Schema:
    return _schema(GAP_FIELDS, extras or {}, {})


def _json_cols(schema: pa.Schema) -> set[str]:
    raw = (schema.metadata or {}).get(JSON_COLUMNS_KEY)
    return set(orjson.loads(raw)) if raw else set()


def _num(v: Any) -> Any:
    """Decimal -> float, also inside level lists (exact records given to records_to_table)."""
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list):
        return [_num(x) for x in v]
    return v


def _level_arrays(levels: list) -> tuple[pa.Array, pa.Array]:
    """``[[[p, s], ...], ...]`` (one list per record) -> (prices, sizes) as ``list<double>``."""
    try:
        nested = pa.array(levels, pa.list_(pa.list_(_F64)))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # Decimals (exact records)
        nested = pa.array(_num(levels), pa.list_(pa.list_(_F64)))
    pairs = nested.flatten()  # one [p, s] per level
    if len(pairs) and not pc.all(pc.equal(pc.list_value_length(pairs), 2)).as_py():
        raise ValueError("a level is not a [price, size] pair")
    offsets = nested.offsets
    prices = pa.ListArray.from_arrays(offsets, pc.list_element(pairs, 0))
    sizes = pa.ListArray.from_arrays(offsets, pc.list_element(pairs, 1))
    return prices, sizes


def records_to_table(records: list[dict], schema: pa.Schema | None = None, *, gaps: bool = False) -> pa.Table:
    """Book (or gap) records -> an Arrow table in the Parquet layout. Decimals become doubles.

    ``schema``: the target schema (default: :func:`book_schema` / :func:`gap_schema` of the fields
    seen in ``records``). Fields of the records that the schema lacks are dropped.
    """
    if schema is None:
        tr = _Types({n for n, _ in GAP_FIELDS} if gaps else _BOOK_FIXED)
        for r in records:
            tr.add(r)
        schema = gap_schema(tr.seen) if gaps else book_schema(tr.seen)
    jcols = _json_cols(schema)
    level_cols = () if gaps else LEVEL_COLUMNS
    plain = pa.schema([f for f in schema if f.name not in jcols and f.name not in level_cols])
    try:
        base = pa.Table.from_pylist(records, schema=plain)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # Decimals (exact records)
        base = pa.Table.from_pylist([{k: _num(v) for k, v in r.items()} for r in records], schema=plain)
    extra: dict[str, pa.Array] = {}
    if not gaps:
        extra["bid_prices"], extra["bid_sizes"] = _level_arrays([r.get("bids") or [] for r in records])
        extra["ask_prices"], extra["ask_sizes"] = _level_arrays([r.get("asks") or [] for r in records])
    for n in jcols:
        vals = [r.get(n) for r in records]
        extra[n] = pa.array([None if v is None else orjson.dumps(v, default=_num).decode() for v in vals], pa.string())
    arrays = [extra[f.name] if f.name in extra else base.column(f.name) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------- report


@dataclass
class CompactReport:
    venue: str
    date: str
    status: str = "pending"  # compacted | already | nothing | refused | failed
    ok: bool = False
    files: int = 0  # JSONL files read
    bytes_in: int = 0  # their size on disk
    books: int = 0
    gaps: int = 0
    bad_lines: int = 0  # complete lines that did not parse (their day keeps its JSONL)
    other_records: int = 0  # records of an unknown record_type (their day keeps its JSONL)
    passes: int = 0  # read passes to build (1 unless the day exceeds max_rows; +1 to verify)
    parquet_path: str | None = None
    parquet_bytes: int = 0
    gaps_path: str | None = None
    verified: bool = False
    deleted_files: int = 0
    kept_jsonl: bool = True
    keep_reason: str | None = None  # why the JSONL was kept
    duration_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        head = f"compact {self.venue} {self.date}: {self.status}"
        if self.status == "compacted":
            ratio = self.bytes_in / self.parquet_bytes if self.parquet_bytes else 0.0
            jsonl = f"JSONL kept ({self.keep_reason})" if self.kept_jsonl else f"{self.deleted_files} JSONL files deleted"
            return (
                f"{head} {self.books} books + {self.gaps} gaps from {self.files} files "
                f"({self.bytes_in / 1e6:.1f} MB) -> {self.parquet_bytes / 1e6:.1f} MB parquet (x{ratio:.1f}), "
                f"verified; {jsonl}; {self.duration_s:.1f}s"
            )
        return f"{head}{': ' + self.error if self.error else ''}"


class VerificationError(Exception):
    pass


# --------------------------------------------------------------------------- compaction


def _tmp_name(final: Path) -> Path:
    # same naming as collector.store.snapshot (".<name>.tmp.<pid>.<hex>") so clean_stale_tmp applies
    return final.parent / f".{final.name}.tmp.{os.getpid()}.{secrets.token_hex(6)}"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _listing(part: Path) -> dict[str, tuple[str, int]]:
    """``{base name: (kind, size)}`` of a partition (base name without ``.zst``)."""
    out = {}
    for p in jsonl_files(part):
        base = p.name[:-4] if p.name.endswith(".zst") else p.name
        try:
            out[base] = ("zst" if p.name.endswith(".zst") else "jsonl", p.stat().st_size)
        except OSError:
            out[base] = ("gone", -1)
    return out


def _listing_changed(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> str | None:
    if set(before) != set(after):
        return f"files appeared or vanished during compaction ({len(before)} -> {len(after)})"
    for k, (kind, size) in before.items():
        k2, s2 = after[k]
        if kind == k2 and size != s2:
            return f"{k} changed size during compaction"
        if kind == "zst" and k2 != "zst":
            return f"{k} changed during compaction"
    return None


def _scan(files: list[Path]) -> Iterator[tuple[int, bytes]]:
    """(seq, line) of every complete line, seq = file index << 32 | line number."""
    for i, p in enumerate(files):
        for n, line in enumerate(file_lines(p)):
            yield (i << 32) | n, line


def compact_day(
    data_dir: str | os.PathLike[str],
    venue: str,
    date: str,
    keep_jsonl: bool = False,
    *,
    now_ms: int | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    max_rows: int = DEFAULT_MAX_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression_level: int = ZSTD_LEVEL,
) -> CompactReport:
    """Compact one UTC day of ``venue``'s order books to Parquet (see the module doc). Never raises
    for a data or I/O problem: the report says ``failed`` and the JSONL is untouched."""
    t0 = time.monotonic()
    rep = CompactReport(venue=venue, date=date)
    try:
        with gc_paused():
            _compact(
                Path(data_dir), venue, date, keep_jsonl, now_ms, grace_s, max_rows, row_group_rows, compression_level, rep
            )
    except (OSError, VerificationError, pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        rep.status, rep.ok = "failed", False
        rep.error = f"{type(e).__name__}: {e}"
        log.warning("compact %s %s failed: %s (JSONL untouched)", venue, date, rep.error)
    rep.duration_s = time.monotonic() - t0
    return rep


def _compact(
    data_dir: Path,
    venue: str,
    date: str,
    keep_jsonl: bool,
    now_ms: int | None,
    grace_s: float,
    max_rows: int,
    row_group_rows: int,
    level: int,
    rep: CompactReport,
) -> None:
    try:
        _dt.date.fromisoformat(date)
        d0, d1 = day_bounds(date)
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if now < d1 + grace_s * 1000:
        rep.status = "refused"
        rep.error = f"the day is not over (UTC) plus {grace_s:.0f}s grace: its files may still be open"
        return
    vdir = data_dir / venue
    part = vdir / BOOK_STREAM / f"date={date}"
    out_dir = vdir / PARQUET_BOOKS / f"date={date}"
    gaps_dir = vdir / PARQUET_GAPS / f"date={date}"
    final = out_dir / "orderbooks.parquet"
    gfinal = gaps_dir / "gaps.parquet"
    files = jsonl_files(part)
    if not files:
        rep.ok = True
        rep.status = "already" if final.exists() else "nothing"
        rep.parquet_path = str(final) if final.exists() else None
        return
    before = _listing(part)
    rep.files = len(files)
    rep.bytes_in = sum(p.stat().st_size for p in files)

    # Pass 1: count per instrument, learn the extra fields, keep the records while they fit.
    counts: Counter[str] = Counter()
    btypes, gtypes = _Types(_BOOK_FIXED), _Types({n for n, _ in GAP_FIELDS})
    gaps: list[tuple[int, int, dict]] = []
    kept: list[tuple[str, int, int, dict]] | None = []
    bad = other = 0
    loads = orjson.loads
    for seq, line in _scan(files):
        try:
            rec = loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        rt = rec.get("record_type") if type(rec) is dict else None
        if rt == "orderbook":
            iid, ts = rec.get("instrument_id"), rec.get("ts_ms")
            if type(iid) is not str or type(ts) is not int:
                bad += 1
                continue
            counts[iid] += 1
            btypes.add(rec)
            if kept is not None:
                kept.append((iid, ts, seq, rec))
                if len(kept) > max_rows:
                    kept = None  # too big for one pass: ranges below
        elif rt == "gap":
            if type(rec.get("ts_ms")) is not int:
                bad += 1
                continue
            gtypes.add(rec)
            gaps.append((rec["ts_ms"], seq, rec))
        else:
            other += 1
    rep.bad_lines, rep.other_records = bad, other
    rep.books, rep.gaps = sum(counts.values()), len(gaps)
    schema = book_schema(btypes.seen)
    gschema = gap_schema(gtypes.seen)

    # Instrument ranges of at most max_rows rows (one range when the day fits).
    ranges: list[list[str]] = []
    size = 0
    for iid in sorted(counts):
        if not ranges or size + counts[iid] > max_rows:
            ranges.append([])
            size = 0
        ranges[-1].append(iid)
        size += counts[iid]
    if not ranges:
        ranges = [[]]

    def range_records(ids: set[str]) -> list[tuple[str, int, int, dict]]:
        rows = []
        want = {i.encode() for i in ids}
        for seq, line in _scan(files):
            m = IID_RE.search(line)
            if m is not None and m.group(1) not in want:
                continue  # another range's book (cheap test, no parse)
            try:
                rec = loads(line)
            except orjson.JSONDecodeError:
                continue
            if type(rec) is dict and rec.get("record_type") == "orderbook" and rec["instrument_id"] in ids:
                rows.append((rec["instrument_id"], rec["ts_ms"], seq, rec))
        return rows

    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final)
    tmp = _tmp_name(final)
    gtmp: Path | None = None
    try:
        # Build.
        writer = pq.ParquetWriter(
            tmp,
            schema,
            compression="zstd",
            compression_level=level,
            use_dictionary=True,
            write_statistics=True,
            sorting_columns=[
                pq.SortingColumn(schema.get_field_index("instrument_id")),
                pq.SortingColumn(schema.get_field_index("ts_ms")),
            ],
        )
        try:
            single = kept is not None and len(ranges) == 1
            rep.passes = 1 if single else 1 + len(ranges)
            for ids in ranges:
                rows = kept if single else range_records(set(ids))
                rows.sort(key=lambda x: (x[0], x[1], x[2]))
                for k in range(0, len(rows), row_group_rows):
                    chunk = [r[3] for r in rows[k : k + row_group_rows]]
                    writer.write_table(records_to_table(chunk, schema), row_group_size=row_group_rows)
                del rows
        finally:
            writer.close()
        kept = None
        if gaps:
            gaps_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_tmp(gfinal)
            gtmp = _tmp_name(gfinal)
            gaps.sort(key=lambda x: (x[0], x[1]))
            gtable = records_to_table([g[2] for g in gaps], gschema, gaps=True)
            pq.write_table(gtable, gtmp, compression="zstd", compression_level=level)
        n_gaps = len(gaps)
        gaps = []

        # Verify against a fresh read of the JSONL.
        _verify(files, ranges, tmp, gtmp, rep.books, n_gaps)
        rep.verified = True

        # Publish: gaps first, the book file (the marker readers look for) last.
        if gtmp is not None:
            _fsync_file(gtmp)
            os.replace(gtmp, gfinal)
            gtmp = None
            fsync_dir(gaps_dir)
        elif gfinal.exists():  # a previous run's gaps of a day that now has none
            gfinal.unlink()
        _fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(out_dir)
    finally:
        for t in (tmp, gtmp):
            if t is not None:
                with contextlib.suppress(OSError):
                    os.unlink(t)
    rep.parquet_path = str(final)
    rep.parquet_bytes = final.stat().st_size
    rep.gaps_path = str(gfinal) if gfinal.exists() else None
    rep.status, rep.ok = "compacted", True

    # Delete the JSONL only when nothing was left out and nothing changed.
    reason = None
    if keep_jsonl:
        reason = "keep_jsonl"
    elif bad:
        reason = f"{bad} unparsable line(s)"
    elif other:
        reason = f"{other} record(s) of an unknown record_type"
    else:
        reason = _listing_changed(before, _listing(part))
    if reason is not None:
        rep.kept_jsonl, rep.keep_reason = True, reason
        if reason != "keep_jsonl":
            log.warning("compact %s %s: JSONL kept: %s", venue, date, reason)
        return
    for base in before:
        for p in (part / base, part / (base + ".zst")):
            try:
                p.unlink()
                rep.deleted_files += 1
            except FileNotFoundError:
                pass
    fsync_dir(part)
    rep.kept_jsonl = False
    with contextlib.suppress(OSError):
        part.rmdir()  # only when empty
        fsync_dir(part.parent)


def _norm(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if v is not None}


def _verify(
    files: list[Path], ranges: list[list[str]], books_path: Path, gaps_path: Path | None, n_books: int, n_gaps: int
) -> None:
    """Compare the Parquet file(s) with a fresh read of the JSONL, record for record."""
    pf = pq.ParquetFile(books_path)
    if pf.metadata.num_rows != n_books:
        raise VerificationError(f"parquet has {pf.metadata.num_rows} books, the JSONL {n_books}")
    jcols = _json_cols(pf.schema_arrow)

    def parquet_rows() -> Iterator[dict]:
        for batch in pf.iter_batches(batch_size=50_000):
            yield from parquet_rows_to_dicts(pa.Table.from_batches([batch]), json_columns=jcols)

    prow = parquet_rows()
    seen = 0
    jgaps: list[tuple[int, int, dict]] = []
    for ri, ids in enumerate(ranges):
        want = set(ids)
        want_b = {i.encode() for i in ids}
        rows = []
        for seq, line in _scan(files):
            if ri > 0 or b'"gap"' not in line:
                m = IID_RE.search(line)
                if m is not None and m.group(1) not in want_b:
                    continue  # another range's book (the first pass also collects the gaps)
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if type(rec) is not dict:
                continue
            rt = rec.get("record_type")
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
        pg = list(parquet_rows_to_dicts(gt, gaps=True, json_columns=_json_cols(gt.schema)))
        if len(pg) != len(jgaps):
            raise VerificationError(f"gaps parquet has {len(pg)} rows, the JSONL {len(jgaps)}")
        for (ts, _s, rec), got in zip(jgaps, pg):
            if _norm(rec) != _norm(got):
                raise VerificationError(f"gap at ts_ms={ts} differs")


# --------------------------------------------------------------------------- CLI


def yesterday_utc(now_ms: int | None = None) -> str:
    now = time.time() if now_ms is None else now_ms / 1000
    return (_dt.datetime.fromtimestamp(now, tz=_dt.timezone.utc).date() - _dt.timedelta(days=1)).isoformat()


def keep_jsonl_default(settings: Settings) -> bool:
    return settings.compact.keep_jsonl


def compact_options(settings: Settings) -> dict[str, Any]:
    return {"grace_s": settings.compact.grace_s, "max_rows": settings.compact.max_rows}


def cli_compact(settings: Any, args: Any) -> int:
    """``collector compact --date D [--venue V] [--keep-jsonl]``: one report line per venue.

    Exit status 0 when every venue is compacted, already compacted or has nothing that day;
    1 when one was refused (day not over) or failed (JSONL untouched).
    """
    venues = list(dict.fromkeys(getattr(args, "venue", None) or settings.venues))
    keep = args.keep_jsonl if getattr(args, "keep_jsonl", None) is not None else keep_jsonl_default(settings)
    opts = compact_options(settings)
    rc = 0
    for v in venues:
        rep = compact_day(settings.data_dir, v, args.date, keep_jsonl=keep, **opts)
        print(rep.summary_line(), flush=True)
        if not rep.ok:
            rc = 1
    return rc
