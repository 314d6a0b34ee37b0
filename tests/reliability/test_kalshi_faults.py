"""Kalshi faults against the real simulator, asserted on the data (the cases of
test_venue_faults.py, for the third venue and its own quirk: a 429 never carries Retry-After).

Each case: warm up healthy, inject the fault, remove it, wait until every instrument has a book
again, run 2.5 s more, stop; then scan every file (schema, duplicates, level order) and check
coverage before / during / after, books on disk against poll_stats, gap records for every
instrument that failed and came back, and the expected poll_error kinds and counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema

KAL = H.KAL
# Six KXBTCD strikes in batches of 3: two requests a second, inside the anonymous budget, so a
# fault rate shows up within seconds. Only Kalshi runs: isolation between venues is proven by
# test_venue_faults.py.
ENV = {
    "VENUES": KAL,
    "KALSHI__RULES": orjson.dumps([{"name": "six", "event_slug_prefixes": ["KXBTCD"], "max_markets": 6}]).decode(),
    "KALSHI__BOOKS_BATCH_SIZE": "3",
}


@dataclass
class Case:
    id: str
    control: dict[str, Any]
    during_floor: float = 0.0
    errors: set[str] = field(default_factory=set)
    allowed: set[str] = field(default_factory=set)
    counters: tuple[str, ...] = ()
    cooldown_gap: bool = False
    fault_s: float = 4.0
    env: dict[str, str] = field(default_factory=dict)
    recover_s: float = 8.0


CASES = [
    # The venue sends no Retry-After: the pause is cooldown_429_s (2 s here), then polling resumes.
    Case("429_storm_no_retry_after", {"throttle_for_s": 3.0}, counters=("http_429",), cooldown_gap=True, fault_s=3.0),
    Case("429_sporadic", {"throttle_rate": 0.4}, during_floor=0.2, counters=("http_429",), cooldown_gap=True),
    Case("5xx_burst", {"error_rate": 1.0}, errors={"server_error"}, counters=("http_5xx",), cooldown_gap=True,
         fault_s=3.0),
    Case("malformed_json_html_pages", {"malformed_rate": 0.25, "html_rate": 0.1}, during_floor=0.4,
         errors={"bad_payload"}, allowed={"server_error", "client_error"}),
    Case("timeouts", {"timeout_rate": 0.2, "timeout_s": 5}, during_floor=0.4, errors={"timeout"},
         counters=("timeouts",), env={"KALSHI__READ_TIMEOUT_S": "0.5"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kalshi_fault(case: Case, tmp_path, monkeypatch):
    with run_sim("--markets", "40", "--seed", "43") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, **{**ENV, **case.env})
        ids = H.instrument_ids(tmp_path, KAL, sim)
        assert len(ids) == 6
        m = H.Marks()
        with h.poller_thread(Poller(settings)):
            m("start")
            time.sleep(1.5)
            sim.control(venue=KAL, **case.control)
            m("on")
            time.sleep(case.fault_s)
            sim.control(reset=True)
            m("off")

            def recovered() -> bool:
                seen = {b["instrument_id"] for b in h.books(tmp_path, KAL) if b["ts_ms"] >= m["off"] * 1000}
                return set(ids) <= seen

            t_rec = time.time() if h.wait_for(recovered, case.recover_s * H.SLACK, step=0.2) else None
            time.sleep(2.5)
            m("end")
        log = sim.requests(venue=KAL, limit=5000)["recent"]
    faults = [e for e in log if e["fault"]]
    assert faults, "the simulator injected nothing: the case proved nothing"
    assert not any("retry-after" in str(e).lower() for e in faults)
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    assert t_rec is not None, f"not every instrument had a book within {case.recover_s} s of the fault's end"
    H.check_totals(ds, KAL)
    H.check_gaps(ds, KAL)
    before = H.cov(ds, KAL, ids, m["start"] + 1, m["on"])
    during = H.cov(ds, KAL, ids, m["on"], m["off"])
    after = H.cov(ds, KAL, ids, t_rec, m["end"])
    assert before.ratio >= 0.95, before
    assert after.ratio >= 0.95, after
    assert during.ratio >= case.during_floor, during
    kinds = {e["error_type"] for e in ds.errors(KAL)}
    assert case.errors <= kinds <= case.errors | case.allowed | ({"rate_limited"} if "http_429" in case.counters else set()), kinds
    st = ds.stats(KAL)
    for counter in case.counters:
        assert sum(r[counter] for r in st) > 0, counter
    if case.cooldown_gap:
        assert [g for g in ds.gaps(KAL) if g["instrument_id"] is None], "no cooldown gap record"
    failed = {e["instrument_id"] for e in ds.errors(KAL)} - {None}
    gapped = {g["instrument_id"] for g in ds.gaps(KAL)}
    assert failed <= gapped, failed - gapped
    H.report("kalshi_" + case.id, faults=len(faults), recovery_s=t_rec - m["off"], before=before, during=during,
             after=after)


def test_kalshi_discovery_next_to_a_running_poller_stays_inside_the_budget(tmp_path, monkeypatch):
    """The poller at the default anonymous budget (2 requests/s, here 40 instruments in batches of
    10) and discovery passes meanwhile, each paging every configured series: together they stay
    under the simulator's ~3 requests/s bucket through the shared spacing, so no pass fails and
    the venue answers no 429."""
    from collector.config.settings import load_settings
    from collector.discovery.run import run_discovery

    rule = orjson.dumps([{"name": "crypto", "event_slug_prefixes": ["KXBTCD", "KXETHD"], "max_markets": 40}]).decode()
    with run_sim("--markets", "120", "--seed", "44") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, VENUES=KAL, KALSHI__RULES=rule, KALSHI__BOOKS_BATCH_SIZE="10")
        ids = H.instrument_ids(tmp_path, KAL, sim)
        m = H.Marks()
        with h.poller_thread(Poller(settings)):
            m("start")
            passes = []
            for _ in range(3):
                passes += run_discovery(load_settings())
                time.sleep(0.5)
            m("end")
        log = sim.requests(venue=KAL, limit=5000)["recent"]
    assert all(r.ok for r in passes), [r.error for r in passes]
    assert sum(1 for e in log if e["endpoint"] == "kalshi.events") == 3 * len(settings.kalshi.series)
    assert not [e for e in log if e["status"] == 429], "the shared budget let a 429 through"
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    ratio = H.cov(ds, KAL, ids, m["start"] + 2, m["end"], fresh_ms=int(2.5 * 1000 * len(ids) / 20 + 1000)).ratio
    H.report("kalshi_discovery_next_to_poller", instruments=len(ids), passes=len(passes), coverage=ratio)
    assert ratio >= 0.9
