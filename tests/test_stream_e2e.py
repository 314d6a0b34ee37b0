"""Stream capture end to end: the real simulator's feeds (WebSocket and Socket.IO, real sockets),
the poller in this process, the files it writes.

The oracle is the simulator's own REST book: after a run every market is frozen (no more
changes), and each instrument's book replayed from ``book_changes`` must equal the REST book of
that instant exactly (decimal text), under every fault too. During the run, every REST sample
taken at the same venue time as a replayed book must equal it.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from collector import read
from collector.model.records import Instrument
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from collector.venues.limitless import normalize_book
from collector.venues.polymarket_book import book_record
from tests import helpers as h

PM, LIM = "polymarket", "limitless"


def _canon(x) -> str:
    d = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    return "0" if d == 0 else format(d.normalize(), "f")


def replay(recs: list[dict]) -> tuple[dict[str, dict | None], dict[str, dict[int, tuple]]]:
    """Apply each instrument's records in file order: (last book before the shutdown, None =
    unknown; and the book's levels at every venue time it was seen)."""
    books: dict[str, dict | None] = {}
    at: dict[str, dict[int, tuple]] = {}
    for r in recs:
        iid, rt = r.get("instrument_id"), r["record_type"]
        if rt == "book_snapshot":
            books[iid] = {"bids": {_canon(p): _canon(s) for p, s in r["bids"]},
                          "asks": {_canon(p): _canon(s) for p, s in r["asks"]}}
        elif rt == "book_change" and books.get(iid) is not None:
            b = books[iid]
            for side, lv in (("bids", r["bids"]), ("asks", r["asks"])):
                for p, s in lv:
                    if _canon(s) == "0":
                        b[side].pop(_canon(p), None)
                    else:
                        b[side][_canon(p)] = _canon(s)
        elif rt == "gap":
            if r["reason"] != "stream_stopped":
                books[iid] = None
            continue
        else:
            continue
        b = books.get(iid)
        if b is not None and r.get("ob_ts_ms") is not None:
            at.setdefault(iid, {})[r["ob_ts_ms"]] = levels(b)
    return books, at


def levels(b: dict) -> tuple[list, list]:
    bids = sorted(b["bids"].items(), key=lambda x: Decimal(x[0]), reverse=True)
    asks = sorted(b["asks"].items(), key=lambda x: Decimal(x[0]))
    return bids, asks


def _insts(data, venue) -> list[Instrument]:
    return read_snapshot(snapshot_path(data, venue)).instruments


def rest_books(sim, data, venue) -> dict[str, tuple[list, list]]:
    out = {}
    with httpx.Client(timeout=5, trust_env=False) as c:
        for inst in _insts(data, venue):
            if venue == PM:
                r = c.get(f"{sim.clob_url}/book", params={"token_id": inst.poll_key})
                if r.status_code == 200:
                    rec = book_record(inst, r.json(), None, 0, 0.0)
                    out[inst.instrument_id] = ([tuple(x) for x in rec.bids], [tuple(x) for x in rec.asks])
            else:
                time.sleep(0.35)  # the venue's spacing (the simulator enforces it too)
                r = c.get(f"{sim.limitless_url}/markets/{inst.poll_key}/orderbook")
                if r.status_code == 200:
                    rec = normalize_book(inst, r.json(), 0, 0.0)
                    out[inst.instrument_id] = ([tuple(x) for x in rec.bids], [tuple(x) for x in rec.asks])
    return out


def run(sim, data, mp, venue, seconds, during=None, **extra):
    settings = h.prepare(sim, data, mp, venues=venue, streams=True, **extra)
    poller = Poller(settings)
    with h.poller_thread(poller):
        t0 = time.monotonic()
        if during is not None:
            during(poller)
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
        for inst in _insts(data, venue):  # freeze every book: the REST book is then final
            sim.markets("expire", venue=venue, **({"token_id": inst.poll_key} if venue == PM else {"slug": inst.poll_key}))
        time.sleep(1.5)  # the last changes reach the files
    return poller


