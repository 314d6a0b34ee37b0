"""Trades end to end: the real simulator (REST tapes and feeds on real sockets), the poller in this
process or as a child process, the files it writes. The oracle is the simulator's own tape
(``sim.trades``): within the compared window every simulated trade of a tracked instrument is in
the ``trades`` stream exactly once, and nothing else is, across a feed disconnect and across a
SIGTERM / restart."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest

from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from tests import helpers as h
from tests.reliability import schema

PM, LIM, KAL = "polymarket", "limitless", "kalshi"
# Two Kalshi markets with a few minutes left (the hourly ones have under 30 min left half the hour).
KALSHI_RULE = '[{"name": "two", "min_minutes_to_expiry": 3, "max_markets": 2}]'
FAST = {"TRADES__KALSHI__POLL_INTERVAL_S": "1", "TRADES__LIMITLESS__POLL_INTERVAL_S": "2",
        "TRADES__POLYMARKET__OVERLAP_S": "2", "KALSHI__RULES": KALSHI_RULE}


def _tracked(data, venue) -> dict[str, str]:
    """poll key -> instrument id of the instruments discovery selected."""
    return {i.poll_key: i.instrument_id for i in read_snapshot(snapshot_path(data, venue)).instruments}


def _truth_id(venue: str, rec: dict) -> str:
    return rec["tx_hash"] if venue == PM else rec["trade_id"]


def check_exactly_once(sim, data, venue, lo_ms: int, hi_ms: int) -> int:
    """Every simulated trade of a tracked instrument in [lo, hi] recorded once; every recorded
    trade is a simulated one, with its price, size and side; returns how many were compared."""
    tracked = _tracked(data, venue)
    recs = h.records(data, venue, "trades", "trade")
    keys = Counter(r["key"] for r in recs)
    assert [k for k, n in keys.items() if n > 1] == [], f"{venue}: trades written twice"
    truth = [t for t in sim.trades(venue) if t["key"] in tracked]
    by_id = {(tracked[t["key"]], t["id"]): t for t in truth}
    got = {(r["instrument_id"], _truth_id(venue, r)): r for r in recs}
    for k, r in got.items():
        t = by_id.get(k)
        assert t is not None, f"{venue}: recorded trade {k} is not one the venue made"
        assert Decimal(str(r["size"])) == Decimal(t["shares"]), (r, t)
    want = {k for k, t in by_id.items() if lo_ms <= t["ts_ms"] <= hi_ms}
    missing = want - set(got)
    assert not missing, f"{venue}: {len(missing)} of {len(want)} trades missing, e.g. {sorted(missing)[:3]}"
    return len(want)


def run_in_thread(sim, data, mp, venues, seconds, during=None, **extra):
    settings = h.prepare(sim, data, mp, venues=venues, streams=True, trades=True, **{**FAST, **extra})
    poller = Poller(settings)
    with h.poller_thread(poller):
        t0 = time.time()
        if during is not None:
            during()
        time.sleep(max(0.0, seconds - (time.time() - t0)))
        lo, hi = int(t0 * 1000), int(time.time() * 1000) - 3000
        time.sleep(3.0)  # the last polls and backfills land
    return lo, hi


@pytest.mark.slow
def test_every_trade_of_three_venues_is_recorded_once(tmp_path, monkeypatch):
    with run_sim("--markets", "6", "--seed", "41", "--tick-s", "0.2", "--change-prob", "0.6") as sim:
        # from the moment the poller started: before an instrument's feed is subscribed, its
        # trades are fetched (Polymarket), and the polled tapes start there
        lo, hi = run_in_thread(sim, tmp_path, monkeypatch, f"{PM},{LIM},{KAL}", 14)
        n = {v: check_exactly_once(sim, tmp_path, v, lo, hi) for v in (PM, LIM, KAL)}
        assert all(x > 0 for x in n.values()), n
        assert schema.scan(tmp_path).problems == []  # books, feeds and trades
        for v in (LIM, KAL):
            assert h.records(tmp_path, v, "trades", "gap") == []
        # one feed_start gap per Polymarket instrument: from the start to its first snapshot, filled
        gaps = h.records(tmp_path, PM, "trades", "gap")
        assert sorted(g["instrument_id"] for g in gaps) == sorted(_tracked(tmp_path, PM).values())
        assert all(g["reason"] == "feed_start" and g["backfilled"] is True and g["to_ts_ms"] - g["from_ts_ms"] < 10_000
                   for g in gaps), gaps
        for v in (PM, LIM, KAL):
            st = [s["trades"] for s in h.stats(tmp_path, v) if s.get("trades")]
            assert sum(s["recorded"] for s in st) == len(h.records(tmp_path, v, "trades", "trade"))
        pm = h.records(tmp_path, PM, "trades", "trade")
        assert "ws" in {r["source"] for r in pm}  # the feed brings them, once subscribed
        assert {r["source"] for r in h.records(tmp_path, KAL, "trades", "trade")} == {"rest"}


@pytest.mark.slow
def test_a_feed_disconnect_is_backfilled_from_the_data_api(tmp_path, monkeypatch):
    with run_sim("--markets", "6", "--seed", "42", "--tick-s", "0.2", "--change-prob", "0.6") as sim:
        def during():
            time.sleep(3)
            sim.control(venue=PM, ws_disconnect=True)
            time.sleep(1)
            sim.control(venue=PM, ws_disconnect=True)  # again while it reconnects

        lo, hi = run_in_thread(sim, tmp_path, monkeypatch, PM, 12, during,
                               STREAMS__POLYMARKET__RECONNECT_MIN_S="1.5")
        assert check_exactly_once(sim, tmp_path, PM, lo, hi) > 0
        gaps = h.records(tmp_path, PM, "trades", "gap")
        assert {g["reason"] for g in gaps} == {"feed_start", "feed_down"}, gaps
        assert all(g["backfilled"] is True for g in gaps), gaps
        recs = h.records(tmp_path, PM, "trades", "trade")
        assert any(r["source"] == "rest" for r in recs), "the outage's trades come from the data API"
        # Every REST trade came from the backfill of a gap: fetched once the gap had closed, and no
        # older than where that backfill reads from (the earlier of the gap's start and the tape's
        # mark, the run's start here, less overlap_s = 2 s, less 1 s as the venue's clock is whole
        # seconds). It reads up to when its page arrives, so on a loaded machine it may also hold
        # trades of the first seconds after the feed came back; their feed copies are then
        # duplicates (exactly-once above).
        start_ms = lo
        spans = [(g["instrument_id"], min(g["from_ts_ms"], start_ms) - 3000, g["to_ts_ms"]) for g in gaps]
        for r in recs:
            if r["source"] == "rest":
                assert r["ob_ts_ms"] <= r["ts_ms"] + 1000, r  # not from the future
                assert any(i == r["instrument_id"] and a <= r["ob_ts_ms"] and b <= r["ts_ms"]
                           for i, a, b in spans), (r["ts_ms"], r["ob_ts_ms"], spans)


@pytest.mark.slow
def test_sigterm_then_restart_neither_loses_nor_repeats_a_trade(tmp_path, monkeypatch):
    with run_sim("--markets", "4", "--seed", "43", "--tick-s", "0.2", "--change-prob", "0.6") as sim:
        h.prepare(sim, tmp_path, monkeypatch, venues=f"{PM},{KAL}", streams=True, trades=True, **FAST)
        env = h.sim_env(sim, tmp_path, venues=f"{PM},{KAL}", streams=True, trades=True, **FAST)
        t0 = time.time()
        with h.poll_process(env, tmp_path / "poll1.log") as p1:
            time.sleep(7)
            rc, took = h.sigterm(p1, 30)
        assert rc == 0, (tmp_path / "poll1.log").read_text()[-2000:]
        time.sleep(4)  # trades go on while nothing records
        with h.poll_process(env, tmp_path / "poll2.log") as p2:
            time.sleep(8)
            h.sigterm(p2, 30)
        hi = int(time.time() * 1000) - 4000
        for v in (PM, KAL):
            assert check_exactly_once(sim, tmp_path, v, int(t0 * 1000) + 4000, hi) > 0
            gaps = h.records(tmp_path, v, "trades", "gap")
            # Polymarket: the first run's start to each feed's first snapshot, then the downtime
            want = {"feed_start", "restart"} if v == PM else {"restart"}
            assert gaps and {g["reason"] for g in gaps} == want and all(g["backfilled"] for g in gaps), gaps
        # every trade record valid, no torn line after SIGTERM
        assert schema.scan(tmp_path).problems == []  # books, feeds and trades
