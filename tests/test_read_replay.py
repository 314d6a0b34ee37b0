"""Stream capture readers (collector.read: iter_changes, replay, stream_books_at, merge_books,
reconcile) against a plain reference model, on files written by the real writer.

Each example is a random sequence of snapshots, changes (some unsynced, some failing their hash,
some only a tick size), last trades and gaps for three instruments, written through
:class:`~collector.store.writer_set.WriterSet` with 1-minute rotation and compression across a UTC
midnight (so ``.jsonl.zst`` files, two date partitions, the open ``.jsonl``), with a torn last
line. The reference applies the documented replay rule with dicts and sorts with Decimal.
"""

from __future__ import annotations

import calendar
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collector import read
from collector.config.settings import WriterSettings
from collector.model.decimals import dec_text
from collector.model.records import BookRecord, GapRecord
from collector.model.stream_records import (
    BookChangeRecord,
    BookSnapshotRecord,
    LastTradeRecord,
)
from collector.read.book import GAP, NO_SNAPSHOT, TRUSTED, UNTRUSTED, BookState
from collector.store.layout import BOOK_CHANGES_STREAM, BOOK_STREAM
from collector.store.writer_set import WriterSet
from tests.reliability import schema as validator

VENUE = "polymarket"
IIDS = [f"{VENUE}:tok{i}" for i in range(3)]
T0 = calendar.timegm((2026, 1, 10, 23, 57, 30)) * 1000  # the span crosses a UTC midnight
PRICES = sorted({dec_text(f"0.{i:02d}") for i in range(1, 100)} | {"0.125", "1"}, key=Decimal)
SIZES = ["1", "10.5", "0.000001", "3100", "123456789012345678.123456", "0.1"]  # floats would not keep these
HSET = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Clock:
    def __init__(self) -> None:
        self.t = T0 / 1000

    def __call__(self) -> float:
        return self.t


@dataclass
class Written:
    """What an example wrote, and what the reference says after each book record."""

    data_dir: Path
    lines: list[bytes] = field(default_factory=list)  # book_changes lines, write order
    # after each book record: (iid, ts_ms, ob_ts_ms or None, expected state, gap's from_ts_ms)
    states: list[tuple[str, int, int | None, BookState, int | None]] = field(default_factory=list)
    rest: list[tuple[BookRecord, str]] = field(default_factory=list)  # REST samples + expected outcome


class Reference:
    """The replay rule of docs/schema.md with plain dicts."""

    def __init__(self, iid: str) -> None:
        self.iid = iid
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.status = NO_SNAPSHOT
        self.hash: str | None = None
        self.tick: str | None = None

    def state(self, ts: int, ob: int | None, rt: str, conn: str | None, seq: int | None) -> BookState:
        known = self.status in (TRUSTED, UNTRUSTED)
        bids = tuple(sorted(self.bids.items(), key=lambda lv: Decimal(lv[0]), reverse=True)) if known else ()
        asks = tuple(sorted(self.asks.items(), key=lambda lv: Decimal(lv[0]))) if known else ()
        return BookState("stream", VENUE, self.iid, ts, ob, self.status, bids, asks,
                         self.hash if known else None, rt, conn, seq, self.tick if known else None)


level = st.tuples(st.sampled_from(PRICES), st.sampled_from(SIZES + ["0", "0"]))  # size 0: remove (changes)
event = st.tuples(
    st.sampled_from([0, 0, 1, 7, 999, 15_000, 45_000, 61_000]),  # ms since the previous record
    st.integers(0, len(IIDS) - 1),
    st.sampled_from(["snapshot", "change", "change", "change", "change", "gap", "trade", "unsynced", "tick",
                     "badhash"]),
    st.lists(level, max_size=4),
    st.lists(level, max_size=4),
    st.sampled_from([0, 3, 40, None]),  # latency: ob_ts_ms = ts_ms - latency (None: no venue time)
    st.booleans(),  # with a hash
)
events = st.lists(event, min_size=1, max_size=45)