def check_final_books_equal_rest(sim, data, venue) -> int:
    got, _ = replay(h.records(data, venue, "book_changes"))
    want = rest_books(sim, data, venue)
    assert want, "the simulator served no books"
    compared = 0
    for iid, (bids, asks) in want.items():
        b = got.get(iid)
        assert b is not None, f"{iid}: no stream book at the end"
        assert levels(b) == (bids, asks), f"{iid}: replayed book differs from the venue's"
        compared += 1
    return compared


def check_rest_samples_agree(data, venue) -> int:
    """Every REST orderbook sample whose venue time equals a replayed book's equals it."""
    _, at = replay(h.records(data, venue, "book_changes"))
    n = 0
    for rec in h.books(data, venue):
        want = at.get(rec["instrument_id"], {}).get(rec.get("ob_ts_ms"))
        if want is None:
            continue
        got = ([(_canon(p), _canon(s)) for p, s in rec["bids"]], [(_canon(p), _canon(s)) for p, s in rec["asks"]])
        assert got == want, f"{rec['instrument_id']} at {rec.get('ob_ts_ms')}: REST sample differs from the stream's book"
        n += 1
    return n


@pytest.mark.slow
def test_polymarket_feed_replays_to_the_venue_book_and_matches_rest(tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "31", "--tick-s", "0.2", "--change-prob", "0.5") as sim:
        run(sim, tmp_path, monkeypatch, PM, 6, STREAMS__POLYMARKET__REST_INTERVAL_S="1")
        assert check_final_books_equal_rest(sim, tmp_path, PM) > 0
        recs = h.records(tmp_path, PM, "book_changes")
        changes = [r for r in recs if r["record_type"] == "book_change"]
        assert len(changes) > 50 and all(r["hash_ok"] is True for r in changes if r["hash"])
        assert [r for r in recs if r["record_type"] == "gap" and r["reason"] != "stream_stopped"] == []
        assert check_rest_samples_agree(tmp_path, PM) > 0
        # the public reader says the same: every REST sample it can compare agrees with the stream
        rep = read.reconcile(tmp_path, PM)
        assert rep.compared > 0 and rep.disagreed == 0, rep.disagreements[:3]
        final, _ = replay(h.records(tmp_path, PM, "book_changes"))
        for iid, b in final.items():
            if b is None:
                continue
            last = [x for x in read.replay(tmp_path, PM, [iid]) if x.status == "trusted"][-1]
            assert (list(map(tuple, last.bids)), list(map(tuple, last.asks))) == levels(b)
        st = [s["stream"] for s in h.stats(tmp_path, PM) if s["stream"]]
        assert sum(s["resyncs"] for s in st) == 0 and sum(s["rest_agreed"] for s in st) > 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["ws_drop_rate", "ws_reorder_rate", "ws_bad_hash_rate", "ws_dup_rate"])
def test_polymarket_faults_are_repaired_and_leave_the_book_right(tmp_path, monkeypatch, fault):
    with run_sim("--markets", "6", "--seed", "32", "--tick-s", "0.2", "--change-prob", "0.5") as sim:
        def during(poller):
            time.sleep(1.5)
            sim.control(venue=PM, **{fault: 0.25})
            time.sleep(4)
            sim.control(venue=PM, **{fault: 0.0})

        run(sim, tmp_path, monkeypatch, PM, 9, during, STREAMS__POLYMARKET__HASH_GRACE_S="0.5")
        applied = sim.feeds()[PM]["faults"]
        assert applied[{"ws_drop_rate": "dropped", "ws_reorder_rate": "reordered", "ws_bad_hash_rate": "bad_hash",
                        "ws_dup_rate": "duplicated"}[fault]] > 0, applied
        assert check_final_books_equal_rest(sim, tmp_path, PM) > 0
        recs = h.records(tmp_path, PM, "book_changes")
        gaps = [r for r in recs if r["record_type"] == "gap" and r["reason"].startswith(("resync:", "repaired:"))]
        # ws_reorder_rate: swapped changes of one book fail their hash checks (a resync or the venue's
        # next book repairs it); swapped changes of two books are harmless: the final check covers both
        if fault == "ws_drop_rate":
            # a lost change is found (resync) or the venue's next book repairs it; either way the
            # span is a gap, bounded by the grace + one REST round trip
            assert gaps, "a lost change must leave a gap"
            assert {g["reason"].split(":")[1] for g in gaps} <= {
                "hash_mismatch", "best_mismatch", "crossed", "rest_differs", "venue_book_differs"}, gaps
            assert max(g["to_ts_ms"] - g["from_ts_ms"] for g in gaps) < 5_000
        if fault == "ws_bad_hash_rate":
            assert any(r.get("hash_ok") is False for r in recs)
        if fault == "ws_dup_rate":
            assert gaps == []  # sizes are absolute: a duplicate changes nothing


