"""One venue's trades on the loop thread: de-duplication by key, the ``trades`` stream writer, the
per-scope marks (how far back each tape is known complete) and the state that survives a restart.

De-duplication covers the look-back window (``max_backfill_s`` + ``overlap_s``): the keys of the
trades on disk in that window are read back at start, so a restart, a backfill or a REST poll
that re-reads trades already recorded writes none of them twice. Keys are kept as their hash
(64 bits; a false match within one window of a million trades is ~1e-7 likely) with their
venue time, and forgotten once older than the window.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import orjson

from collector.model.clock import now_ms
from collector.model.records import GapRecord
from collector.model.trade_records import TradeRecord
from collector.store import layout
from collector.store.durable import atomic_write
from collector.store.files import file_lines, jsonl_files
from collector.store.writer_set import WriterSet

log = logging.getLogger(__name__)


class TradeTape:
    def __init__(self, venue: str, writers: WriterSet, window_ms: int) -> None:
        self.venue = venue
        self.records = writers.get(venue, layout.TRADES_STREAM)
        self.window_ms = window_ms
        self._keys: set[int] = set()
        self._order: deque[tuple[int, int]] = deque()  # (venue ms, key hash), oldest first
        self.written = self.duplicates = self.gaps = 0
        # Keys added in this and the previous loop turn: the writer reports a refused or dropped
        # write (a full disk) up to a turn later, and those trades must not count as recorded.
        self._cur: list[int] = []
        self._prev: list[int] = []
        self._drops = 0

    # -- de-duplication --------------------------------------------------------------------------
    def _remember(self, h: int, when: int) -> None:
        self._keys.add(h)
        self._order.append((when, h))

    def forget_older(self, now: int) -> None:
        edge = now - self.window_ms
        order, keys = self._order, self._keys
        while order and order[0][0] < edge:
            keys.discard(order.popleft()[1])

    def add(self, rec: TradeRecord) -> bool:
        """Write ``rec`` unless its key was already recorded; True when written."""
        h = hash((rec.venue, rec.key))
        if h in self._keys:
            self.duplicates += 1
            return False
        self.records.write(rec.to_json())
        self.written += 1
        self._cur.append(h)
        # Out-of-order arrivals (a backfill) sit behind newer keys: forgetting goes by arrival
        # order, so a key lives at least the window after it was recorded.
        self._remember(h, max(rec.ob_ts_ms or rec.ts_ms, now_ms() - self.window_ms // 2))
        return True

    def settle(self) -> bool:
        """Once per loop turn: True when the writer dropped records since the last call; then the
        trades of the last two turns are forgotten (a backfill brings them again; one that did
        reach the file is then written twice, which readers de-duplicate)."""
        drops = self.records.stats.records_dropped
        dropped = drops > self._drops
        self._drops = drops
        if dropped:
            for h in self._prev + self._cur:
                self._keys.discard(h)
        self._prev, self._cur = self._cur, []
        return dropped

    def writing(self) -> bool:
        return not self.records.stats.failing

    def gap(self, instrument_id: str | None, from_ms: int, to_ms: int, reason: str, backfilled: bool) -> None:
        self.records.write(GapRecord(self.venue, instrument_id, from_ms, max(from_ms, to_ms), reason,
                                     backfilled=backfilled).to_json())
        self.gaps += 1

    def recover(self, data_dir: Path, now: int) -> int:
        """Read the keys of the trades on disk within the window back (any shard's files)."""
        start = now - self.window_ms
        n = 0
        parts = layout.date_partitions(layout.stream_dir(data_dir, self.venue, layout.TRADES_STREAM))
        first_day = layout.utc_day(start)
        for day, part in parts.items():
            if day < first_day:
                continue
            for f in jsonl_files(part):
                p0 = layout.period_start_ms(f.name)
                if p0 is not None and p0 + 86_400_000 < start:
                    continue
                for line in file_lines(f):
                    if b'"record_type":"trade"' not in line:
                        continue
                    try:
                        r = orjson.loads(line)
                        key, when = r["key"], r.get("ob_ts_ms") or r["ts_ms"]
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                    if when >= start:
                        self._remember(hash((self.venue, key)), when)
                        n += 1
        self._order = deque(sorted(self._order))
        return n


class TapeState:
    """``state/trades.shard-<slug>.json``: {"alive_ms": ..., "marks": {scope: ms}}. Rewritten
    every few seconds (atomic, not fsynced each time: a lost rewrite only means an older mark, a
    longer re-read); the marks never run ahead of what the writer has handed to the OS."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[int | None, dict[str, int]]:
        try:
            d = orjson.loads(self.path.read_bytes())
            alive = d.get("alive_ms")
            marks = {str(k): int(v) for k, v in (d.get("marks") or {}).items()}
            return (alive if type(alive) is int else None), marks
        except FileNotFoundError:
            return None, {}
        except (OSError, orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
            log.warning("trades state %s unreadable (%s): starting without it", self.path, e)
            return None, {}

    def save(self, marks: dict[str, int], *, durable: bool = False) -> None:
        try:
            atomic_write(self.path, orjson.dumps({"alive_ms": now_ms(), "marks": marks}),
                         durable=durable)
        except OSError as e:
            log.warning("trades state %s not written: %s", self.path, e)

