"""Stream capture readers, case by case: other formatting, unsorted snapshots, venue-wide gaps,
long disconnects whose gap is written at the end, lookback, depth, receive-time matching,
corrupt lines, several venues, and that a replay from a time starts at the last snapshot."""

from __future__ import annotations

import calendar
from decimal import Decimal
from pathlib import Path

import pytest

from collector import read
from collector.config.settings import WriterSettings
from collector.model.records import BookRecord, GapRecord
from collector.model.stream_records import BookChangeRecord, BookSnapshotRecord
from collector.store.layout import BOOK_CHANGES_STREAM, BOOK_STREAM
from collector.store.writer_set import WriterSet

T0 = calendar.timegm((2026, 3, 2, 10, 0, 0)) * 1000
MIN = 60_000
PM, LL = "polymarket", "limitless"
A, B = f"{PM}:a", f"{PM}:b"


class Clock:
    t = T0 / 1000

    def __call__(self) -> float:
        return self.t


def write(data_dir: Path, rows: list[tuple[str, str, int, bytes]]) -> None:
    """(venue, stream, write time ms, line) through the real writer, 1-minute files, compressed."""
    clock = Clock()
    with WriterSet(data_dir, WriterSettings(rotate_minutes=1, compress_closed=True), clock=clock) as ws:
        for venue, stream, at, line in rows:
            clock.t = max(clock.t, at / 1000)
            ws.write(venue, stream, line)


def snap(iid: str, ts: int, bids, asks, *, seq: int = 1, h: str | None = None, venue: str = PM) -> bytes:
    return BookSnapshotRecord(venue, iid, ts, ts - 5 if venue == PM else None, "c1", seq, "subscribe", bids, asks,
                              h, None if h is None else True).to_json()


def change(iid: str, ts: int, bids, asks, *, seq: int = 2, venue: str = PM, synced: bool = True) -> bytes:
    return BookChangeRecord(venue, iid, ts, ts - 5 if venue == PM else None, "c1", seq, bids, asks, None, None,
                            synced=synced).to_json()


def cs(line: bytes, ts: int, venue: str = PM) -> tuple[str, str, int, bytes]:
    return venue, BOOK_CHANGES_STREAM, ts, line


def rest(iid: str, ts: int, bids, asks, *, ob: int | None = None, venue: str = PM) -> tuple[str, str, int, bytes]:
    rec = BookRecord(venue, iid, iid.split(":")[1], "m", None, ts, bids, asks, 10.0, ob_ts_ms=ob)
    return venue, BOOK_STREAM, ts, rec.to_json()


def test_any_json_formatting_reads_the_same(tmp_path):
    compact = snap(A, T0, [("0.4", "0.000001"), ("0.3", "7")], [("0.6", "123456789012345678.5")])
    pretty = compact.replace(b'":', b'": ').replace(b",", b", ").replace(b"[", b"[ ")  # spaces everywhere
    quoted = compact.replace(b"[0.3,7]", b'["0.3","7"]')  # levels as strings
    write(tmp_path / "x", [cs(compact, T0)])
    write(tmp_path / "y", [cs(pretty, T0)])
    write(tmp_path / "z", [cs(quoted, T0)])
    books = [list(read.replay(tmp_path / d, PM))[0] for d in "xyz"]
    assert books[0] == books[1] == books[2]
    assert books[0].bids == (("0.4", "0.000001"), ("0.3", "7")) and books[0].asks == (("0.6", "123456789012345678.5"),)


def test_an_unsorted_snapshot_is_sorted_best_first(tmp_path):
    line = snap(A, T0, [("0.3", "1"), ("0.45", "2"), ("0.3", "9")], [("0.7", "1"), ("0.55", "3")])
    write(tmp_path, [cs(line, T0), cs(change(A, T0 + 1, [("0.45", "0"), ("0.5", "4")], [("0.6", "1")]), T0 + 1)])
    a, b = read.replay(tmp_path, PM)
    assert a.bids == (("0.45", "2"), ("0.3", "9")) and a.asks == (("0.55", "3"), ("0.7", "1"))  # last one wins
    assert b.bids == (("0.5", "4"), ("0.3", "9")) and b.asks == (("0.55", "3"), ("0.6", "1"), ("0.7", "1"))
    assert (b.best_bid, b.best_ask, b.status) == ("0.5", "0.55", "trusted")