@pytest.mark.slow
def test_polymarket_disconnect_and_silent_stall_are_gaps_then_the_book_is_back(tmp_path, monkeypatch):
    with run_sim("--markets", "6", "--seed", "33", "--tick-s", "0.2", "--change-prob", "0.5") as sim:
        def during(poller):
            time.sleep(1.5)
            sim.control(venue=PM, ws_disconnect=True)
            time.sleep(2.5)
            sim.control(venue=PM, ws_stall=True)
            time.sleep(4)

        run(sim, tmp_path, monkeypatch, PM, 10, during, STREAMS__POLYMARKET__SILENCE_S="1.5",
            STREAMS__POLYMARKET__PING_INTERVAL_S="0.5", STREAMS__POLYMARKET__RECONNECT_MIN_S="0.2")
        assert check_final_books_equal_rest(sim, tmp_path, PM) > 0
        reasons = {r["reason"] for r in h.records(tmp_path, PM, "book_changes") if r["record_type"] == "gap"}
        assert "ws_closed" in reasons and "ws_silence" in reasons


@pytest.mark.slow
def test_polymarket_stalled_token_is_found_by_rest_and_resubscribed(tmp_path, monkeypatch):
    with run_sim("--markets", "4", "--seed", "34", "--tick-s", "0.2", "--change-prob", "0.6") as sim:
        def during(poller):
            time.sleep(1.5)
            token = next(iter(poller.streams[PM].tracked))
            sim.control(venue=PM, ws_stall_ids=[token])
            time.sleep(4)
            sim.control(venue=PM, ws_stall_ids=[])

        run(sim, tmp_path, monkeypatch, PM, 8, during, STREAMS__POLYMARKET__REST_INTERVAL_S="0.5",
            STREAMS__POLYMARKET__TOKEN_STALL_S="1")
        assert check_final_books_equal_rest(sim, tmp_path, PM) > 0
        st = [s["stream"] for s in h.stats(tmp_path, PM) if s["stream"]]
        assert sum(s["mismatches"].get("stalled", 0) for s in st) >= 1 and sum(s["resubscribes"] for s in st) >= 1


@pytest.mark.slow
def test_limitless_30_markets_every_change_recorded_fresh_books_and_no_429(tmp_path, monkeypatch):
    rule = '[{"name": "all", "min_minutes_to_expiry": 30, "max_markets": 30}]'
    with run_sim("--markets", "45", "--seed", "35", "--tick-s", "0.5", "--change-prob", "0.3") as sim:
        run(sim, tmp_path, monkeypatch, LIM, 20, None, LIMITLESS__RULES=rule)
        sent = sim.feeds()[LIM]
        n = len(_insts(tmp_path, LIM))
        assert n == 30
        assert check_final_books_equal_rest(sim, tmp_path, LIM) == 30
        recs = h.records(tmp_path, LIM, "book_changes")
        # every update the venue sent is a snapshot from the feed (a market's first is "subscribe")
        updates = sum(1 for r in recs if r["record_type"] == "book_snapshot" and r["source"] == "ws")
        assert updates == sent["sent"]["orderbookUpdate"], (updates, sent)
        # Steady state: after start-up (the venue sends no book on subscribe, so a quiet market's
        # first book is a REST one: 30 of them at ~2.7 requests/s) and before the stop.
        all_stats = h.stats(tmp_path, LIM)
        t_start = all_stats[0]["ts_ms"]
        stats = [s for s in all_stats[:-1] if s["ts_ms"] >= t_start + 13_000]
        assert stats and max(s["book_age_p99_s"] for s in stats) <= 1.0, [s["book_age_p99_s"] for s in all_stats]
        assert sum(s["http_429"] for s in h.stats(tmp_path, LIM)) == 0
        assert [e for e in h.sim_times(sim, venue=LIM) if e.get("status") == 429] == []