def build(evs: list, data_dir: Path, *, torn: bool = True) -> Written:
    """Write the events through the real writer; the reference's state after each book record."""
    w = Written(data_dir)
    clock = Clock()
    refs = {iid: Reference(iid) for iid in IIDS}
    conn_no = {iid: 1 for iid in IIDS}
    # the instrument's record times since its last reset: a gap's from_ts_ms is one of them (the
    # book was good at the snapshot at least)
    seen: dict[str, list[int]] = {}
    seq = 0
    ts = T0
    with WriterSet(data_dir, WriterSettings(rotate_minutes=1, compress_closed=True), clock=clock) as ws:
        for n, (dt, k, kind, bids, asks, lat, with_hash) in enumerate(evs):
            ts += dt
            seq += 1
            iid = IIDS[k]
            ref = refs[iid]
            ob = None if lat is None else ts - lat
            conn = f"c{conn_no[iid]}"
            h = f"{n:040x}" if with_hash else None
            rec: object
            if kind == "snapshot":
                b = {p: s for p, s in bids if s != "0"}
                a = {p: s for p, s in asks if s != "0"}
                lb = sorted(b.items(), key=lambda lv: Decimal(lv[0]), reverse=True)
                la = sorted(a.items(), key=lambda lv: Decimal(lv[0]))
                ok = None if h is None else (n % 7 != 3)
                rec = BookSnapshotRecord(VENUE, iid, ts, ob, conn, seq, "subscribe", lb, la, h, ok,
                                         tick_size="0.01" if n % 2 else None)
                ref.bids, ref.asks, ref.hash, ref.tick = b, a, h, "0.01" if n % 2 else None
                ref.status = UNTRUSTED if ok is False else TRUSTED
            elif kind == "gap":
                # from the last record, or (a repaired book) from an earlier one: the records
                # between were already suspect
                back = seen.get(iid, [])[-2 if with_hash else -1:]
                rec = GapRecord(VENUE, iid, back[0] if back else None, ts, "ws_closed")
                ref.bids, ref.asks, ref.hash, ref.tick, ref.status = {}, {}, None, None, GAP
                conn_no[iid] += 1
                ob = None
            elif kind == "trade":
                rec = LastTradeRecord(VENUE, iid, ts, ob, conn, seq, "0.5", "10", "BUY")
            else:
                tick = "0.001" if kind == "tick" else None
                if kind == "tick":
                    bids, asks = [], []
                # best first, as written (a stable sort: a price listed twice keeps its order)
                bids = sorted(bids, key=lambda lv: Decimal(lv[0]), reverse=True)
                asks = sorted(asks, key=lambda lv: Decimal(lv[0]))
                known = ref.status in (TRUSTED, UNTRUSTED)
                if known:
                    for side, changes in ((ref.bids, bids), (ref.asks, asks)):
                        for p, s in changes:
                            if s == "0":
                                side.pop(p, None)
                            else:
                                side[p] = s
                    if kind in ("unsynced", "badhash"):
                        ref.status = UNTRUSTED
                    if h is not None or bids or asks:
                        ref.hash = h
                    if tick is not None:
                        ref.tick = tick
                rec = BookChangeRecord(VENUE, iid, ts, ob, conn, seq, list(bids), list(asks), None, None, h,
                                       False if kind == "badhash" else (None if h is None else True),
                                       tick, synced=kind != "unsynced")
            line = rec.to_json()  # type: ignore[attr-defined]
            clock.t = max(clock.t, ts / 1000)
            ws.write(VENUE, BOOK_CHANGES_STREAM, line)
            w.lines.append(line)
            if kind != "trade":
                st_ = ref.state(ts, ob, orjson.loads(line)["record_type"], None if kind == "gap" else conn,
                                None if kind == "gap" else seq)
                frm = rec.from_ts_ms if kind == "gap" else None  # type: ignore[attr-defined]
                w.states.append((iid, ts, ob, st_, frm))
                if kind == "snapshot":
                    seen[iid] = [ts]
                elif kind == "gap":
                    seen[iid] = []
                else:
                    seen.setdefault(iid, []).append(ts)
    if torn:
        last = max((data_dir / VENUE / BOOK_CHANGES_STREAM).rglob("*.jsonl"))
        with open(last, "ab") as f:
            f.write(b'{"record_type":"book_snapshot","schema_version":1,"venue":"polymarket","instr')
    return w