def test_a_venue_wide_gap_makes_every_book_unknown(tmp_path):
    gap = GapRecord(PM, None, T0 + 5, T0 + 10, "ws_closed").to_json()
    write(tmp_path, [cs(snap(A, T0, [("0.4", "1")], []), T0), cs(snap(B, T0 + 1, [], [("0.6", "1")]), T0 + 1),
                     rest(A, T0 + 3, [("0.4", "1")], []), cs(gap, T0 + 10), rest(A, T0 + 15, [("0.4", "1")], []),
                     cs(snap(B, T0 + 20, [], [("0.7", "1")]), T0 + 20)])
    got = [(s.instrument_id, s.status) for s in read.replay(tmp_path, PM)]
    assert got == [(A, "trusted"), (B, "trusted"), (A, "gap"), (B, "gap"), (B, "trusted")]
    at = read.stream_books_at(tmp_path, PM, [A, B], T0 + 15)
    assert {k: v.status for k, v in at.items()} == {A: "gap", B: "gap"}
    assert [c.outcome for c in read.iter_reconcile(tmp_path, PM, clock="ts_ms")] == ["agree", "gap"]


def test_a_long_disconnect_is_unknown_although_its_gap_is_written_at_the_end(tmp_path):
    """The gap is written when the connection is back (10 minutes, ten files later); the book is
    unknown from the last good message on, on both clocks, and REST samples then are not compared."""
    gap = GapRecord(PM, A, T0 + 1000, T0 + 10 * MIN, "ws_closed").to_json()
    write(tmp_path, [
        cs(snap(A, T0, [("0.4", "1")], [("0.6", "1")]), T0),
        cs(change(A, T0 + 1000, [("0.41", "1")], []), T0 + 1000),
        rest(A, T0 + 600, [("0.4", "1")], [("0.6", "1")], ob=T0 + 500),
        # the venue instant of the last message before the disconnect: its book was seen
        rest(A, T0 + 2000, [("0.41", "1"), ("0.4", "1")], [("0.6", "1")], ob=T0 + 995),
        rest(A, T0 + 3 * MIN, [("0.41", "1"), ("0.4", "1")], [("0.6", "1")], ob=T0 + 3 * MIN - 5),
        cs(gap, T0 + 10 * MIN),
        cs(snap(A, T0 + 10 * MIN + 1, [("0.5", "1")], [("0.6", "1")], seq=1), T0 + 10 * MIN + 1),
        rest(A, T0 + 11 * MIN, [("0.5", "1")], [("0.6", "1")], ob=T0 + 11 * MIN - 5),
    ])
    assert read.stream_book_at(tmp_path, PM, A, T0 + 1000).bids == (("0.41", "1"), ("0.4", "1"))  # the last message
    assert read.stream_book_at(tmp_path, PM, A, T0 + 1001).status == "gap"  # and unknown right after it
    assert read.stream_book_at(tmp_path, PM, A, T0 + 996, clock="ob_ts_ms").status == "gap"
    for clock in ("ts_ms", "ob_ts_ms"):
        mid = read.stream_book_at(tmp_path, PM, A, T0 + 5 * MIN, clock=clock)
        assert (mid.status, mid.record_type, mid.bids) == ("gap", "gap", ()), clock
    after = read.stream_book_at(tmp_path, PM, A, T0 + 10 * MIN + 1)
    assert after.bids == (("0.5", "1"),) and after.trusted
    rep = read.reconcile(tmp_path, PM, window="2m")
    assert [c.outcome for c in read.iter_reconcile(tmp_path, PM)] == ["agree", "agree", "gap", "agree"]
    assert (rep.samples, rep.agreed, rep.not_comparable["gap"]) == (4, 3, 1)


def test_lookback_bounds_the_search_for_a_snapshot(tmp_path):
    rows = [cs(snap(A, T0, [("0.4", "1")], []), T0)]
    rows += [cs(change(A, T0 + k * MIN, [("0.4", str(k))], [], seq=k + 1), T0 + k * MIN) for k in range(1, 30)]
    write(tmp_path, rows)
    t = T0 + 29 * MIN
    assert read.stream_book_at(tmp_path, PM, A, t).bids == (("0.4", "29"),)
    short = read.stream_book_at(tmp_path, PM, A, t, lookback="10m")
    assert (short.status, short.bids, short.ts_ms) == ("no_snapshot", (), t)  # record k, book unknown
    # a replay from a time reads from the last snapshot on, not from the start of the day
    st = read.ReadStats()
    assert [b.bids for b in read.replay(tmp_path, PM, [A], t, stats=st)] == [(("0.4", "29"),)]
    assert st.files == 30  # every file since the snapshot: it is needed
    rows2 = rows + [cs(snap(A, T0 + 30 * MIN, [("0.3", "1")], [], seq=40), T0 + 30 * MIN),
                    cs(change(A, T0 + 31 * MIN, [("0.3", "2")], [], seq=41), T0 + 31 * MIN)]
    write(tmp_path / "2", rows2)
    st = read.ReadStats()
    assert [b.bids for b in read.replay(tmp_path / "2", PM, [A], T0 + 31 * MIN, stats=st)] == [(("0.3", "2"),)]
    assert st.files <= 3  # the snapshot's file on: the 30 files before it are not parsed


