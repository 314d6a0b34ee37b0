"""The newest records of a venue's stream files, read from their ends (for status and tail)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from collector.store import layout
from collector.store.changes import Expander
from collector.store.files import iter_jsonl_lines, jsonl_files

# <stream>.<period start>.<...>: files of one rotation period share the start
_PERIOD_RE = re.compile(r"^[A-Za-z0-9_-]+\.(\d{8}T\d{4}Z)\.")


def parse_record(line: bytes) -> dict | None:
    """A line's record, or None for a torn or foreign line (skipped, never fatal)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) else None


def _last_record(path: Path, record_type: str | tuple[str, ...] | None = None, tail_bytes: int = 1 << 18) -> dict | None:
    """The last complete, valid record (of ``record_type``: one or a tuple) of a JSONL (or .zst) file."""
    if isinstance(record_type, str):
        record_type = (record_type,)
    if layout.is_compressed(path.name):
        lines = []
        for line in iter_jsonl_lines(path):
            lines.append(line)
            if len(lines) > 1000:
                del lines[:500]
    else:
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - tail_bytes))
                data = f.read()
        except OSError:
            return None
        lines = data.split(b"\n")[:-1]  # drop the (possibly torn) text after the last newline
        if size > tail_bytes and lines:
            lines = lines[1:]  # the first piece may be a partial line
    for line in reversed(lines):
        rec = parse_record(line)
        if rec is not None and (record_type is None or rec.get("record_type") in record_type):
            return rec
    return None


def newest_record(
    data_dir: str | os.PathLike[str], venue: str, stream: str, record_type: str | tuple[str, ...] | None = None
) -> dict | None:
    """The latest record (by ``ts_ms``) at the end of the newest files of a stream."""
    parts = layout.date_partitions(layout.stream_dir(data_dir, venue, stream))
    for date in reversed(list(parts)):
        files = jsonl_files(parts[date])
        starts = {}
        for p in files:
            m = _PERIOD_RE.match(p.name)
            starts[p] = m.group(1) if m else p.name
        if not files:
            continue
        top = max(starts.values())
        # every file of the latest period (several writers), else the last file by name
        cands = [p for p in files if starts[p] == top] or files[-1:]
        best = None
        for p in cands:
            r = _last_record(p, record_type)
            if r is not None and isinstance(r.get("ts_ms"), int) and (best is None or r["ts_ms"] > best["ts_ms"]):
                best = r
        if best is not None:
            return best
    return None


def last_records(
    data_dir: str | os.PathLike[str], venues: Sequence[str], n: int, match: Callable[[dict], bool]
) -> list[dict]:
    """The last ``n`` matching orderbook-stream records of the newest files, ordered by ts_ms."""
    found: list[dict] = []
    for v in venues:
        parts = layout.date_partitions(layout.stream_dir(data_dir, v, layout.BOOK_STREAM))
        got: list[dict] = []
        for d in reversed(list(parts)):
            for p in reversed(jsonl_files(parts[d])):
                recs = []
                exp = Expander()  # unchanged records come back as the books they stand for
                for line in iter_jsonl_lines(p):
                    r = parse_record(line)
                    if r is not None:
                        r = exp.feed(r)
                    if r is not None and match(r):
                        recs.append(r)
                got = recs + got
                if len(got) >= n:
                    break
            if len(got) >= n:
                break
        found += got
    found.sort(key=lambda r: r.get("ts_ms") or 0)
    return found[-n:] if n else []
