"""Stream capture under process and feed faults, asserted on the data.

* SIGTERM: exit 0 in seconds, no torn line, every message received is on disk (our per-connection
  ``seq`` has no hole: with the custom feature off, every market-channel message writes at least
  one record), the data reaches up to the signal, and every live book's stream ends in a
  ``stream_stopped`` gap.
* SIGKILL: at most the last line torn, the last record at most ``fsync_interval_s`` (+ slack)
  before the kill, the restart writes new files, a ``restart`` gap spanning the kill, and starts
  every book again from a snapshot.
* A disconnect storm: every drop of the connection is a gap for every live book, each followed
  by the book's next snapshot, and the books end equal to the venue's.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson

from collector.sim.testing import run_sim
from collector.store.files import iter_jsonl_lines
from tests import helpers as h
from tests.test_stream_e2e import PM, check_final_books_equal_rest, run

SIM = ("--markets", "6", "--seed", "61", "--tick-s", "0.2", "--change-prob", "0.5")
EXTRA = {"STREAMS__POLYMARKET__CUSTOM_FEATURE_ENABLED": "false"}


def _lines(data: Path) -> list[tuple[Path, bytes]]:
    out = []
    for f in h.stream_files(data, PM, "book_changes"):
        out += [(f, line) for line in iter_jsonl_lines(f)]
    return out


def _seq_holes(recs: list[dict]) -> dict[str, list[int]]:
    seqs: dict[str, set[int]] = {}
    for r in recs:
        if "conn" in r and r["record_type"] != "gap" and r["seq"] > 0:
            seqs.setdefault(r["conn"], set()).add(r["seq"])
    return {c: sorted(set(range(1, max(s) + 1)) - s) for c, s in seqs.items() if set(range(1, max(s) + 1)) - s}


def _env(sim, data, monkeypatch, **extra):
    h.prepare(sim, data, monkeypatch, venues=PM, streams=True, **EXTRA, **extra)
    return h.sim_env(sim, data, venues=PM, streams=True, **EXTRA, **extra)


def test_sigterm_flushes_every_stream_record(tmp_path, monkeypatch):
    with run_sim(*SIM) as sim:
        env = _env(sim, tmp_path, monkeypatch)
        with h.poll_process(env, tmp_path / "poll.log") as proc:
            assert h.wait_for(lambda: len(_lines(tmp_path)) > 30, 20), "no stream records"
            time.sleep(3)
            t_sig = time.time()
            rc, took = h.sigterm(proc, timeout=20)
    assert rc == 0 and took < 10, (rc, took, (tmp_path / "poll.log").read_text()[-2000:])
    raw = [line for f in h.stream_files(tmp_path, PM, "book_changes") for line in f.read_bytes().splitlines(True)]
    assert raw and all(line.endswith(b"\n") for line in raw), "a clean stop leaves no torn line"
    recs = [orjson.loads(line) for line in raw]
    assert _seq_holes(recs) == {}, "a message received was not written"
    data_recs = [r for r in recs if r["record_type"] != "gap"]
    assert t_sig - max(r["ts_ms"] for r in data_recs) / 1000 < 1.0
    live = {r["instrument_id"] for r in recs if r["record_type"] == "book_snapshot"}
    ended = {r["instrument_id"] for r in recs if r["record_type"] == "gap" and r["reason"] == "stream_stopped"}
    assert live and ended == live


def test_sigkill_loses_at_most_the_fsync_interval_and_restart_starts_from_snapshots(tmp_path, monkeypatch):
    fsync_s = 1.0
    with run_sim(*SIM) as sim:
        env = _env(sim, tmp_path, monkeypatch, WRITER__FSYNC_INTERVAL_S=str(fsync_s))
        with h.poll_process(env, tmp_path / "poll.log") as proc:
            assert h.wait_for(lambda: len(_lines(tmp_path)) > 30, 20)
            time.sleep(2.3)
            t_kill = time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        before = {f: f.read_bytes() for f in h.stream_files(tmp_path, PM, "book_changes")}
        last = max(orjson.loads(line)["ts_ms"] for _, line in _lines(tmp_path)) / 1000
        assert t_kill - last <= fsync_s + 0.5, f"last record {t_kill - last:.2f} s before the kill"
        for f, b in before.items():
            assert b.count(b"\n") >= len(b.splitlines()) - 1, f"more than the last line torn in {f}"
        proc = h.start_poll_process(env, tmp_path / "poll.log", "--duration", "4")
        assert proc.wait(timeout=30) == 0
    for f, b in before.items():
        assert f.read_bytes() == b, f"{f} changed after its process was killed"
    new = [f for f in h.stream_files(tmp_path, PM, "book_changes") if f not in before]
    assert new, "the restart writes new files"
    first: dict[str, str] = {}
    for f in new:
        for line in iter_jsonl_lines(f):
            r = orjson.loads(line)
            if r["record_type"] == "gap" and r["reason"] == "restart":  # the kill's gap comes first
                assert r["from_ts_ms"] <= t_kill * 1000 <= r["to_ts_ms"], r
                continue
            first.setdefault(r["instrument_id"], r["record_type"])
    assert first and set(first.values()) == {"book_snapshot"}, first


def test_disconnect_storm_every_drop_is_a_gap_then_a_snapshot(tmp_path, monkeypatch):
    with run_sim(*SIM) as sim:
        def during(poller):
            time.sleep(1.5)
            sim.control(venue=PM, ws_disconnect_every_s=1.5)
            time.sleep(6)
            sim.control(venue=PM, ws_disconnect_every_s=0)
            time.sleep(2)

        run(sim, tmp_path, monkeypatch, PM, 10, during, STREAMS__POLYMARKET__RECONNECT_MIN_S="0.1",
            STREAMS__POLYMARKET__RECONNECT_MAX_S="0.5", **EXTRA)
        drops = sim.feeds()[PM]["faults"]["disconnects"]
        assert check_final_books_equal_rest(sim, tmp_path, PM) > 0
    recs = h.records(tmp_path, PM, "book_changes")
    assert drops >= 3
    by_iid: dict[str, list[dict]] = {}
    for r in recs:
        by_iid.setdefault(r["instrument_id"], []).append(r)
    streamed = [rs for rs in by_iid.values() if any(r["record_type"] == "book_snapshot" for r in rs)]
    assert streamed
    for rs in streamed:
        gaps = [i for i, r in enumerate(rs) if r["record_type"] == "gap" and r["reason"] == "ws_closed"]
        assert len(gaps) >= drops - 1, (rs[0]["instrument_id"], len(gaps), drops)
        for i in gaps:  # the book is back: the next record is its new subscription's snapshot
            nxt = rs[i + 1]
            assert nxt["record_type"] == "book_snapshot" and nxt["ts_ms"] >= rs[i]["to_ts_ms"] - 1
            assert rs[i]["from_ts_ms"] <= rs[i]["to_ts_ms"]