def test_unsynced_changes_make_the_book_untrusted_until_a_snapshot(tmp_path):
    write(tmp_path, [cs(snap(A, T0, [("0.4", "1")], []), T0),
                     cs(change(A, T0 + 1, [("0.4", "2")], [], synced=False), T0 + 1),
                     cs(change(A, T0 + 2, [("0.4", "3")], []), T0 + 2),
                     cs(snap(A, T0 + 3, [("0.4", "3")], [], seq=4), T0 + 3)])
    assert [(b.status, b.bids) for b in read.replay(tmp_path, PM)] == [
        ("trusted", (("0.4", "1"),)), ("untrusted", (("0.4", "2"),)), ("untrusted", (("0.4", "3"),)),
        ("trusted", (("0.4", "3"),))]


def test_depth_and_receive_time_matching(tmp_path):
    """Limitless has no venue time: samples are matched on receive time; depth compares the top only."""
    L = f"{LL}:btc"
    write(tmp_path, [
        cs(snap(L, T0, [("0.4", "1"), ("0.3", "1")], [("0.6", "1")], venue=LL), T0, LL),
        rest(L, T0 + 10, [("0.4", "1"), ("0.3", "2")], [("0.6", "1")], venue=LL),
        cs(change(L, T0 + 20, [("0.4", "0")], [], venue=LL), T0 + 20, LL),
        rest(L, T0 + 15, [("0.3", "1")], [("0.6", "1")], venue=LL),  # before the change arrived
    ])
    exact = list(read.iter_reconcile(tmp_path, LL, tolerance=0))
    assert [(c.clock, c.outcome, c.diff) for c in exact] == [
        ("ts_ms", "disagree", "bids[1]: stream 0.3 x 1, rest 0.3 x 2"),
        ("ts_ms", "disagree", "bids[0]: stream 0.4 x 1, rest 0.3 x 1")]
    # by default a receive-time sample may meet its stream book up to 2 s away: the second REST
    # book is the one the change 5 ms later made (its stream record is then the one compared)
    full = list(read.iter_reconcile(tmp_path, LL))
    assert [(c.outcome, c.stream.ts_ms) for c in full] == [("disagree", T0), ("agree", T0 + 20)]
    assert [c.outcome for c in read.iter_reconcile(tmp_path, LL, tolerance="4ms")] == ["disagree", "disagree"]
    top = read.reconcile(tmp_path, LL, depth=1, tolerance=0)
    assert (top.agreed, top.disagreed) == (1, 1)
    with pytest.raises(ValueError):
        read.reconcile(tmp_path, LL, tolerance=-1)
    with pytest.raises(ValueError):
        read.stream_book_at(tmp_path, LL, L, T0, clock="wall")


def test_receive_time_tolerance_looks_both_ways_and_only_at_trusted_books(tmp_path):
    L = f"{LL}:btc"
    one, two = [("0.4", "1")], [("0.4", "2")]
    write(tmp_path, [
        cs(snap(L, T0, one, [], venue=LL), T0, LL),
        cs(change(L, T0 + 1000, two, [], venue=LL), T0 + 1000, LL),
        rest(L, T0 + 1500, one, [], venue=LL),  # the stream moved on before this one was received
        rest(L, T0 + 1600, [("0.4", "3")], [], venue=LL),  # no stream book was ever this
        cs(change(L, T0 + 5000, one, [], venue=LL, synced=False), T0 + 5000, LL),
        rest(L, T0 + 7500, one, [], venue=LL),  # equal only to an untrusted book
    ])
    got = [(c.outcome, c.stream.ts_ms) for c in read.iter_reconcile(tmp_path, LL)]
    assert got == [("agree", T0), ("disagree", T0 + 1000), ("untrusted", T0 + 5000)]


def test_a_corrupt_line_is_skipped_and_the_rest_replays(tmp_path):
    write(tmp_path, [cs(snap(A, T0, [("0.4", "1")], []), T0),
                     cs(b'{"record_type":"book_change","schema_version":1,"venue":"polymarket","instrument_id":"polymarket:a","ts_ms":' + str(T0 + 1).encode() + b',"ob_ts_ms":null,"bids":[[0.4,', T0 + 1),
                     cs(change(A, T0 + 2, [("0.45", "1")], []), T0 + 2)])
    assert [b.bids for b in read.replay(tmp_path, PM)] == [(("0.4", "1"),), (("0.45", "1"), ("0.4", "1"))]
    assert read.stream_book_at(tmp_path, PM, A, T0 + 1).bids == (("0.4", "1"),)


