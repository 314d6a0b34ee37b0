"""A venue's ``orderbooks`` stream written as changes: a full ``orderbook`` record when an
instrument's book differs from the last one written for it in the open file, else an
``unchanged`` marker with only the per-poll fields (``writer.record = "changes"``, the default).

Each file stays readable alone: the first book of an instrument in a file is always full (the
writer's file ``serial`` is remembered per instrument, and a marker goes only into that same
file). With ``every_poll`` every book is written in full, as before; the counts are kept either
way. Readers expand markers back (collector.store.changes), so both ways read the same.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from collector.model.records import BookRecord, UnchangedRecord
from collector.store.writer import StreamWriter

__all__ = ["BookLog"]


@dataclass(slots=True)
class _Last:
    content: Hashable  # what the last full record held (a venue's raw key or BookRecord.content())
    serial: int  # the writer file it went into
    ts_ms: int


class BookLog:
    """Loop thread only. ``repeat`` tries the cheap way (a marker, no normalization), ``book``
    writes a normalized book (full, or a marker when its content turns out the same)."""

    def __init__(self, writer: StreamWriter, venue: str, *, every_poll: bool = False) -> None:
        self.writer = writer
        self.venue = venue
        self.every_poll = every_poll
        self._last: dict[str, _Last] = {}
        self.changed = 0  # polls whose book differed from the instrument's previous poll
        self.full = 0  # full records written (changes + each file's first book per instrument)
        self.unchanged = 0  # markers written

    def repeat(self, iid: str, content: Hashable, ts_ms: int, latency_ms: float, ob_ts_ms: int | None,
               hash: str | None, hash_ok: bool | None) -> bool:
        """Write a marker when ``content`` is that of the instrument's last full record and the
        marker can go into the same file. False: nothing written, write the full book instead."""
        last = self._last.get(iid)
        if last is None or last.content != content or self.every_poll or hash_ok is False or ts_ms <= last.ts_ms:
            return False
        line = UnchangedRecord(self.venue, iid, ts_ms, latency_ms, ob_ts_ms, hash, hash_ok).to_json()
        ok = self.writer.write_in(line, last.serial)
        if ok is None:  # the file rotated: this instrument's next record is a full one
            return False
        last.ts_ms = ts_ms
        if ok:
            self.unchanged += 1
        return True

    def book(self, rec: BookRecord, line: bytes | None, content: Hashable | None = None) -> bool:
        """Write ``rec`` (``line`` is its JSON when already made): a marker when its content is
        unchanged, else the full record. ``content``: a venue's own key for it (see repeat).
        Returns whether a record was accepted by the writer."""
        iid = rec.instrument_id
        key = rec.content() if content is None else content
        last = self._last.get(iid)
        if last is None or last.content != key:
            self.changed += 1
        elif self.repeat(iid, key, rec.ts_ms, rec.latency_ms, rec.ob_ts_ms, rec.hash, rec.hash_ok):
            return True
        ok = self.writer.write(rec.to_json() if line is None else line)
        if ok:
            self.full += 1
            self._last[iid] = _Last(key, self.writer.serial, rec.ts_ms)
        else:  # dropped: the next book must be full, wherever it lands
            self._last.pop(iid, None)
        return ok

    def forget(self, iid: str) -> None:
        """The next book of ``iid`` is written in full (its instrument changed, or it left)."""
        self._last.pop(iid, None)

    def counts(self) -> tuple[int, int, int]:
        """``(changed, full, unchanged)`` since the last call, then zeroed."""
        out = (self.changed, self.full, self.unchanged)
        self.changed = self.full = self.unchanged = 0
        return out
