"""The `poller` Prefect flow under the test harness, against the venue simulator; and the venue
degradation events of flows/venue_health.py."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collector.config.settings import load_settings
from collector.discovery.run import run_discovery
from collector.sim.testing import run_sim
from flows.venue_health import DEGRADED, RECOVERED, VenueHealth, with_venue_alerts

pytestmark = pytest.mark.prefect


def data_lines(root: Path, stream: str) -> list[dict]:
    """Every record of one stream; every file must end with a newline (no torn last line)."""
    out = []
    for f in sorted(root.glob(f"*/{stream}/date=*/*.jsonl")):
        raw = f.read_bytes()
        assert raw.endswith(b"\n"), f"{f} does not end with a newline"
        out += [orjson.loads(line) for line in raw.splitlines()]
    return out


@pytest.fixture
def sim_env(tmp_path, monkeypatch):
    with run_sim("--markets", "6", "--seed", "5", "--no-rate-limit") as sim:
        for k, v in sim.env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("COLLECTOR_POLLER__STATS_INTERVAL_S", "0.5")
        monkeypatch.setenv("COLLECTOR_POLLER__HEARTBEAT_INTERVAL_S", "0.5")
        reports = run_discovery(load_settings())
        assert all(r.ok for r in reports), [r.error for r in reports]
        yield sim, tmp_path, {r.venue: r.instruments for r in reports}


def test_poller_flow_completes_writes_books_and_heartbeats(sim_env, prefect_harness, monkeypatch):
    import flows.poller as fp

    sim, data, counts = sim_env
    events: list[tuple[str, dict, dict]] = []
    real_emit = fp.emit_event

    def spy(event, resource, payload=None, **kw):
        events.append((event, resource, payload))
        return real_emit(event=event, resource=resource, payload=payload, **kw)

    monkeypatch.setattr(fp, "emit_event", spy)
    state = fp.poller(duration_s=3.0, return_state=True)
    assert state.is_completed(), state.message

    books = data_lines(data, "orderbooks")
    polled = {b["instrument_id"] for b in books}
    assert {b["venue"] for b in books} == {"polymarket", "limitless"}
    assert sum(counts.values()) == len(polled)  # every active instrument got at least one book
    assert data_lines(data, "poll_stats")

    names = [e for e, _, _ in events]
    assert names.count("collector.poller.heartbeat") >= 2
    venue_beats = [(r, p) for e, r, p in events if e == "collector.poller.venue.heartbeat"]
    assert {r["collector.venue"] for r, _ in venue_beats} == {"polymarket", "limitless"}
    last = {r["collector.venue"]: p for r, p in venue_beats}
    assert last["polymarket"]["active_instruments"] == counts["polymarket"]
    assert {"coverage", "cooldown_remaining_s", "books_written"} <= set(last["limitless"])


# -- venue degradation (flows/venue_health.py) ----------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def beat(venue: str, cooldown: float = 0.0, active: int = 10, stale: int = 0) -> dict:
    v = {"venue": venue, "cooldown_remaining_s": cooldown, "cooldown_reason": "http_429" if cooldown else None,
         "active_instruments": active, "stale_instruments": stale}
    return {"venues": [v], "ts_ms": 0}


def test_venue_cooldown_alert_after_threshold_repeat_and_recovery():
    sent: list[tuple[str, dict, dict]] = []
    clock = Clock()
    h = VenueHealth(cooldown_alert_s=300, repeat_s=900, clock=clock,
                    emit=lambda **kw: sent.append((kw["event"], kw["resource"], kw["payload"])))
    for _ in range(10):  # 270 s of cooldown: not yet
        h.observe(beat("limitless", cooldown=20))
        clock.t += 30
    assert sent == []
    h.observe(beat("limitless", cooldown=20))  # 300 s
    assert [(e, p["reason"], p["for_s"]) for e, _, p in sent] == [(DEGRADED, "cooldown", 300.0)]
    assert sent[0][1] == {"prefect.resource.id": "collector.poller.limitless", "collector.venue": "limitless",
                          "collector.shard": "0/1"}
    clock.t += 30
    h.observe(beat("limitless", cooldown=20))  # still degraded, inside repeat_s: silent
    assert len(sent) == 1
    clock.t += 900
    h.observe(beat("limitless", cooldown=20))  # repeat
    assert len(sent) == 2
    clock.t += 30
    h.observe(beat("limitless", cooldown=0))  # recovered once
    h.observe(beat("limitless", cooldown=0))
    assert [e for e, _, _ in sent] == [DEGRADED, DEGRADED, RECOVERED]


def test_venue_cooldown_interrupted_restarts_the_clock_and_coverage_has_a_grace():
    sent: list[tuple[str, dict]] = []
    clock = Clock()
    h = VenueHealth(cooldown_alert_s=60, min_coverage=0.9, coverage_grace_s=120,
                    emit=lambda **kw: sent.append((kw["event"], kw["payload"])), clock=clock)
    h.observe(beat("polymarket", cooldown=5))
    clock.t += 50
    h.observe(beat("polymarket", cooldown=0))  # out of cooldown before 60 s: no alert, no recovery
    clock.t += 50
    h.observe(beat("polymarket", cooldown=5))
    assert sent == []
    h.observe(beat("polymarket", active=10, stale=5))  # coverage 0.5 from now on
    clock.t += 119
    h.observe(beat("polymarket", active=10, stale=5))
    assert sent == []
    clock.t += 1
    h.observe(beat("polymarket", active=10, stale=5))
    assert [(e, p["reason"], p["coverage"]) for e, p in sent] == [(DEGRADED, "coverage", 0.5)]
    h.observe(beat("polymarket", active=0, stale=0))  # no instruments: coverage unknown, not low
    assert sent[-1][0] == RECOVERED


def test_with_venue_alerts_calls_both_and_never_raises_from_the_check():
    seen, sent = [], []

    def emit(**kw):
        raise RuntimeError("API down")

    h = VenueHealth(cooldown_alert_s=0, emit=emit)
    cb = with_venue_alerts(seen.append, health=h)
    cb(beat("limitless", cooldown=10))  # the emit failure is logged, not raised
    assert len(seen) == 1 and cb.health is h

    cb2 = with_venue_alerts(seen.append, settings=load_settings())
    assert cb2.health.cooldown_alert_s == 300.0 and cb2.health.min_coverage == 0.9
    assert sent == []