def test_iter_changes_merges_venues_and_keeps_exact_decimals(tmp_path):
    L = f"{LL}:btc"
    write(tmp_path, [cs(snap(A, T0 + 5, [("0.4", "1.5")], []), T0 + 5),
                     cs(snap(L, T0 + 1, [], [("0.6", "2")], venue=LL), T0 + 1, LL),
                     cs(change(L, T0 + 9, [], [("0.6", "0")], venue=LL), T0 + 9, LL)])
    got = list(read.iter_changes(tmp_path, exact=True))
    assert [(r["instrument_id"], r["ts_ms"]) for r in got] == [(L, T0 + 1), (A, T0 + 5), (L, T0 + 9)]
    assert got[1]["bids"] == [[Decimal("0.4"), Decimal("1.5")]]
    assert [r["ts_ms"] for r in read.iter_changes(tmp_path, LL, start=T0 + 2)] == [T0 + 9]


def test_frames_of_changes_and_of_replayed_books(tmp_path):
    pl = pytest.importorskip("polars")
    gap = GapRecord(PM, A, T0 + 5, T0 + 9, "ws_silence").to_json()
    write(tmp_path, [cs(snap(A, T0, [("0.4", "1"), ("0.3", "2.5")], [("0.6", "2")]), T0),
                     cs(change(A, T0 + 5, [("0.4", "0")], []), T0 + 5), cs(gap, T0 + 9)])
    df = read.to_polars(read.iter_changes(tmp_path, PM))
    assert df["record_type"].to_list() == ["book_snapshot", "book_change", "gap"]
    assert df["bid_prices"].to_list() == [[0.4, 0.3], [0.4], None] and df["ask_sizes"].to_list() == [[2.0], [], None]
    assert df.schema["bid_sizes"] == pl.List(pl.Float64) and df.schema["best_bid"] == pl.Float64
    assert df["from_ts_ms"].to_list() == [None, None, T0 + 5] and df["synced"].to_list() == [None, True, None]
    books = read.to_polars(read.replay(tmp_path, PM))
    assert books["status"].to_list() == ["trusted", "trusted", "gap"]
    assert books["bid_prices"].to_list() == [[0.4, 0.3], [0.3], []] and books["best_bid"].to_list() == [0.4, 0.3, None]


def test_a_repaired_book_is_unknown_from_its_last_good_record_past_the_suspect_changes(tmp_path):
    """The gap is written when the book is repaired, after changes that were already wrong: it
    counts from its from_ts_ms on both clocks, also when written files later."""
    gap = GapRecord(PM, A, T0 + 1000, T0 + 8 * MIN, "repaired:best_mismatch").to_json()
    write(tmp_path, [
        cs(snap(A, T0, [("0.4", "1")], []), T0),
        cs(change(A, T0 + 1000, [("0.41", "1")], [], seq=2), T0 + 1000),
        cs(change(A, T0 + 2000, [("0.42", "1")], [], seq=3), T0 + 2000),  # suspect
        rest(A, T0 + 2600, [("0.42", "1"), ("0.41", "1"), ("0.4", "1")], [], ob=T0 + 2495),
        cs(change(A, T0 + 3000, [("0.43", "1")], [], seq=4), T0 + 3000),  # suspect
        cs(gap, T0 + 8 * MIN),
        cs(snap(A, T0 + 8 * MIN + 1, [("0.5", "1")], [], seq=5), T0 + 8 * MIN + 1),
    ])
    for clock, t in (("ts_ms", T0 + 2500), ("ob_ts_ms", T0 + 2495), ("ts_ms", T0 + 5 * MIN)):
        assert read.stream_book_at(tmp_path, PM, A, t, clock=clock).status == "gap", (clock, t)
    assert read.stream_book_at(tmp_path, PM, A, T0 + 1000).bids == (("0.41", "1"), ("0.4", "1"))
    assert read.stream_book_at(tmp_path, PM, A, T0 + 995, clock="ob_ts_ms").trusted
    assert [c.outcome for c in read.iter_reconcile(tmp_path, PM)] == ["gap"]
    # the replay itself is in file order: the suspect changes were applied, then the gap
    assert [b.status for b in read.replay(tmp_path, PM)] == ["trusted"] * 4 + ["gap", "trusted"]
