"""Reading recorded data: order books, gaps, markets, stats. Plain dicts, or frames on request.

Quick start::

    from collector import read
    for book in read.iter_books("data", "polymarket", instruments=["polymarket:1043..."],
                                start="2026-01-10T23:00Z", end="2026-01-11"):
        print(book["ts_ms"], book["best_bid"], book["best_ask"])

    book = read.book_at("data", "polymarket", "polymarket:1043...", "2026-01-10T23:30Z")
    df = read.to_polars(read.load_books("data", "limitless", start=..., end=...))
    cat = read.market_catalog("data", "polymarket")     # instrument_id -> metadata + lifecycle

What it handles for you (see docs/reading-data.md):

* **Layout**: ``<data_dir>/<venue>/<stream>/date=YYYY-MM-DD/<stream>.<period>.<uniq>.jsonl[.zst]``
  and, after ``collector compact``, ``<venue>/orderbooks_parquet/date=D/orderbooks.parquet`` (+
  ``<venue>/gaps_parquet/date=D/gaps.parquet``). A compacted day is read from its Parquet and the
  JSONL left of that day (``keep_jsonl``) is ignored, so nothing is read twice.
* **Order**: records come out ordered by ``ts_ms`` (ties: file order, then line order), merged
  across venues, rotated files and overlapping files (two processes, a restart). Lines inside one
  file may be out of order by up to :data:`REORDER_MS` (concurrent requests); they are reordered.
* **Time ranges**: ``start <= ts_ms < end``; days (``date=`` partitions) and rotated files that
  cannot hold records of the range are not opened. A file of period ``[S, E)`` holds records with
  ``S - SLACK_MS <= ts_ms < E + SLACK_MS`` (capture time vs write time).
* **Damage**: a torn last line (crash) is skipped, as is any line that is not valid JSON; when both
  ``X.jsonl`` and ``X.jsonl.zst`` exist (crash during compression) the complete ``.zst`` is read.
* **Numbers**: floats by default; ``exact=True`` gives :class:`decimal.Decimal` for every JSON
  number with a fraction (exactly the text on disk). From Parquet, ``exact=True`` rebuilds the
  decimal from the double's shortest repr, exact for values of up to 15 significant digits (every
  venue price and size).
* **Parquet rows** read back as the same dicts, with two differences: prices and sizes are floats
  (``3100`` reads ``3100.0``) and optional fields that were absent are absent, null ones too.

Times (``start``, ``end``, ``t``) accept epoch ms (int), :class:`datetime.datetime` (naive = UTC),
``datetime.date`` or ISO text (``"2026-01-10"``, ``"2026-01-10T23:30Z"``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import heapq
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from collector.model.clock import now_ms as _now_ms
from collector.store.writer import iter_jsonl_lines

log = logging.getLogger(__name__)

__all__ = [
    "BOOK_STREAM",
    "DataFile",
    "Progress",
    "ReadStats",
    "book_at",
    "book_times",
    "books_at",
    "catalog_markets",
    "data_files",
    "date_partitions",
    "day_bounds",
    "duration_ms",
    "expand_instruments",
    "file_lines",
    "gc_paused",
    "iter_books",
    "iter_records",
    "jsonl_files",
    "list_venues",
    "load_books",
    "market_catalog",
    "market_records",
    "parquet_rows_to_dicts",
    "parse_time",
    "to_arrow",
    "to_pandas",
    "to_polars",
    "utc_day",
]

BOOK_STREAM = "orderbooks"
PARQUET_BOOKS = "orderbooks_parquet"  # <venue>/orderbooks_parquet/date=D/orderbooks.parquet
PARQUET_GAPS = "gaps_parquet"  # <venue>/gaps_parquet/date=D/gaps.parquet
DAY_MS = 86_400_000
SLACK_MS = 60_000  # a record may sit in the file of a neighbouring period by this much
REORDER_MS = 10_000  # lines inside one file may be out of ts_ms order by this much

_PERIOD_RE = re.compile(r"^[A-Za-z0-9_-]+\.(\d{8}T\d{4}Z)\.")
IID_RE = re.compile(rb'"instrument_id":"([^"\\]*)"')  # pre-filter on raw lines (no parse)
_TS_RE = re.compile(rb'"ts_ms":(\d{1,19})\b')  # int64 at most; longer is junk, left to the parser
_REL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)\s*$")

# Parquet book columns (see collector.store.compact): the level lists and the fields they replace.
LEVEL_COLUMNS = ("bid_prices", "bid_sizes", "ask_prices", "ask_sizes")
# Book fields the writer always writes (kept as None when null; other null fields are dropped).
BOOK_ALWAYS = ("outcome", "best_bid", "best_ask", "mid", "spread")
GAP_ALWAYS = ("instrument_id", "from_ts_ms")
JSON_COLUMNS_KEY = b"collector.json_columns"  # Parquet metadata: columns stored as JSON text


# --------------------------------------------------------------------------- times


def parse_time(value: Any, *, now_ms: int | None = None) -> int:
    """Epoch ms (UTC) from an int (ms), float (s), datetime, date, ISO text or relative text.

    Relative text (``"90s"``, ``"30m"``, ``"1h"``, ``"2d"``, ``"1w"``) means that long before now.
    ISO text without an offset is UTC; ``"Z"`` is accepted.
    """
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(round(value * 1000))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, _dt.date):
        return int(_dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)
    if isinstance(value, str):
        m = _REL_RE.match(value)
        if m:
            n, unit = float(m.group(1)), m.group(2)
            mult = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}[unit]
            now = _now_ms() if now_ms is None else now_ms
            return now - int(n * mult)
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            d = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a time: {value!r} (epoch ms, ISO like 2026-01-10T23:30Z, or 30m/1h/2d)") from None
        return parse_time(d)
    raise TypeError(f"not a time: {value!r}")


def duration_ms(value: Any) -> int:
    """Milliseconds from an int (ms), a :class:`datetime.timedelta` or text like ``"2h"``."""
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, _dt.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, str) and _REL_RE.match(value):
        return -parse_time(value, now_ms=0)
    raise ValueError(f"not a duration: {value!r} (ms, timedelta, or 90s/30m/1h/2d)")


def _opt_time(value: Any) -> int | None:
    return None if value is None else parse_time(value)


def day_bounds(date: str) -> tuple[int, int]:
    """``[start, end)`` epoch ms of a UTC date ``YYYY-MM-DD``."""
    d = _dt.date.fromisoformat(date)
    start = parse_time(d)
    return start, start + DAY_MS


def utc_day(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ms // 1000))


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class DataFile:
    """One file to read. Its records have ``lo_ms <= ts_ms < hi_ms`` (bounds with slack)."""

    path: Path
    venue: str
    stream: str  # "orderbooks", "poll_stats", ... or "orderbooks_parquet" / "gaps_parquet"
    date: str
    kind: str  # "jsonl" | "zst" | "parquet"
    lo_ms: int
    hi_ms: int

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def list_venues(data_dir: str | os.PathLike[str]) -> list[str]:
    """Venues that have data under ``data_dir`` (a directory with a known stream in it)."""
    root = Path(data_dir)
    known = {BOOK_STREAM, "markets", "poll_stats", "poll_errors", "state", PARQUET_BOOKS}
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / s).is_dir() for s in known))
    except OSError:
        return []


def date_partitions(stream_dir: Path) -> dict[str, Path]:
    """``{"YYYY-MM-DD": path}`` of the ``date=`` directories of one stream directory."""
    out = {}
    try:
        for p in stream_dir.iterdir():
            if p.name.startswith("date=") and p.is_dir():
                out[p.name[5:]] = p
    except OSError:
        pass
    return dict(sorted(out.items()))


def _day_in_range(date: str, start_ms: int | None, end_ms: int | None) -> bool:
    try:
        d0, d1 = day_bounds(date)
    except ValueError:
        return False
    if start_ms is not None and d1 + SLACK_MS <= start_ms:
        return False
    if end_ms is not None and d0 - SLACK_MS >= end_ms:
        return False
    return True


def _period_start_ms(name: str) -> int | None:
    m = _PERIOD_RE.match(name)
    if not m:
        return None
    try:
        t = _dt.datetime.strptime(m.group(1), "%Y%m%dT%H%MZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp() * 1000)


def jsonl_files(part: Path) -> list[Path]:
    """The JSONL files of one partition directory, ``.zst`` preferred over a same-name ``.jsonl``.

    Hidden files (temp files of the writer or of compression) are ignored. Sorted by name, which
    is period start then opening time for the writer's files.
    """
    try:
        names = [n for n in os.listdir(part) if not n.startswith(".")]
    except OSError:
        return []
    have = set(names)
    out = []
    for n in names:
        if n.endswith(".jsonl.zst"):
            out.append(n)
        elif n.endswith(".jsonl") and n + ".zst" not in have:
            out.append(n)
    return [part / n for n in sorted(out)]


def _partition_files(venue: str, stream: str, date: str, part: Path) -> list[DataFile]:
    d0, d1 = day_bounds(date)
    paths = jsonl_files(part)
    starts = [_period_start_ms(p.name) for p in paths]
    distinct = sorted({s for s in starts if s is not None})
    out = []
    for p, s in zip(paths, starts):
        if s is None:
            lo, hi = d0 - SLACK_MS, d1 + SLACK_MS
        else:
            later = [x for x in distinct if x > s]
            lo, hi = s - SLACK_MS, (later[0] if later else max(d1, s + 1)) + SLACK_MS
        kind = "zst" if p.name.endswith(".zst") else "jsonl"
        out.append(DataFile(p, venue, stream, date, kind, lo, hi))
    return out


def data_files(
    data_dir: str | os.PathLike[str],
    venue: str,
    stream: str = BOOK_STREAM,
    start: Any = None,
    end: Any = None,
    *,
    parquet: bool = True,
) -> list[DataFile]:
    """The files of ``(venue, stream)`` that may hold records with ``start <= ts_ms < end``.

    For ``orderbooks`` a day compacted to Parquet is returned as its Parquet file(s) instead of
    its JSONL (unless ``parquet=False``). Sorted by ``(lo_ms, path)``.
    """
    start_ms, end_ms = _opt_time(start), _opt_time(end)
    vdir = Path(data_dir) / venue
    out: list[DataFile] = []
    pq_days: dict[str, Path] = {}
    if parquet and stream == BOOK_STREAM:
        for date, part in date_partitions(vdir / PARQUET_BOOKS).items():
            if (part / "orderbooks.parquet").is_file():
                pq_days[date] = part
    dates = set(date_partitions(vdir / stream)) | set(pq_days)
    for date in sorted(dates):
        if not _day_in_range(date, start_ms, end_ms):
            continue
        d0, d1 = day_bounds(date)
        if date in pq_days:
            lo, hi = d0 - SLACK_MS, d1 + SLACK_MS
            out.append(DataFile(pq_days[date] / "orderbooks.parquet", venue, PARQUET_BOOKS, date, "parquet", lo, hi))
            g = vdir / PARQUET_GAPS / f"date={date}" / "gaps.parquet"
            if g.is_file():
                out.append(DataFile(g, venue, PARQUET_GAPS, date, "parquet", lo, hi))
            continue
        for f in _partition_files(venue, stream, date, vdir / stream / f"date={date}"):
            if start_ms is not None and f.hi_ms <= start_ms:
                continue
            if end_ms is not None and f.lo_ms >= end_ms:
                continue
            out.append(f)
    out.sort(key=lambda f: (f.lo_ms, str(f.path)))
    return out


def file_lines(path: Path) -> Iterator[bytes]:
    """:func:`~collector.store.writer.iter_jsonl_lines`, following ``X.jsonl`` to ``X.jsonl.zst`` when
    the file was compressed (and removed) between listing and opening."""
    it = iter_jsonl_lines(path)
    try:
        first = next(it, None)  # opens the file
    except FileNotFoundError:
        z = path.with_name(path.name + ".zst")
        if path.name.endswith(".jsonl") and z.exists():
            yield from iter_jsonl_lines(z)
        return
    if first is None:
        return
    yield first
    yield from it


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal (or ``force``)."""

    def __init__(self, total: int, label: str = "reading", *, force: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = max(1, total)
        self.done = 0
        self.label = label
        self._last = 0.0
        self._t0 = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._last >= 0.1:
            self._draw()

    def _draw(self) -> None:
        self._last = time.monotonic()
        frac = min(1.0, self.done / self.total)
        bar = "#" * int(frac * 30)
        el = self._last - self._t0
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB {el:5.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- records


@dataclass
class ReadStats:
    """What a read did (pass one to the iterators to have it filled)."""

    files: int = 0
    bytes: int = 0  # on-disk bytes of the files finished
    lines: int = 0  # complete lines seen (JSONL)
    records: int = 0  # records yielded
    bad_lines: int = 0  # complete lines that are not a JSON object (skipped)
    parquet_rows: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # files per kind


def _loader(exact: bool) -> Callable[[bytes], Any]:
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


def _iter_jsonl(
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
    iid_re, ts_re = IID_RE.search, _TS_RE.search
    # a record of type T contains the token "T" (any JSON formatting): a cheap pre-filter
    tokens = [f'"{t}"'.encode() for t in types] if types is not None else None
    for n, line in enumerate(file_lines(df.path), 1):  # noqa: B007 - n counts lines
        if tokens is not None and not any(t in line for t in tokens):
            continue
        if ids is not None:
            m = iid_re(line)
            if m is not None and m.group(1).decode("utf-8", "replace") not in ids:
                continue
        if not inside:
            m = ts_re(line)
            if m is not None:
                t = int(m.group(1))
                if (start_ms is not None and t < start_ms) or (end_ms is not None and t >= end_ms):
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
        if types is not None and rec.get("record_type") not in types:
            continue
        if ids is not None:
            iid = rec.get("instrument_id")
            if iid not in ids and not (iid is None and null_ids):
                continue
        if (start_ms is not None and ts < start_ms) or (end_ms is not None and ts >= end_ms):
            continue
        yield ts, base | n, rec
    if stats is not None:
        stats.lines += n
        stats.bad_lines += bad
    if bad:
        log.warning("%s: %d line(s) not valid JSON records, skipped", df.path, bad)


def _reorder(items: Iterator[tuple[int, int, dict]], window_ms: int) -> Iterator[tuple[int, int, dict]]:
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


def _parquet_json_columns(schema: Any) -> set[str]:
    meta = schema.metadata or {}
    raw = meta.get(JSON_COLUMNS_KEY)
    return set(orjson.loads(raw)) if raw else set()


def parquet_rows_to_dicts(
    table: Any, *, gaps: bool = False, exact: bool = False, json_columns: set[str] | None = None
) -> Iterator[dict]:
    """Rebuild JSONL-shaped dicts from a Parquet table of books (or of gaps).

    Levels are rebuilt as ``bids``/``asks`` lists of ``[price, size]``; null fields are dropped
    except those the writer always writes (:data:`BOOK_ALWAYS`, :data:`GAP_ALWAYS`).
    """
    if json_columns is None:
        json_columns = _parquet_json_columns(table.schema)
    names = table.column_names
    always = set(GAP_ALWAYS if gaps else BOOK_ALWAYS)
    lvl = not gaps and all(c in names for c in LEVEL_COLUMNS)
    dec = _to_decimal if exact else None
    keys: list[str] = []
    cols: list[list] = []
    nullable: list[str] = []

    def levels(prices: str, sizes: str) -> list:
        ps, ss = table.column(prices).to_pylist(), table.column(sizes).to_pylist()
        if dec is None:
            return [[[p, q] for p, q in zip(a, b)] for a, b in zip(ps, ss)]
        return [[[dec(p), dec(q)] for p, q in zip(a, b)] for a, b in zip(ps, ss)]

    for n in names:
        if n in LEVEL_COLUMNS:
            continue
        col = table.column(n)
        vals = col.to_pylist()
        if n in json_columns:
            vals = [None if v is None else (json.loads(v, parse_float=Decimal) if exact else orjson.loads(v)) for v in vals]
        elif dec is not None and _pa_is_float(col.type):
            vals = [None if v is None else dec(v) for v in vals]
        keys.append(n)
        cols.append(vals)
        if col.null_count and n not in always:
            nullable.append(n)
        if lvl and n == ("ob_ts_ms" if "ob_ts_ms" in names else "ts_ms"):  # the JSONL field order
            keys += ["bids", "asks"]
            cols += [levels("bid_prices", "bid_sizes"), levels("ask_prices", "ask_sizes")]
    if lvl and "bids" not in keys:
        keys += ["bids", "asks"]
        cols += [levels("bid_prices", "bid_sizes"), levels("ask_prices", "ask_sizes")]
    for vals in zip(*cols):
        rec = dict(zip(keys, vals))
        for n in nullable:
            if rec[n] is None:
                del rec[n]
        yield rec


def _pa_is_float(t: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_floating(t))


def _to_decimal(x: float) -> Decimal:
    return Decimal(repr(x))


def _iter_parquet(
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
    jcols = _parquet_json_columns(pf.schema_arrow)
    if ids is not None and not (gaps and null_ids):
        filters.append(("instrument_id", "in", sorted(ids)))
    table = pq.read_table(df.path, filters=filters or None)
    if ids is not None and gaps and null_ids:
        col = table.column("instrument_id")
        table = table.filter(pc.or_(pc.is_in(col, value_set=_pa_strings(ids)), pc.is_null(col)))
    # stable sort by ts_ms: the file is sorted by (instrument_id, ts_ms)
    table = table.take(pc.sort_indices(table, sort_keys=[("ts_ms", "ascending")]))
    if stats is not None:
        stats.parquet_rows += table.num_rows
    base = fidx << 32
    for n, rec in enumerate(parquet_rows_to_dicts(table, gaps=gaps, exact=exact, json_columns=jcols)):
        yield rec["ts_ms"], base | n, rec


def _pa_strings(ids: Iterable[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(ids), pa.string())


def iter_records(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    stream: str = BOOK_STREAM,
    start: Any = None,
    end: Any = None,
    *,
    instruments: Iterable[str] | str | None = None,
    record_types: Iterable[str] | None = None,
    venue_gaps: bool = True,
    exact: bool = False,
    parquet: bool = True,
    progress: bool = False,
    stats: ReadStats | None = None,
    files: Sequence[DataFile] | None = None,
) -> Iterator[dict]:
    """Every record of ``stream`` with ``start <= ts_ms < end``, ordered by ``ts_ms``.

    ``venue``: one, several, or None for every venue under ``data_dir``. ``instruments``: ids or
    poll keys; with them, venue-wide gap records (``instrument_id`` null) are kept when
    ``venue_gaps``. ``record_types``: e.g. ``{"orderbook"}``. ``progress``: a bar on stderr when it
    is a terminal. ``files``: read exactly these (from :func:`data_files`).
    """
    start_ms, end_ms = _opt_time(start), _opt_time(end)
    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    ids = expand_instruments(instruments, venues)
    types = set(record_types) if record_types is not None else None
    if files is None:
        files = [f for v in venues for f in data_files(data_dir, v, stream, start_ms, end_ms, parquet=parquet)]
    files = sorted(files, key=lambda f: (f.lo_ms, str(f.path)))
    loads = _loader(exact)
    bar = Progress(sum(f.size for f in files), f"{stream}") if progress else None

    def source(i: int, df: DataFile) -> Iterator[tuple[int, int, dict]]:
        if df.kind == "parquet":
            it = _iter_parquet(df, i, start_ms, end_ms, ids, types, venue_gaps, exact, stats)
        else:
            it = _reorder(_iter_jsonl(df, i, start_ms, end_ms, ids, types, venue_gaps, loads, stats), REORDER_MS)
        yield from it
        if stats is not None:
            stats.files += 1
            stats.bytes += df.size
            stats.by_kind[df.kind] = stats.by_kind.get(df.kind, 0) + 1
        if bar is not None:
            bar.add(df.size)

    # k-way merge; a file is opened only when the merge reaches its lo_ms (few open at once).
    heap: list[tuple[int, int, dict, Iterator]] = []
    pending = list(enumerate(files))
    pending.reverse()  # pop() from the end = smallest lo_ms first

    def open_next() -> None:
        i, df = pending.pop()
        it = source(i, df)
        first = next(it, None)
        if first is not None:
            heapq.heappush(heap, (first[0], first[1], first[2], it))

    try:
        while heap or pending:
            while pending and (not heap or pending[-1][1].lo_ms <= heap[0][0]):
                open_next()
            if not heap:
                continue
            ts, seq, rec, it = heap[0]
            nxt = next(it, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], nxt[1], nxt[2], it))
            if stats is not None:
                stats.records += 1
            yield rec
    finally:
        if bar is not None:
            bar.close()


def iter_books(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    gaps: bool = False,
    exact: bool = False,
    progress: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[dict]:
    """Order books (and gap records when ``gaps``) ordered by ``ts_ms``; see :func:`iter_records`."""
    types = {"orderbook", "gap"} if gaps else {"orderbook"}
    return iter_records(
        data_dir,
        venue,
        BOOK_STREAM,
        start,
        end,
        instruments=instruments,
        record_types=types,
        exact=exact,
        progress=progress,
        stats=stats,
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (records hold no cycles).

    Building a list of millions of small dicts otherwise triggers full collections that scan
    every object again and again: loading is ~5x faster with the collector paused.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_books(*args: Any, **kwargs: Any) -> list[dict]:
    """:func:`iter_books` as a list (with the garbage collector paused while loading)."""
    with gc_paused():
        return list(iter_books(*args, **kwargs))


def book_times(
    data_dir: str | os.PathLike[str], venue: str, start: Any = None, end: Any = None, *, progress: bool = False
) -> tuple[dict[str, list[int]], list[dict]]:
    """``({instrument_id: sorted ts_ms of its books}, [gap records])`` with ``start <= ts_ms < end``.

    A fast path for coverage-like questions: book lines written by the collector are not fully
    parsed (two regex matches instead), and Parquet days read two columns only.
    """
    import pyarrow.parquet as pq

    start_ms, end_ms = _opt_time(start), _opt_time(end)
    files = data_files(data_dir, venue, BOOK_STREAM, start_ms, end_ms)
    times: dict[str, list[int]] = {}
    gaps: list[dict] = []
    bar = Progress(sum(f.size for f in files), "orderbooks") if progress else None

    def keep(ts: int) -> bool:
        return (start_ms is None or ts >= start_ms) and (end_ms is None or ts < end_ms)

    book_prefix = b'{"record_type":"orderbook"'
    iid_re, ts_re = IID_RE.search, _TS_RE.search
    for i, df in enumerate(files):
        if df.kind == "parquet":
            if df.stream == PARQUET_GAPS:
                gaps.extend(r for _t, _s, r in _iter_parquet(df, i, start_ms, end_ms, None, None, True, False, None))
                continue
            filters = [f for f in (("ts_ms", ">=", start_ms), ("ts_ms", "<", end_ms)) if f[2] is not None]
            t = pq.read_table(df.path, columns=["instrument_id", "ts_ms"], filters=filters or None)
            for iid, ts in zip(t.column(0).to_pylist(), t.column(1).to_pylist()):
                times.setdefault(iid, []).append(ts)
        else:
            with gc_paused():
                for line in file_lines(df.path):
                    if line.startswith(book_prefix):
                        m1, m2 = iid_re(line), ts_re(line)
                        if m1 is not None and m2 is not None:
                            ts = int(m2.group(1))
                            if keep(ts):
                                times.setdefault(m1.group(1).decode("utf-8", "replace"), []).append(ts)
                            continue
                    elif b'"gap"' not in line and b'"orderbook"' not in line:
                        continue
                    try:
                        rec = orjson.loads(line)
                    except ValueError:
                        continue
                    if type(rec) is not dict or type(rec.get("ts_ms")) is not int or not keep(rec["ts_ms"]):
                        continue
                    if rec.get("record_type") == "orderbook" and isinstance(rec.get("instrument_id"), str):
                        times.setdefault(rec["instrument_id"], []).append(rec["ts_ms"])
                    elif rec.get("record_type") == "gap":
                        gaps.append(rec)
        if bar is not None:
            bar.add(df.size)
    if bar is not None:
        bar.close()
    for v in times.values():
        v.sort()
    gaps.sort(key=lambda r: r["ts_ms"])
    return times, gaps


# --------------------------------------------------------------------------- as-of


def books_at(
    data_dir: str | os.PathLike[str],
    venue: str,
    instruments: Iterable[str] | str,
    t: Any,
    *,
    lookback: Any = DAY_MS,
    exact: bool = False,
) -> dict[str, dict]:
    """As-of lookup: for each instrument the last book with ``ts_ms <= t`` (ties: the last written).

    Searches at most ``lookback`` (ms, timedelta or ``"6h"``; default one day) before ``t``; instruments without a book
    in that window are absent from the result. Reads files newest first and stops as soon as no
    older file can hold a later book.
    """
    t_ms = parse_time(t)
    start_ms = t_ms - duration_ms(lookback)
    ids = expand_instruments(instruments, [venue]) or set()
    if not ids:
        return {}
    files = data_files(data_dir, venue, BOOK_STREAM, start_ms, t_ms + 1)
    best: dict[str, tuple[int, int, dict]] = {}
    for i in sorted(range(len(files)), key=lambda k: files[k].hi_ms, reverse=True):
        df = files[i]
        if len(best) == len(ids) and all(b[0] >= df.hi_ms for b in best.values()):
            break  # this file and every older one hold nothing later than what we have
        it = (
            _iter_parquet(df, i, start_ms, t_ms + 1, ids, {"orderbook"}, False, exact, None)
            if df.kind == "parquet"
            else _iter_jsonl(df, i, start_ms, t_ms + 1, ids, {"orderbook"}, False, _loader(exact), None)
        )
        for ts, seq, rec in it:
            key = rec["instrument_id"]
            cur = best.get(key)
            if cur is None or (ts, seq) > (cur[0], cur[1]):
                best[key] = (ts, seq, rec)
    return {k: v[2] for k, v in best.items()}


def book_at(
    data_dir: str | os.PathLike[str], venue: str, instrument: str, t: Any, *, lookback: Any = DAY_MS, exact: bool = False
) -> dict | None:
    """The book of one instrument at time ``t`` (last book with ``ts_ms <= t``), or None."""
    res = books_at(data_dir, venue, [instrument], t, lookback=lookback, exact=exact)
    return next(iter(res.values()), None)


# --------------------------------------------------------------------------- market catalog


def market_records(data_dir: str | os.PathLike[str], venue: str) -> list[dict]:
    """Every ``market`` record of a venue (all days), ordered by ``ts_ms`` (stable)."""
    return list(iter_records(data_dir, venue, "markets", record_types={"market"}))


def market_catalog(
    data_dir: str | os.PathLike[str], venue: str | Sequence[str] | None = None
) -> dict[str, dict]:
    """Every instrument ever recorded, keyed by ``instrument_id``.

    Each value holds the instrument fields of its latest ``market`` record or snapshot entry
    (``venue``, ``poll_key``, ``market_id``, ``outcome``, ``title``, ``slug``, ``expires_at_ms``,
    ``tick_size``, ..., ``details``: the typed venue metadata such as Limitless ``open_price``
    or Polymarket ``neg_risk_market_id``, keys omitted when the venue sent none; see
    docs/schema.md) plus its lifecycle:

    * ``intervals``: ``[[added_ms, removed_ms or None], ...]``, the spans it was in the active
      set (from the ``added`` / ``removed`` records; repeated records of an at-least-once write
      are ignored). An instrument of the current snapshot without an open span gets one from
      the snapshot's ``asof_ms``; an open span of an instrument missing from the snapshot is
      closed at the snapshot's ``asof_ms``.
    * ``added_ms`` (first), ``removed_ms`` (last; None while active), ``removed_reason``,
      ``active`` (in the current snapshot), ``snapshot_asof_ms``.
    """
    from collector.model.errors import SnapshotError
    from collector.store.snapshot import read_snapshot, snapshot_path

    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    out: dict[str, dict] = {}
    for v in venues:
        cat: dict[str, dict] = {}
        for rec in market_records(data_dir, v):
            iid = rec.get("instrument_id")
            if not iid:
                continue
            info = {k: x for k, x in rec.items() if k not in ("record_type", "schema_version", "event", "reason", "ts_ms")}
            e = cat.setdefault(iid, {"intervals": [], "removed_reason": None, "active": False})
            e.update(info)
            iv = e["intervals"]
            ts = rec["ts_ms"]
            if rec.get("event") == "added":
                if not iv or iv[-1][1] is not None:
                    iv.append([ts, None])
                    e["removed_reason"] = None
            elif rec.get("event") == "removed":
                if iv and iv[-1][1] is None:
                    iv[-1][1] = ts
                    e["removed_reason"] = rec.get("reason")
                elif not iv:  # added before the logs we have
                    iv.append([None, ts])
                    e["removed_reason"] = rec.get("reason")
        snap_asof = None
        try:
            snap = read_snapshot(snapshot_path(data_dir, v), venue=v)
        except SnapshotError:
            snap = None
        if snap is not None:
            snap_asof = snap.asof_ms
            members = {i.instrument_id: i for i in snap.instruments}
            for iid, inst in members.items():
                e = cat.setdefault(iid, {"intervals": [], "removed_reason": None, "active": False})
                e.update(inst.flat())
                e["active"] = True
                iv = e["intervals"]
                if not iv or iv[-1][1] is not None:
                    iv.append([snap.asof_ms, None])
            for iid, e in cat.items():
                if iid not in members:
                    iv = e["intervals"]
                    if iv and iv[-1][1] is None:
                        iv[-1][1] = snap.asof_ms
                        e["removed_reason"] = e.get("removed_reason") or "not_in_snapshot"
        for iid, e in cat.items():
            iv = e["intervals"]
            e["added_ms"] = iv[0][0] if iv else None
            e["removed_ms"] = iv[-1][1] if iv else None
            e["snapshot_asof_ms"] = snap_asof
            e.setdefault("venue", v)
            e.setdefault("instrument_id", iid)
            out[iid] = e
    return out


def catalog_markets(catalog: dict[str, dict]) -> dict[str, dict]:
    """Group a :func:`market_catalog` by market: ``{(venue, market_id) key: {title, ..., instruments}}``.

    The key is ``"<venue>:<market_id>"``; ``instruments`` maps outcome -> instrument_id.
    """
    out: dict[str, dict] = {}
    for iid, e in catalog.items():
        key = f"{e.get('venue')}:{e.get('market_id')}"
        m = out.setdefault(
            key,
            {
                "venue": e.get("venue"),
                "market_id": e.get("market_id"),
                "title": e.get("title"),
                "slug": e.get("slug"),
                "expires_at_ms": e.get("expires_at_ms"),
                "instruments": {},
                "active": False,
            },
        )
        m["instruments"][e.get("outcome") or iid] = iid
        m["active"] = m["active"] or bool(e.get("active"))
    return out


# --------------------------------------------------------------------------- frames


def _book_rows_to_arrow(records: Iterable[dict]) -> Any:
    from collector.store.compact import records_to_table

    return records_to_table(list(records))


def to_arrow(records: Iterable[dict]) -> Any:
    """A pyarrow Table of book records, in the Parquet layout (levels as list columns
    ``bid_prices``, ``bid_sizes``, ``ask_prices``, ``ask_sizes``; Decimals become doubles).

    Non-book records (gaps, stats, markets) become a table of their own fields."""
    import pyarrow as pa

    records = list(records)
    if records and all(r.get("record_type") == "orderbook" for r in records):
        return _book_rows_to_arrow(records)
    return pa.Table.from_pylist([_plain(r) for r in records])


def _plain(r: dict) -> dict:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()}


def to_polars(records: Iterable[dict]) -> Any:
    """A polars DataFrame (see :func:`to_arrow` for the layout). ImportError without polars."""
    try:
        import polars as pl
    except ImportError:
        raise ImportError("to_polars needs polars: pip install polars") from None
    return pl.from_arrow(to_arrow(records))


def to_pandas(records: Iterable[dict]) -> Any:
    """A pandas DataFrame (see :func:`to_arrow` for the layout). ImportError without pandas."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        raise ImportError("to_pandas needs pandas: pip install pandas") from None
    return to_arrow(records).to_pandas()
