"""Kalshi under the Prefect flows (the test harness), against the simulator: the discovery flow
and the poller flow take the third venue with no venue-specific code in flows/."""

from __future__ import annotations

import orjson
import pytest

from collector.sim.testing import run_sim
from tests import helpers as h

pytestmark = pytest.mark.prefect

RULE_4 = orjson.dumps([{"name": "btcd", "event_slug_prefixes": ["KXBTCD"], "max_markets": 4}]).decode()


def test_discovery_and_poller_flows_record_kalshi(tmp_path, monkeypatch, prefect_harness):
    import flows.discovery as fd
    import flows.poller as fp

    events: list[tuple[str, dict]] = []
    real_emit = fp.emit_event

    def spy(event, resource, payload=None, **kw):
        events.append((event, resource))
        return real_emit(event=event, resource=resource, payload=payload, **kw)

    monkeypatch.setattr(fp, "emit_event", spy)
    with run_sim("--markets", "30", "--seed", "8") as sim:
        h.apply_env(monkeypatch, {**sim.env, "COLLECTOR_DATA_DIR": str(tmp_path), "COLLECTOR_VENUES": "kalshi,limitless",
                                  "COLLECTOR_KALSHI__RULES": RULE_4, "COLLECTOR_LIMITLESS__RULES": h.TOP2_RULE,
                                  "COLLECTOR_LIMITLESS__MIN_SPACING_S": "0.4",
                                  "COLLECTOR_STREAMS__LIMITLESS__ENABLED": "false",
                                  "COLLECTOR_POLLER__HEARTBEAT_INTERVAL_S": "0.5"})
        state = fd.discovery(return_state=True)
        assert state.is_completed(), state.message
        result = {r["venue"]: r for r in state.result()}
        assert result["kalshi"]["ok"] and result["kalshi"]["instruments"] == 4, result
        state = fp.poller(duration_s=3.0, return_state=True)
        assert state.is_completed(), state.message
    books = h.books(tmp_path, "kalshi")
    assert {b["instrument_id"] for b in books} and len({b["instrument_id"] for b in books}) == 4
    beats = {r["collector.venue"] for e, r in events if e == "collector.poller.venue.heartbeat"}
    assert beats == {"kalshi", "limitless"}
