"""``unchanged`` records (writer.record = "changes") back into full ``orderbook`` records, and
full records into changes again (compaction's Parquet rows).

An ``unchanged`` record stands for the instrument's last ``orderbook`` record *in the same file*
(in file order, which is poll order for one instrument), with its per-poll fields
(:data:`collector.model.records.POLL_FIELDS`) replaced. Expanding every marker of a file gives
exactly the records ``every_poll`` would have written. Every reader goes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from collector.model.records import POLL_FIELDS
from collector.model.versions import SCHEMA_VERSION, check_schema_version
from collector.store.files import IID_RE, numbered_lines

__all__ = ["BOOK", "BOOK_PREFIX", "MARKER", "MARKER_PREFIX", "Expander", "content_of", "encode_changes", "expand", "expanded_lines"]

BOOK = "orderbook"
MARKER = "unchanged"
# How the writer starts each line (orjson, record_type first): a cheap test on the raw bytes.
BOOK_PREFIX = b'{"record_type":"orderbook"'
MARKER_PREFIX = b'{"record_type":"unchanged"'

_POLL = frozenset(POLL_FIELDS)
_NOT_CONTENT = _POLL | {"record_type"}


def expand(base: dict, marker: dict) -> dict:
    """The full record a marker stands for: ``base`` (a full record of the same instrument) with
    the marker's per-poll fields (absent in the marker = absent in the record)."""
    rec = {}
    for k, v in base.items():
        if k not in _POLL:
            rec[k] = v
        elif k in marker:
            rec[k] = marker[k]
    for k in POLL_FIELDS:
        if k in marker and k not in rec:
            rec[k] = marker[k]
    return rec


def content_of(rec: dict) -> dict:
    """The fields that make two full records of one instrument the same book."""
    return {k: v for k, v in rec.items() if k not in _NOT_CONTENT}


class Expander:
    """Expands the markers of *one* file, fed in file order. Full books are remembered per
    instrument, as raw lines when the reader skips them (parsed only if a marker needs one)."""

    __slots__ = ("_base", "_loads", "orphans")

    def __init__(self, loads: Callable[[bytes], Any] = orjson.loads) -> None:
        self._base: dict[str, bytes | dict] = {}
        self._loads = loads
        self.orphans = 0  # markers with no full book before them in the file (damaged file)

    def remember_line(self, iid: str, line: bytes) -> None:
        self._base[iid] = line

    def remember(self, rec: dict) -> None:
        iid = rec.get("instrument_id")
        if type(iid) is str:
            self._base[iid] = rec

    def feed(self, rec: dict) -> dict | None:
        """A record of this file in file order: a marker comes back expanded (None: no book for
        it), a book is remembered, anything else passes through."""
        rt = rec.get("record_type")
        if rt == MARKER:
            return self.expand(rec)
        if rt == BOOK:
            self.remember(rec)
        return rec

    def expand(self, marker: dict) -> dict | None:
        """The full record, or None (counted in ``orphans``) when the file has no book for it."""
        iid = marker.get("instrument_id")
        base = self._base.get(iid) if type(iid) is str else None
        if type(base) is bytes:
            try:
                base = self._loads(base)
            except ValueError:
                base = None
            if type(base) is not dict or base.get("instrument_id") != iid:
                base = None
            else:
                self._base[iid] = base
        if base is None:
            self.orphans += 1
            return None
        return expand(base, marker)


def encode_changes(records: Iterable[dict]) -> Iterator[dict]:
    """Full records sorted by (instrument_id, ts_ms) -> the same sequence as changes: a record
    whose content equals the previous one of its instrument (at a later ts_ms) becomes a marker."""
    prev_iid: Any = None
    prev_content: dict | None = None
    prev_ts = 0
    for rec in records:
        iid, ts = rec.get("instrument_id"), rec.get("ts_ms")
        content = content_of(rec)
        if iid == prev_iid and prev_content is not None and ts > prev_ts and content == prev_content:
            m = {"record_type": MARKER, "schema_version": rec.get("schema_version"), "venue": rec.get("venue"),
                 "instrument_id": iid}
            for k in POLL_FIELDS:
                if k in rec:
                    m[k] = rec[k]
            yield m
        else:
            prev_content = content
            yield rec
        prev_iid, prev_ts = iid, ts


def expanded_lines(
    files: list[Path], want: set[bytes] | None = None, *, gaps_pass: bool = False,
    loads: Callable[[bytes], Any] = orjson.loads,
) -> Iterator[tuple[int, dict | None]]:
    """``(seq, record)`` for the complete lines of ``files`` in order (seq as in
    :func:`collector.store.files.numbered_lines`), unchanged records expanded, each file on its
    own. ``record`` is None for a line that is not a JSON object or a marker with no book before
    it. ``want``: instrument ids (bytes); lines of other instruments are skipped unparsed, except
    gap lines when ``gaps_pass``."""
    exp = Expander(loads)
    cur = -1
    search = IID_RE.search
    for seq, line in numbered_lines(files):
        if seq >> 32 != cur:
            cur = seq >> 32
            exp = Expander(loads)
        if want is not None and not (gaps_pass and b'"gap"' in line):
            m = search(line)
            if m is not None and m.group(1) not in want:
                continue
        try:
            rec = loads(line)
        except ValueError:
            yield seq, None
            continue
        if type(rec) is not dict:
            yield seq, None
            continue
        sv = rec.get("schema_version")
        if type(sv) is int and sv > SCHEMA_VERSION:  # compaction must not store what it cannot read
            check_schema_version(rec, files[seq >> 32] if seq >> 32 < len(files) else "a JSONL file")
        yield seq, exp.feed(rec)