# --------------------------------------------------------------------------- reference queries


def ref_at(w: Written, iid: str, t: int, clock: str) -> BookState | None:
    """The reference state after the instrument's last record whose time is <= t. A gap's time:
    the ms after its from_ts_ms (receive time), or after the venue time of the last record
    received by then (venue time)."""
    mine = [(ts, ob, st_, frm) for i, ts, ob, st_, frm in w.states if i == iid]
    times: list[int] = []
    best = None
    for n, (ts, ob, st_, frm) in enumerate(mine):
        gap = st_.record_type == "gap"
        if clock == "ts_ms":
            c = frm + 1 if gap and frm is not None else ts
        elif ob is not None:
            c = ob
        elif gap:
            before = [times[j] for j in range(n) if frm is None or mine[j][0] <= frm]
            c = before[-1] + 1 if before else (frm + 1 if frm is not None else ts)
        else:
            c = ts
        times.append(c)
        if c <= t:
            best = st_
    return best


def times_of(w: Written) -> list[int]:
    ts = [s[1] for s in w.states]
    return sorted({T0 - 1, *ts, *(t - 1 for t in ts), *(t + 1 for t in ts), ts[-1] + 10**6}) if ts else [T0]


# --------------------------------------------------------------------------- tests


@HSET
@given(evs=events)
def test_replay_equals_the_reference_after_every_record(evs):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        got = list(read.replay(d, VENUE))
        assert got == [s[3] for s in w.states]
        # one instrument alone: the same states, its own only
        got1 = list(read.replay(d, VENUE, [IIDS[0]]))
        assert got1 == [s[3] for s in w.states if s[0] == IIDS[0]]


@HSET
@given(evs=events, data=st.data())
def test_replay_from_a_start_rebuilds_the_books_at_start(evs, data):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        ts = times_of(w)
        start = data.draw(st.sampled_from(ts), label="start")
        end = data.draw(st.sampled_from([t for t in ts if t >= start] + [None]), label="end")
        ids = data.draw(st.sampled_from([None, IIDS[:1], IIDS[1:]]), label="ids")
        got = list(read.replay(d, VENUE, ids, start, end))
        want = [s[3] for s in w.states if s[1] >= start and (end is None or s[1] < end)
                and (ids is None or s[0] in ids)]
        assert got == want


@HSET
@given(evs=events, data=st.data())
def test_book_in_force_at_any_instant_equals_the_reference(evs, data):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        for t in data.draw(st.lists(st.sampled_from(times_of(w)), min_size=1, max_size=4), label="t"):
            for clock in ("ts_ms", "ob_ts_ms"):
                got = read.stream_books_at(d, VENUE, IIDS, t, clock=clock)
                want = {i: s for i in IIDS if (s := ref_at(w, i, t, clock)) is not None}
                assert got == want, (t, clock)
                assert read.stream_book_at(d, VENUE, IIDS[1], t, clock=clock) == want.get(IIDS[1])


@HSET
@given(evs=events)
def test_iter_changes_gives_every_record_in_write_order(evs):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        validator.assert_clean(validator.scan(Path(d), allow_torn=True))  # what we wrote is the documented schema
        st_ = read.ReadStats()
        got = list(read.iter_changes(d, VENUE, stats=st_))
        assert got == [orjson.loads(x) for x in w.lines]
        assert st_.records == len(w.lines)
        snaps = list(read.iter_changes(d, VENUE, [IIDS[2]], record_types={"book_snapshot", "gap"}))
        want = [r for x in w.lines if (r := orjson.loads(x))["instrument_id"] == IIDS[2]
                and r["record_type"] in ("book_snapshot", "gap")]
        assert snaps == want


