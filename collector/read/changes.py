"""The ``book_changes`` stream (stream capture) as records: which files, in which order, and one
line as a record with its prices and sizes as the exact text on disk.

Replay order is write order: files in name order (date partition, then period start, then
opening time: :func:`replay_order`) and lines in file order. That order, not ``ts_ms``, is what a
book is rebuilt in (docs/schema.md), so :func:`iter_changes` keeps it; ``iter_records(...,
"book_changes")`` gives the same records ordered by ``ts_ms`` instead.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from collector.read.datafiles import DataFile, data_files, list_venues
from collector.read.progress import ReadStats
from collector.read.scan import expand_instruments, jsonl_records, loader
from collector.read.times import opt_time
from collector.store.layout import BOOK_CHANGES_STREAM, base_name

__all__ = [
    "BOOK_TYPES",
    "CHANGE_TYPES",
    "change_files",
    "id_prefilter",
    "iter_changes",
    "line_key",
    "replay_order",
    "text_record",
]

CHANGE_TYPES = frozenset({"book_snapshot", "book_change", "last_trade", "gap"})
BOOK_TYPES = frozenset({"book_snapshot", "book_change", "gap"})  # the records that change a book


def replay_order(files: Iterable[DataFile]) -> list[DataFile]:
    """Files in replay order: by date, then by name (``X.jsonl`` and ``X.jsonl.zst`` alike)."""
    return sorted(files, key=lambda f: (f.date, base_name(f.path.name)))


def change_files(data_dir: str | os.PathLike[str], venue: str, start: Any = None, end: Any = None) -> list[DataFile]:
    """The ``book_changes`` files of a venue that may hold ``start <= ts_ms < end``, in replay order."""
    return replay_order(data_files(data_dir, venue, BOOK_CHANGES_STREAM, start, end, parquet=False))


def iter_changes(
    data_dir: str | os.PathLike[str],
    venue: str | Sequence[str] | None = None,
    instruments: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    *,
    record_types: Iterable[str] | None = None,
    exact: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[dict]:
    """``book_changes`` records with ``start <= ts_ms < end`` as dicts, each venue in write order.

    Several venues are merged by ``ts_ms`` (each keeps its own write order). ``record_types``:
    a subset of ``book_snapshot``, ``book_change``, ``last_trade``, ``gap``. ``exact``: numbers
    with a fraction as :class:`decimal.Decimal`, as in :func:`~collector.read.iter_records`.
    """
    start_ms, end_ms = opt_time(start), opt_time(end)
    venues = list_venues(data_dir) if venue is None else ([venue] if isinstance(venue, str) else list(venue))
    ids = expand_instruments(instruments, venues)
    types = set(record_types) if record_types is not None else None
    loads = loader(exact)

    def one(v: str) -> Iterator[dict]:
        for i, df in enumerate(change_files(data_dir, v, start_ms, end_ms)):
            for _ts, _seq, rec in jsonl_records(df, i, start_ms, end_ms, ids, types, True, loads, stats):
                if stats is not None:
                    stats.records += 1
                yield rec
            if stats is not None:
                stats.files += 1
                stats.bytes += df.size
                stats.by_kind[df.kind] = stats.by_kind.get(df.kind, 0) + 1

    if len(venues) == 1:
        return one(venues[0])
    # heapq.merge takes items from the front of each input only: each venue keeps its order
    return heapq.merge(*(one(v) for v in venues), key=lambda r: r["ts_ms"])


# --------------------------------------------------------------------------- one line

# The writer's key order (collector/model/stream_records.py, records.GapRecord): a match gives
# what positioning needs without parsing the levels. Anything else is parsed (line_key's fallback).
_KEY_RE = re.compile(
    rb'^\{"record_type":"(book_snapshot|book_change|last_trade|gap)","schema_version":\d+,"venue":"[^"\\]*",'
    rb'"instrument_id":(?:"([^"\\]*)"|null),"ts_ms":(\d{1,19})'
    rb'(?:,"ob_ts_ms":(\d{1,19}|null)|,"from_ts_ms":(\d{1,19}|null))?[,}]'
)

LineKey = tuple[str, "str | None", int, "int | None", "int | None"]


def line_key(line: bytes) -> LineKey | None:
    """``(record_type, instrument_id, ts_ms, ob_ts_ms, from_ts_ms)`` of a raw line (absent fields
    None), or None if it is not a record."""
    m = _KEY_RE.match(line)
    if m is not None:
        iid, ob, frm = m.group(2), m.group(4), m.group(5)
        return (
            m.group(1).decode(),
            None if iid is None else iid.decode("utf-8", "replace"),
            int(m.group(3)),
            None if ob is None or ob == b"null" else int(ob),
            None if frm is None or frm == b"null" else int(frm),
        )
    try:
        rec = orjson.loads(line)
    except ValueError:
        return None
    if type(rec) is not dict or type(rec.get("ts_ms")) is not int or not isinstance(rec.get("record_type"), str):
        return None
    iid, ob, frm = rec.get("instrument_id"), rec.get("ob_ts_ms"), rec.get("from_ts_ms")
    return (
        rec["record_type"],
        iid if isinstance(iid, str) else None,
        rec["ts_ms"],
        ob if type(ob) is int else None,
        frm if type(frm) is int else None,
    )


def id_prefilter(ids: set[str] | None) -> Callable[[bytes], bool] | None:
    """For a few instruments, a test on the raw line that is False for lines of the others (a
    substring test is cheaper than :func:`line_key`); None when it would not pay."""
    if ids is None or len(ids) > 8:
        return None
    tokens = [orjson.dumps({"instrument_id": i})[1:-1] for i in sorted(ids)] + [b'"instrument_id":null']

    def maybe(line: bytes) -> bool:
        for t in tokens:
            if t in line:
                return True
        return b'"instrument_id": ' in line  # other formatting: leave it to the parser

    return maybe


# A level list as the writer serializes it: [[p,s],[p,s]] with bare JSON numbers.
_NUM = rb"-?[0-9][0-9.eE+-]*"
_LEVELS_RE = re.compile(rb"\[" + _NUM + rb"," + _NUM + rb"\](?:,\[" + _NUM + rb"," + _NUM + rb"\])*")
_TEXT_KEYS = ("tick_size", "last_trade_price", "best_bid", "best_ask", "price", "size", "fee_rate_bps")
_TEXT_RES = {k: re.compile(b'"' + k.encode() + b'":(' + _NUM + rb")[,}]") for k in _TEXT_KEYS}


def text_record(line: bytes) -> dict | None:
    """One line as a dict whose prices and sizes are exact text: levels as ``(price, size)`` str
    pairs, and ``tick_size``, ``best_bid``, ... as str. None when the line is not a JSON object.

    orjson parses numbers to floats, so the text is taken from the raw line (a key such as
    ``"bids":[`` cannot occur inside a JSON string: its quotes would be escaped); a line in any
    other formatting is parsed again with the numbers kept as text.
    """
    try:
        rec = orjson.loads(line)
    except ValueError:
        return None
    if type(rec) is not dict:
        return None
    for side in ("bids", "asks"):
        lv = rec.get(side)
        if lv:
            txt = _raw_levels(line, side)
            if txt is None or len(txt) != len(lv):
                return _slow_text_record(line)
            rec[side] = txt
        elif lv is not None:
            rec[side] = []
    for k in _TEXT_KEYS:
        v = rec.get(k)
        if v is not None and type(v) is not str and type(v) is not bool:
            m = _TEXT_RES[k].search(line)
            if m is None:
                return _slow_text_record(line)
            rec[k] = m.group(1).decode()
    return rec


def _raw_levels(line: bytes, side: str) -> list[tuple[str, str]] | None:
    key = b'"bids":[' if side == "bids" else b'"asks":['
    i = line.find(key)
    if i < 0:
        return None
    i += len(key)
    j = line.find(b"]]", i)
    if j < 0 or _LEVELS_RE.fullmatch(line, i, j + 1) is None:
        return None
    return [tuple(x.split(",")) for x in line[i + 1 : j].decode().split("],[")]  # type: ignore[misc]


def _slow_text_record(line: bytes) -> dict | None:
    try:
        rec = json.loads(line, parse_float=str)
    except (ValueError, RecursionError):
        return None
    if type(rec) is not dict:
        return None
    for side in ("bids", "asks"):
        lv = rec.get(side)
        if isinstance(lv, list):
            try:
                rec[side] = [(_text(p), _text(s)) for p, s in lv]
            except (TypeError, ValueError):  # not [price, size] pairs of numbers
                return None
    for k in _TEXT_KEYS:
        v = rec.get(k)
        if type(v) is int:
            rec[k] = str(v)
    return rec


def _text(v: object) -> str:
    if type(v) is str or type(v) is int:  # str: a float's text (parse_float=str)
        return str(v)
    raise TypeError(f"not a number: {v!r}")
