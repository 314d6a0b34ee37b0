"""Kalshi's orderbook_delta capture end to end: the poller with stream capture against the
simulator's Kalshi channel (real sockets, a signed upgrade), the recorded stream replayed and
reconciled with REST, and dropped messages turned into seq gaps, resyncs and gap records."""

from __future__ import annotations

import time

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from collector import read
from collector.config.settings import load_settings
from collector.discovery.run import run_discovery
from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from tests import helpers as h

KAL = "kalshi"
RULE_6 = orjson.dumps([{"name": "btcd", "event_slug_prefixes": ["KXBTCD"], "max_markets": 6}]).decode()


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _env(sim, data, **extra) -> dict[str, str]:
    env = {**sim.env, "COLLECTOR_DATA_DIR": str(data), "COLLECTOR_VENUES": KAL, "COLLECTOR_KALSHI__RULES": RULE_6,
           "COLLECTOR_KALSHI__API_KEY_ID": "sim-key", "COLLECTOR_KALSHI__PRIVATE_KEY": _pem(),
           # the simulator's bucket is the anonymous one: keep the anonymous REST budget
           "COLLECTOR_KALSHI__RATE_REQUESTS": "20", "COLLECTOR_KALSHI__MIN_SPACING_S": "0.35",
           "COLLECTOR_STREAMS__KALSHI__ENABLED": "true", "COLLECTOR_STREAMS__KALSHI__REST_INTERVAL_S": "2",
           "COLLECTOR_POLLER__STATS_INTERVAL_S": "1"}
    env.update({f"COLLECTOR_{k}": v for k, v in extra.items()})
    return env


@pytest.fixture
def running(tmp_path, monkeypatch):
    with run_sim("--markets", "40", "--seed", "21", "--tick-s", "0.2", "--change-prob", "0.5") as sim:
        h.apply_env(monkeypatch, _env(sim, tmp_path))
        settings = load_settings()
        (rep,) = run_discovery(settings)
        assert rep.ok and rep.instruments == 6, rep
        time.sleep(0.4)
        yield sim, settings, tmp_path


def test_stream_recorded_and_agrees_with_rest(running):
    sim, settings, data = running
    with h.poller_thread(Poller(settings)):
        assert h.wait_for(lambda: sim.feeds()["kalshi"]["subscribed"] == 6, 10)
        time.sleep(5)
    feeds = sim.feeds()["kalshi"]  # after the stop: every change it recorded was sent before
    recs = h.records(data, KAL, "book_changes")
    snaps = [r for r in recs if r["record_type"] == "book_snapshot"]
    changes = [r for r in recs if r["record_type"] == "book_change"]
    assert {s["instrument_id"] for s in snaps} == {i.instrument_id for i in _ids(data)}
    st = h.stats(data, KAL)
    why = [s["stream"]["mismatches"] for s in st if s.get("stream") and s["stream"]["mismatches"]]
    assert changes and all(c["synced"] for c in changes) and all(c["ob_ts_ms"] for c in changes), why[-1:]
    assert feeds["sent"]["orderbook_delta"] >= len(changes)
    rep = read.reconcile(data, KAL)
    assert rep.compared > 0 and rep.disagreed == 0, rep.disagreements[:2]
    assert sum(s["stream"]["connects"] for s in st if s.get("stream")) == 1
    assert not any(s["stream"]["mismatches"] for s in st if s.get("stream"))


def test_dropped_messages_are_seq_gaps_resynced_and_in_the_data(running):
    sim, settings, data = running
    with h.poller_thread(Poller(settings)):
        assert h.wait_for(lambda: sim.feeds()["kalshi"]["subscribed"] == 6, 10)
        time.sleep(1.5)
        sim.control(venue=KAL, ws_drop_rate=0.2)
        time.sleep(2.5)
        sim.control(venue=KAL, ws_drop_rate=0.0)
        time.sleep(4)
        feeds = sim.feeds()["kalshi"]
    assert feeds["faults"]["dropped"] > 0 and feeds["connections_total"] >= 2  # gaps made it reconnect
    recs = h.records(data, KAL, "book_changes")
    gaps = [r for r in recs if r["record_type"] == "gap"]
    assert gaps and any(g["reason"].startswith("resync:seq_gap") for g in gaps), [g["reason"] for g in gaps]
    st = h.stats(data, KAL)
    assert sum(s["stream"]["mismatches"].get("seq_gap", 0) for s in st if s.get("stream")) > 0
    # every book is live again after the fault: a snapshot after the last gap for each instrument
    last_gap = {g["instrument_id"]: g["to_ts_ms"] for g in gaps if g["reason"] != "stream_stopped"}
    for iid, t in last_gap.items():
        assert any(r["record_type"] == "book_snapshot" and r["instrument_id"] == iid and r["ts_ms"] >= t for r in recs)
    rep = read.reconcile(data, KAL)
    assert rep.disagreed == 0, rep.disagreements[:2]


def test_without_a_key_the_channel_refuses_and_rest_carries_on(tmp_path, monkeypatch):
    with run_sim("--markets", "40", "--seed", "21") as sim:
        env = _env(sim, tmp_path)
        del env["COLLECTOR_KALSHI__API_KEY_ID"], env["COLLECTOR_KALSHI__PRIVATE_KEY"]
        h.apply_env(monkeypatch, env)
        monkeypatch.delenv("COLLECTOR_KALSHI__API_KEY_ID", raising=False)
        monkeypatch.delenv("COLLECTOR_KALSHI__PRIVATE_KEY", raising=False)
        settings = load_settings()
        assert run_discovery(settings)[0].ok
        time.sleep(0.4)
        with h.poller_thread(Poller(settings)):
            time.sleep(3)
        assert sim.feeds()["kalshi"]["bad_requests"] >= 1 and sim.feeds()["kalshi"]["connections"] == 0
    books = h.books(tmp_path, KAL)
    assert len({b["instrument_id"] for b in books}) == 6
    st = h.stats(tmp_path, KAL)
    assert sum(s["stream"]["connect_failures"] for s in st if s.get("stream")) >= 1


def _ids(data):
    from collector.store.layout import snapshot_path
    from collector.store.snapshot import read_snapshot

    return read_snapshot(snapshot_path(data, KAL)).instruments


def test_a_dropped_connection_is_a_gap_then_live_again(running):
    sim, settings, data = running
    with h.poller_thread(Poller(settings)):
        assert h.wait_for(lambda: sim.feeds()["kalshi"]["subscribed"] == 6, 10)
        time.sleep(1.5)
        sim.control(venue=KAL, ws_disconnect=True)
        assert h.wait_for(lambda: sim.feeds()["kalshi"]["connections_total"] >= 2
                          and sim.feeds()["kalshi"]["subscribed"] == 6, 15)
        time.sleep(2)
    recs = h.records(data, KAL, "book_changes")
    drops = [r for r in recs if r["record_type"] == "gap" and r["reason"].startswith("ws_")]
    assert {g["instrument_id"] for g in drops} == {i.instrument_id for i in _ids(data)}
    for g in drops:  # each closed by the new connection's snapshot
        assert any(r["record_type"] == "book_snapshot" and r["instrument_id"] == g["instrument_id"]
                   and r["ts_ms"] == g["to_ts_ms"] for r in recs)
    assert read.reconcile(data, KAL).disagreed == 0