def test_the_recording_has_what_the_readers_must_cope_with(tmp_path):
    evs = [(15_000, k % 3, "snapshot" if k < 3 else "change", [("0.4", "1")], [("0.6", "2")], 3, True)
           for k in range(40)]
    w = build(evs, tmp_path)
    names = [p.name for p in (tmp_path / VENUE / BOOK_CHANGES_STREAM).rglob("*.jsonl*")]
    parts = {p.parent.name for p in (tmp_path / VENUE / BOOK_CHANGES_STREAM).rglob("*.jsonl*")}
    assert sum(n.endswith(".zst") for n in names) >= 5 and sum(n.endswith(".jsonl") for n in names) == 1
    assert parts == {"date=2026-01-10", "date=2026-01-11"}
    st_ = read.ReadStats()
    assert len(list(read.replay(tmp_path, VENUE, stats=st_))) == len(w.states) == 40
    assert st_.bad_lines == 0  # the torn last line is skipped, not counted as a bad line


def test_exact_decimal_text_survives(tmp_path):
    """Sizes a float cannot keep (1e-06, 18 significant digits) come back as written."""
    evs = [(0, 0, "snapshot", [("0.125", "0.000001")], [("1", "123456789012345678.123456")], 0, False),
           (1, 0, "change", [("0.01", "0.1")], [("1", "0")], 0, False)]
    build(evs, tmp_path)
    a, b = read.replay(tmp_path, VENUE)
    assert a.bids == (("0.125", "0.000001"),) and a.asks == (("1", "123456789012345678.123456"),)
    assert b.bids == (("0.125", "0.000001"), ("0.01", "0.1")) and b.asks == ()
    assert (a.best_bid, b.best_ask) == ("0.125", None)


# --------------------------------------------------------------------------- REST and reconciliation

PERTURB = [None, None, None, "size", "drop", "add", "hash"]
sample = st.tuples(
    st.integers(0, len(IIDS) - 1),
    st.integers(-1, 10**6),  # index into the candidate times (wrapped)
    st.booleans(),  # with a venue time (matched on ob_ts_ms) or without (matched on ts_ms)
    st.sampled_from(PERTURB),
    st.sampled_from([0, 5, 800]),  # REST receive time after the venue time
)


def perturb(bids: list, asks: list, h: str | None, how: str, stream_hash: str | None) -> tuple[list, list, str | None, str]:
    """The REST book made to differ from the stream's, and the start of the expected diff."""
    if how == "hash" and stream_hash is not None:  # hashes are compared only when both have one
        return bids, asks, "f" * 40, "hash:"
    if how in ("size", "hash") and (bids or asks):
        side = bids if bids else asks
        side[0] = (side[0][0], dec_text(str(Decimal(side[0][1]) + 1)))
        return bids, asks, h, f"{'bids' if side is bids else 'asks'}[0]:"
    if how == "drop" and asks:
        n = len(asks) - 1
        return bids, asks[:-1], h, f"asks[{n}]: stream {asks[n][0]} x {asks[n][1]}, rest none"
    asks = asks + [("1.5", "7")]  # worse than every ask
    return bids, asks, h, f"asks[{len(asks) - 1}]: stream none, rest 1.5 x 7"


