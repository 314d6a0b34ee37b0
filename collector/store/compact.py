"""Compaction: one UTC day of a venue's order-book JSONL -> one verified, sorted Parquet file.

``compact_day(data_dir, venue, "2026-01-10", keep_jsonl=False)`` reads every file of
``<venue>/orderbooks/date=2026-01-10/`` (``.jsonl`` and ``.jsonl.zst``; the ``.zst`` when both
exist; torn last lines skipped) and writes

* ``<venue>/orderbooks_parquet/date=2026-01-10/orderbooks.parquet``: every ``orderbook`` record,
  sorted by ``instrument_id`` then ``ts_ms`` (stable: file then line order for equal keys), stored
  as changes, statistics per row group of 100k rows (so DuckDB/polars skip row groups by
  instrument and time), ``sorting_columns`` metadata; columns as in :mod:`collector.store.parquet`.
  Layout (:func:`writer_options`, measured by bench/parquet_bench.py): zstd level 12; dictionary
  pages for every column but the level lists (plain: zstd finds the levels a book shares with the
  previous one), ``ts_ms``/``ob_ts_ms`` delta-coded, ``hash`` as DELTA_BYTE_ARRAY. Every reader
  sees the same types and values as before.
* ``<venue>/gaps_parquet/date=2026-01-10/gaps.parquet``: the ``gap`` records, sorted by
  ``ts_ms`` (only when the day has gaps). A separate file keeps the book file's schema tight.
* ``<venue>/trades_parquet/date=2026-01-10/trades.parquet``: the day's trades, de-duplicated and
  verified on their own (collector/store/compact_trades.py; their JSONL is never deleted).

Safety, in this order:

1. The day must be over: ``now >= end of day + grace_s`` (default 15 min), so the writer has
   rotated (and compressed) the day's last files. Today's and future days are refused.
2. Files are written to hidden temp names, then **verified record for record** against a fresh
   read of the JSONL: same number of books and gaps, and for each position in
   ``(instrument_id, ts_ms)`` order the same values (the Parquet row read back through
   :func:`collector.store.parquet.parquet_rows_to_dicts` equals the JSONL record, absent and null fields being the same).
3. Only then are they fsync'ed and renamed into place (gaps first; ``orderbooks.parquet`` is the
   marker readers look for), and ``_verified.json`` records what was verified (collector/store/verified.py).
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
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from collector.config.settings import Settings
from collector.store import layout, verified
from collector.store.changes import encode_changes, expanded_lines
from collector.store.compact_trades import TradesReport, compact_trades_day
from collector.store.durable import (
    clean_stale_tmp,
    fsync_dir,
    new_tmp_path,
    replace_durably,
)
from collector.store.files import gc_paused, jsonl_files
from collector.store.parquet import (
    BOOK_FIXED,
    GAP_FIXED,
    FieldTypes,
    book_schema,
    gap_schema,
    records_to_table,
    writer_options,
)
from collector.store.verify import (
    VerificationError,
    listing,
    listing_changed,
    verify_parquet,
)

log = logging.getLogger(__name__)

__all__ = ["CompactReport", "cli_compact", "compact_day", "compact_options", "keep_jsonl_default", "yesterday_utc"]

DEFAULT_GRACE_S = 900.0
DEFAULT_MAX_ROWS = 100_000  # books held in memory at once (~4.5 kB each as dicts: ~450 MB)
ROW_GROUP_ROWS = 100_000
ZSTD_LEVEL = 12

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
    trades: TradesReport | None = None  # the day's trades (collector/store/compact_trades.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        t = self.trades
        tail = "" if t is None or t.status == "nothing" else (
            f"; trades: {t.status}" + (f" {t.trades} trades ({t.duplicates} duplicates dropped), verified"
                                       if t.status == "compacted" else f": {t.error}" if t.error else ""))
        return self._books_line() + tail

    def _books_line(self) -> str:
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


# --------------------------------------------------------------------------- compaction


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
        if isinstance(e, VerificationError):  # say why in the day's manifest (retention reads it)
            with contextlib.suppress(OSError):
                verified.write_failed(Path(data_dir), venue, date, rep.error)
    if rep.status != "refused":  # the day is over: its trades too (a day may have trades and no books)
        try:
            with gc_paused():
                rep.trades = compact_trades_day(Path(data_dir), venue, date, compression_level)
        except (OSError, VerificationError, pa.ArrowException, ValueError, TypeError, OverflowError) as e:
            rep.trades, rep.ok = TradesReport(status="failed", error=f"{type(e).__name__}: {e}"), False
            rep.error = rep.error or f"trades: {rep.trades.error}"  # what the compact flow reports
            log.warning("compact %s %s trades failed: %s (JSONL untouched)", venue, date, rep.trades.error)
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
        d0, d1 = layout.day_bounds(date)
    except ValueError:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}") from None
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if now < d1 + grace_s * 1000:
        rep.status = "refused"
        rep.error = f"the day is not over (UTC) plus {grace_s:.0f}s grace: its files may still be open"
        return
    part = layout.partition_dir(data_dir, venue, layout.BOOK_STREAM, date)
    final = layout.parquet_path(data_dir, venue, date)
    gfinal = layout.parquet_path(data_dir, venue, date, gaps=True)
    out_dir, gaps_dir = final.parent, gfinal.parent
    files = jsonl_files(part)
    if not files:
        rep.ok = True
        rep.status = "already" if final.exists() else "nothing"
        rep.parquet_path = str(final) if final.exists() else None
        return
    before = listing(part)
    verified.clear(data_dir, venue, date)  # until this attempt is verified, the day is not
    rep.files = len(files)
    rep.bytes_in = sum(p.stat().st_size for p in files)

    # Pass 1: count per instrument, learn the extra fields, keep the records while they fit.
    counts: Counter[str] = Counter()
    btypes, gtypes = FieldTypes(BOOK_FIXED), FieldTypes(GAP_FIXED)
    gaps: list[tuple[int, int, dict]] = []
    kept: list[tuple[str, int, int, dict]] | None = []
    bad = other = 0
    for seq, rec in expanded_lines(files):  # unchanged records come back as the books they stand for
        if rec is None:
            bad += 1
            continue
        rt = rec.get("record_type")
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
        # another range's lines are skipped unparsed (a cheap test on the raw line)
        for seq, rec in expanded_lines(files, {i.encode() for i in ids}):
            if rec is not None and rec.get("record_type") == "orderbook" and rec["instrument_id"] in ids:
                rows.append((rec["instrument_id"], rec["ts_ms"], seq, rec))
        return rows

    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(final)
    tmp = new_tmp_path(final)
    gtmp: Path | None = None
    try:
        # Build.
        writer = pq.ParquetWriter(tmp, schema, **writer_options(schema, level))
        try:
            single = kept is not None and len(ranges) == 1
            rep.passes = 1 if single else 1 + len(ranges)
            for ids in ranges:
                rows = kept if single else range_records(set(ids))
                rows.sort(key=lambda x: (x[0], x[1], x[2]))
                # stored as changes whatever writer.record was: a repeated book is a small row
                enc = list(encode_changes(r[3] for r in rows))
                del rows
                for k in range(0, len(enc), row_group_rows):
                    writer.write_table(records_to_table(enc[k : k + row_group_rows], schema), row_group_size=row_group_rows)
                del enc
        finally:
            writer.close()
        kept = None
        if gaps:
            gaps_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_tmp(gfinal)
            gtmp = new_tmp_path(gfinal)
            gaps.sort(key=lambda x: (x[0], x[1]))
            gtable = records_to_table([g[2] for g in gaps], gschema, gaps=True)
            pq.write_table(gtable, gtmp, compression="zstd", compression_level=level)
        n_gaps = len(gaps)
        gaps = []

        # Verify against a fresh read of the JSONL.
        verify_parquet(files, ranges, tmp, gtmp, rep.books, n_gaps)
        rep.verified = True

        # Publish: gaps first, the book file (the marker readers look for) last.
        if gtmp is not None:
            replace_durably(gtmp, gfinal)
            gtmp = None
        elif gfinal.exists():  # a previous run's gaps of a day that now has none
            gfinal.unlink()
        replace_durably(tmp, final)
    finally:
        for t in (tmp, gtmp):
            if t is not None:
                with contextlib.suppress(OSError):
                    os.unlink(t)
    rep.parquet_path = str(final)
    rep.parquet_bytes = final.stat().st_size
    rep.gaps_path = str(gfinal) if gfinal.exists() else None
    verified.write_verified(data_dir, venue, date, before, rep.books, n_gaps, final, gfinal if gfinal.exists() else None)
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
        reason = listing_changed(before, listing(part))
    if reason is not None:
        rep.kept_jsonl, rep.keep_reason = True, reason
        if reason != "keep_jsonl":
            log.warning("compact %s %s: JSONL kept: %s", venue, date, reason)
        return
    for base in before:
        for p in (part / base, part / layout.compressed_name(base)):
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


# --------------------------------------------------------------------------- CLI


def yesterday_utc(now_ms: int | None = None) -> str:
    now = time.time() if now_ms is None else now_ms / 1000
    return (_dt.datetime.fromtimestamp(now, tz=_dt.timezone.utc).date() - _dt.timedelta(days=1)).isoformat()


def keep_jsonl_default(settings: Settings) -> bool:
    # with retention on, the JSONL stays until retention removes it (N days later)
    return settings.compact.keep_jsonl or settings.retention.jsonl_days is not None


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
