"""Restart gaps: a `collector poll` killed with SIGKILL and started again records what it missed.

Real poller processes against the simulator on one data directory (collector/poller/restart.py):

* kill -9 mid-run, kill -9 during start-up (before the new process polled anything) and kill -9
  right after the new process replaced the state file: every hole of more than 3 s between two
  books of an instrument lies inside a ``restart`` gap of it (``from_ts_ms`` a book on disk at or
  before the hole, ``to_ts_ms`` the first book after it), and every restart gap spans a kill;
* a SIGTERM or the end of ``--duration`` is clean: the next process writes no restart gap;
* with stream capture on, ``book_changes`` gets a ``restart`` gap before the new feed snapshot.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson

from collector.poller.shard import in_shard
from collector.sim.testing import run_sim
from collector.store.layout import poller_state_path
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema

POLY, LIM = H.POLY, H.LIM
HOLE_S = 3.0  # books come every ~1 s; a longer silence is a hole that needs a gap
STATS_S = 1.0  # H.FAST: the state file is rewritten at every stats record


def _state(data: Path, venue: str, shard: str = "0of1") -> dict | None:
    try:
        return orjson.loads(poller_state_path(data, venue, shard).read_bytes())
    except FileNotFoundError:
        return None


def _restart_gaps(ds: schema.Dataset, venue: str, stream: str = "orderbooks") -> list[dict]:
    return [g for g in ds.of(venue, stream, "gap") if g["reason"] == "restart"]


def _holes(ds: schema.Dataset, venue: str) -> dict[str, list[tuple[int, int]]]:
    times: dict[str, list[int]] = {}
    for b in ds.books(venue):
        times.setdefault(b["instrument_id"], []).append(b["ts_ms"])
    out: dict[str, list[tuple[int, int]]] = {}
    for iid, ts in times.items():
        ts.sort()
        out[iid] = [(a, b) for a, b in zip(ts, ts[1:]) if b - a > HOLE_S * 1000]
    return out


def _run_for(env: dict, log: Path, seconds: float, stop: int = signal.SIGKILL) -> tuple[int, float]:
    """A poll process, ``seconds`` after its first book of this run, then ``stop``; (pid, stop time)."""
    before = set(h.stream_files(env_data(env), POLY, "orderbooks"))
    with h.poll_process(env, log) as proc:
        assert h.wait_for(lambda: set(h.stream_files(env_data(env), POLY, "orderbooks")) - before, 20), "no books"
        time.sleep(seconds)
        t = time.time()
        proc.send_signal(stop)
        proc.wait(timeout=30)
    return proc.pid, t


def env_data(env: dict) -> Path:
    return Path(env["COLLECTOR_DATA_DIR"])


def test_sigkill_mid_run_and_during_start_up_leaves_restart_gaps(tmp_path, monkeypatch):
    with run_sim("--markets", "8", "--seed", "61", "--no-rate-limit") as sim:
        H.prepare(sim, tmp_path, monkeypatch)
        env = H.env_for(sim, tmp_path)
        log = tmp_path / "poll.log"
        kills = []
        _, t = _run_for(env, log, 6.0)  # A: killed mid-run (long enough that a gap from its start fails the lag bound)
        kills.append(t)
        time.sleep(2.0)
        proc = h.start_poll_process(env, log)  # B: killed during start-up, before any book
        time.sleep(0.3)
        kills.append(time.time())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _state(tmp_path, POLY)["pid"] != proc.pid
        time.sleep(1.0)
        with h.poll_process(env, log) as proc:  # C: killed right after it replaced the state file
            assert h.wait_for(lambda: (_state(tmp_path, POLY) or {}).get("pid") == proc.pid, 20)
            kills.append(time.time())
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        time.sleep(2.0)
        _, t_term = _run_for(env, log, 3.0, stop=signal.SIGTERM)  # D: runs, then a clean SIGTERM
        assert _state(tmp_path, POLY)["clean"] is True and _state(tmp_path, LIM)["clean"] is True
        n_before = {v: len(_restart_gaps(schema.scan(tmp_path, allow_torn=True), v)) for v in (POLY, LIM)}
        proc = h.start_poll_process(env, log, "--duration", "3")  # E: after a clean stop
        assert proc.wait(timeout=30) == 0

    ds = schema.scan(tmp_path, allow_torn=True)
    schema.assert_clean(ds)
    figures = {}
    for v in (POLY, LIM):
        gaps = _restart_gaps(ds, v)
        assert len(gaps) == n_before[v], f"{v}: restart gaps after a clean stop"
        assert gaps, v
        for g in gaps:
            assert g["failures"] == 0 and g["instrument_id"], g
            assert any(g["from_ts_ms"] is None or g["from_ts_ms"] <= k * 1000 <= g["to_ts_ms"] for k in kills), g
        H.check_gaps(ds, v)  # from and to are books on disk
        by_iid: dict[str, list[dict]] = {}
        for g in gaps:
            by_iid.setdefault(g["instrument_id"], []).append(g)
        holes = _holes(ds, v)
        n_holes = 0
        for iid, hs in holes.items():
            for a, b in hs:
                if b < t_term * 1000 - 500 or a > t_term * 1000 + 500:  # the clean stop's hole needs none
                    n_holes += 1
                    assert any((g["from_ts_ms"] or 0) <= a and g["to_ts_ms"] >= b for g in by_iid.get(iid, [])), \
                        (v, iid, a, b, by_iid.get(iid))
        assert n_holes >= len({g["instrument_id"] for g in gaps}), (v, n_holes)
        lag = [max(a for a, _ in holes[g["instrument_id"]] if a >= (g["from_ts_ms"] or 0)) - g["from_ts_ms"]
               for g in gaps if g["from_ts_ms"] is not None and holes.get(g["instrument_id"])]
        # from_ts_ms is the last book listed at the last mark: at most a stats interval and a poll
        # before the hole, plus 2 s for a loop starved on a loaded machine (4.3 s seen on 2 cores)
        assert lag and max(lag) <= (STATS_S + 1.5 + 2.0) * 1000, (v, max(lag))
        figures[v] = {"restart_gaps": len(gaps), "holes": n_holes, "max_from_lag_ms": max(lag)}
    H.report("restart_gaps", **figures)


def test_sigkill_with_stream_capture_puts_a_restart_gap_before_the_new_snapshot(tmp_path, monkeypatch):
    with run_sim("--markets", "6", "--seed", "62", "--no-rate-limit") as sim:
        H.prepare(sim, tmp_path, monkeypatch, venues="polymarket", streams=True)
        env = H.env_for(sim, tmp_path, venues="polymarket", streams=True)
        _, t_kill = _run_for(env, tmp_path / "poll.log", 3.0)
        time.sleep(1.0)
        restart_pid, _ = _run_for(env, tmp_path / "poll.log", 3.0, stop=signal.SIGTERM)
    recs = h.records(tmp_path, POLY, "book_changes")  # file order, which is the replay order
    gaps = [r for r in recs if r["record_type"] == "gap" and r["reason"] == "restart"]
    assert gaps
    for g in gaps:
        assert g["from_ts_ms"] is not None and g["from_ts_ms"] <= t_kill * 1000 <= g["to_ts_ms"], g
        assert "failures" not in g
    # the replay rule: after the gap, the instrument's next record is the new feed's snapshot
    first_after = {}
    for i, r in enumerate(recs):
        if r["record_type"] == "gap" and r["reason"] == "restart":
            first_after[r["instrument_id"]] = i
    for iid, i in first_after.items():
        nxt = next((r for r in recs[i + 1:] if r.get("instrument_id") == iid), None)
        assert nxt is None or nxt["record_type"] == "book_snapshot", (iid, nxt)
    rest = [g for g in h.gaps(tmp_path, POLY) if g["reason"] == "restart"]
    assert {g["instrument_id"] for g in rest} == {g["instrument_id"] for g in gaps}
    assert restart_pid


def test_shards_keep_their_own_state(tmp_path, monkeypatch):
    """Two shards on one data directory, both killed: each its own state file, listing exactly
    its own slice of the active set."""
    with run_sim("--markets", "8", "--seed", "63", "--no-rate-limit") as sim:
        H.prepare(sim, tmp_path, monkeypatch, venues="polymarket")
        procs = {}
        for shard in ("0/2", "1/2"):
            env = H.env_for(sim, tmp_path, venues="polymarket", POLLER__SHARD=shard)
            procs[shard] = h.start_poll_process(env, tmp_path / f"poll-{shard[0]}.log")
        try:
            for shard, p in procs.items():
                slug = shard.replace("/", "of")
                assert h.wait_for(lambda: (_state(tmp_path, POLY, slug) or {}).get("pid") == p.pid, 20), shard
        finally:
            for p in procs.values():
                p.kill()
                p.wait(timeout=10)
    keys = {}
    for shard in procs:
        st = _state(tmp_path, POLY, shard.replace("/", "of"))
        assert st["clean"] is False and st["shard"] == shard
        keys[shard] = set(st["last_ok_ms"])
        assert keys[shard] and all(in_shard(f"{POLY}:{k}", shard) for k in keys[shard])
    assert keys["0/2"].isdisjoint(keys["1/2"])
    assert {f"{POLY}:{k}" for k in keys["0/2"] | keys["1/2"]} == set(H.instrument_ids(tmp_path, POLY))
    assert _state(tmp_path, POLY) is None  # no unsharded state
