"""A stream capture recording next to the REST books of tests/datagen.py, for the documented
recipes (tests/test_recipes.py adds it to its recording) and an end-to-end reconciliation.

:func:`add_stream_capture` turns the REST books of a few instruments (2026-01-11 00:00 to 00:30)
into what stream capture would have written: a subscribe snapshot, then one ``book_change`` per
REST book with exactly the levels that changed, at the book's venue time (Polymarket) or just
before its poll (Limitless), and ``last_trade`` records. Injected, and returned as ground truth:
a one-minute disconnect (gap written at the reconnect, then a new connection's snapshot), a
missed change (the book is wrong until a venue snapshot three books later), and a hash mismatch
(two unsynced changes, then a resync snapshot from REST). The open file ends with a torn line.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from collector import read
from collector.config.settings import WriterSettings
from collector.model.records import GapRecord
from collector.model.stream_records import (
    BookChangeRecord,
    BookSnapshotRecord,
    LastTradeRecord,
)
from collector.read.book import BookState
from collector.store.layout import BOOK_CHANGES_STREAM
from collector.store.writer_set import WriterSet
from tests.datagen import copy_of, shared

START = calendar.timegm((2026, 1, 11, 0, 0, 0)) * 1000
END = START + 30 * 60_000
OUTAGE = (START + 10 * 60_000, START + 11 * 60_000)


@dataclass
class Capture:
    instruments: dict[str, list[str]] = field(default_factory=dict)  # venue -> instruments captured
    records: int = 0
    gap_samples: list[tuple[str, int]] = field(default_factory=list)  # REST (iid, ts_ms) during the outage
    missed: list[tuple[str, int]] = field(default_factory=list)  # REST samples after the missed change
    unsynced: list[tuple[str, int]] = field(default_factory=list)  # REST samples while unsynced


def _diff(old: BookState, new: BookState) -> tuple[list, list]:
    out = []
    for a, b in ((old.bids, new.bids), (old.asks, new.asks)):
        was, now = dict(a), dict(b)
        ch = [(p, s) for p, s in b if was.get(p) != s] + [(p, "0") for p in was if p not in now]
        out.append(ch)
    return out[0], out[1]


def _rest(data_dir: Path, venue: str, n: int) -> dict[str, list[BookState]]:
    """The REST books of the ``n`` instruments with the most books in the span."""
    by: dict[str, list[BookState]] = {}
    for b in read.merge_books(data_dir, venue, None, START, END):
        by.setdefault(b.instrument_id, []).append(b)
    best = sorted(by, key=lambda i: (-len(by[i]), i))[:n]
    return {i: by[i] for i in sorted(best)}


def add_stream_capture(data_dir: Path) -> Capture:
    cap = Capture()
    rows: list[tuple[int, int, bytes]] = []  # (ts_ms, order, line)
    for venue, n in (("polymarket", 3), ("limitless", 2)):
        books = _rest(data_dir, venue, n)
        cap.instruments[venue] = list(books)
        for k, (iid, bs) in enumerate(books.items()):
            conn, seq = f"{venue[:2]}-{k}-1", 0
            prev: BookState | None = None
            out: list[tuple[int, bytes]] = []
            never = -10  # no injection for this instrument
            missed_at = len(bs) // 6 if venue == "polymarket" and k == 1 else never
            unsynced_at = len(bs) // 2 if venue == "polymarket" and k == 2 else never
            last_ts: int | None = None
            for j, b in enumerate(bs):
                ob = b.ob_ts_ms
                ts = ob + 2 if ob is not None else b.ts_ms - 20  # the venue message arrives first
                seq += 1
                if venue == "polymarket" and k == 0 and OUTAGE[0] <= b.ts_ms < OUTAGE[1]:
                    cap.gap_samples.append((iid, b.ts_ms))
                    seq -= 1
                    continue  # disconnected: nothing arrives
                if venue == "polymarket" and k == 0 and prev is not None and b.ts_ms >= OUTAGE[1] and last_ts < OUTAGE[0]:
                    out.append((ts, GapRecord(venue, iid, last_ts, ts, "ws_closed").to_json()))
                    conn, seq, prev = f"{venue[:2]}-{k}-2", 1, None
                if j in (unsynced_at, unsynced_at + 1):
                    cap.unsynced.append((iid, b.ts_ms))
                if missed_at <= j < missed_at + 3:
                    cap.missed.append((iid, b.ts_ms))
                if prev is None or j == missed_at + 3 or j == unsynced_at + 2:
                    reason = "subscribe" if prev is None else ("venue_book" if j == missed_at + 3 else "resync")
                    line = BookSnapshotRecord(venue, iid, ts, ob, conn, seq, reason, list(b.bids), list(b.asks), b.hash,
                                              None if b.hash is None else True, b.tick_size,
                                              source="rest" if reason == "resync" else "ws").to_json()
                elif j == missed_at:
                    prev = b  # the change is lost: the stream's book stays behind
                    last_ts = ts
                    continue
                else:
                    bids, asks = _diff(prev, b)
                    bad = j in (unsynced_at, unsynced_at + 1)
                    line = BookChangeRecord(venue, iid, ts, ob, conn, seq, bids, asks, b.best_bid, b.best_ask, b.hash,
                                            False if bad and b.hash else (None if b.hash is None else True),
                                            synced=not bad).to_json()
                out.append((ts, line))
                if j % 10 == 5 and b.best_bid is not None:
                    out.append((ts, LastTradeRecord(venue, iid, ts, ob, conn, seq, b.best_bid, "25", "SELL").to_json()))
                prev, last_ts = b, ts
            rows += [(ts, len(rows) + i, line) for i, (ts, line) in enumerate(out)]
    rows.sort()
    clock = type("C", (), {"t": START / 1000, "__call__": lambda self: self.t})()
    venues = {"polymarket", "limitless"}
    with WriterSet(data_dir, WriterSettings(rotate_minutes=10, compress_closed=True), clock=clock) as ws:
        for ts, _o, line in rows:
            clock.t = max(clock.t, ts / 1000)
            v = "polymarket" if b'"venue":"polymarket"' in line else "limitless"
            ws.write(v, BOOK_CHANGES_STREAM, line)
    cap.records = len(rows)
    for v in sorted(venues):
        open_file = max((data_dir / v / BOOK_CHANGES_STREAM).rglob("*.jsonl"))
        with open(open_file, "ab") as f:
            f.write(b'{"record_type":"book_change","schema_version":1,"venue":"' + v.encode())  # a crash
    return cap


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    g = copy_of(shared(tmp_path_factory), tmp_path_factory.mktemp("stream") / "data")
    return g, add_stream_capture(g.data_dir)


def test_the_capture_replays_to_the_rest_books_except_where_injected(rec):
    g, cap = rec
    assert sum(1 for _ in read.iter_changes(g.data_dir)) == cap.records > 2000
    rep = read.reconcile(g.data_dir, "polymarket", cap.instruments["polymarket"], START, END)
    bad = {(c.instrument_id, c.rest.ts_ms) for c in rep.disagreements}
    assert bad and bad <= set(cap.missed)  # only the missed change (and the samples until its fix)
    assert rep.not_comparable["gap"] == len(cap.gap_samples) and rep.not_comparable["untrusted"] == len(cap.unsynced)
    assert rep.not_comparable["no_stream"] == 0
    assert rep.agreed == rep.samples - len(bad) - len(cap.gap_samples) - len(cap.unsynced)
    assert all(c.clock == "ob_ts_ms" for c in rep.disagreements)
    lrep = read.reconcile(g.data_dir, "limitless", cap.instruments["limitless"], START, END)
    assert lrep.samples > 100 and lrep.agreed == lrep.samples  # matched on receive time