def write_rest(w: Written, samples: list) -> None:
    """REST orderbook records at the sampled moments, each equal to the reference's book there
    unless perturbed; ``w.rest`` gets each with its expected outcome (and diff prefix)."""
    ts_pool = times_of(w)
    rows = []
    for k, (iid_i, ti, with_ob, how, lat) in enumerate(samples):
        iid = IIDS[iid_i]
        x = ts_pool[ti % len(ts_pool)]
        clock = "ob_ts_ms" if with_ob else "ts_ms"
        ref = ref_at(w, iid, x, clock)
        bids = list(ref.bids) if ref is not None else [("0.3", "1")]
        asks = list(ref.asks) if ref is not None else []
        h = ref.hash if ref is not None and ref.hash is not None else (None if k % 2 else f"{k:040x}")
        if ref is None or ref.status == NO_SNAPSHOT:
            want = ("no_stream", None)
        elif ref.status in (GAP, UNTRUSTED):
            want = (ref.status, None)
        elif how is None:
            want = ("agree", None)
        else:
            bids, asks, h, prefix = perturb(bids, asks, h, how, ref.hash)
            want = ("disagree", prefix)
        ts = x + lat if with_ob else x
        rec = BookRecord(VENUE, iid, iid.split(":")[1], "0xm", "Yes", ts, bids, asks, 12.0,
                         ob_ts_ms=x if with_ob else None, hash=h, hash_ok=None if h is None else True)
        rows.append((ts, k, rec, want))
    rows.sort(key=lambda r: (r[0], r[1]))
    clock = Clock()
    clock.t = min([T0, *(r[0] for r in rows)]) / 1000
    with WriterSet(w.data_dir, WriterSettings(rotate_minutes=1, compress_closed=True), clock=clock) as ws:
        for ts, _k, rec, want in rows:
            clock.t = max(clock.t, ts / 1000)
            ws.write(VENUE, BOOK_STREAM, rec.to_json())
            w.rest.append((rec, want))  # type: ignore[arg-type]


@HSET
@given(evs=events, samples=st.lists(sample, min_size=1, max_size=12), window=st.sampled_from(["1h", "45s"]))
def test_reconciliation_finds_exactly_the_injected_disagreements(evs, samples, window):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        write_rest(w, samples)
        got = list(read.iter_reconcile(d, VENUE, window=window))
        assert [(c.rest.instrument_id, c.rest.ts_ms) for c in got] == [(r.instrument_id, r.ts_ms) for r, _ in w.rest]
        assert [c.outcome for c in got] == [want[0] for _, want in w.rest]
        for c, (rec, (outcome, prefix)) in zip(got, w.rest):
            assert c.clock == ("ts_ms" if rec.ob_ts_ms is None else "ob_ts_ms")
            if outcome == "disagree":
                assert c.diff is not None and c.diff.startswith(prefix), (c.diff, prefix)
            else:
                assert c.diff is None
        rep = read.reconcile(d, VENUE, window=window)
        outcomes = [want[0] for _, want in w.rest]
        assert rep.samples == len(w.rest) and rep.compared == rep.agreed + rep.disagreed
        assert rep.agreed == outcomes.count("agree") and rep.disagreed == outcomes.count("disagree")
        assert rep.not_comparable == {k: outcomes.count(k) for k in ("gap", "untrusted", "no_stream")}
        assert [c.rest.ts_ms for c in rep.disagreements] == [r.ts_ms for r, x in w.rest if x[0] == "disagree"]


@HSET
@given(evs=events, samples=st.lists(sample, max_size=6))
def test_merge_books_is_one_time_line_of_both_sources(evs, samples):
    with tempfile.TemporaryDirectory() as d:
        w = build(evs, Path(d))
        write_rest(w, samples)
        got = list(read.merge_books(d, VENUE))
        assert [b.ts_ms for b in got] == sorted(b.ts_ms for b in got)
        assert [b for b in got if b.source == "stream"] == [s[3] for s in w.states]
        rest = [b for b in got if b.source == "rest"]
        assert [(b.instrument_id, b.ts_ms, b.bids, b.asks, b.hash) for b in rest] == [
            (r.instrument_id, r.ts_ms, tuple(r.bids), tuple(r.asks), r.hash) for r, _ in w.rest]
        for a, b in zip(got, got[1:]):  # on equal receive times the stream book comes first
            assert not (a.ts_ms == b.ts_ms and a.source == "rest" and b.source == "stream")
