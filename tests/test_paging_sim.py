"""Discovery paging against the simulator with a capped page size (issue 12, item 2).

The simulator's ``page_cap`` control serves at most N items per discovery page whatever
``limit`` asks for. Discovery through the real clients must find exactly the same universe
with and without the cap: a short page is not the end of the list.
"""

from __future__ import annotations

import httpx
import pytest

from collector.config.settings import LimitlessSettings, PolymarketSettings
from collector.sim.testing import run_sim
from collector.venues.limitless import LimitlessClient
from collector.venues.polymarket import PolymarketClient

CAP = 7


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "60", "--seed", "5", "--no-rate-limit") as s:
        yield s


@pytest.fixture(autouse=True)
def _reset(sim):
    sim.control(reset=True)
    yield
    sim.control(reset=True)


def _lim(sim) -> LimitlessClient:
    return LimitlessClient(LimitlessSettings(api_url=sim.limitless_url, min_spacing_s=0.0,
                                             discovery_rate_requests=100_000, discovery_rate_window_s=1.0))


def _poly(sim) -> PolymarketClient:
    return PolymarketClient(PolymarketSettings(gamma_url=sim.gamma_url, clob_url=sim.clob_url,
                                               gamma_page_limit=25, discovery_rate_requests=100_000,
                                               discovery_rate_window_s=1.0))


def _discover(make, sim):
    c = make(sim)
    try:
        return c.discover()
    finally:
        c.close()


def test_sim_page_cap_control(sim):
    assert sim.control()["limitless"]["page_cap"] == 0
    cfg = sim.control(venue="limitless", page_cap=CAP)
    assert cfg["limitless"]["page_cap"] == CAP and cfg["polymarket"]["page_cap"] == 0
    r = httpx.get(sim.limitless_url + "/markets/active", params={"page": 1, "limit": 25, "tradeType": "clob"})
    body = r.json()
    assert len(body["data"]) == CAP < body["totalMarketsCount"]
    bad = httpx.post(sim.base + "/_sim/control", json={"page_cap": -1})
    assert bad.status_code == 400


def test_limitless_capped_pages_find_every_market_and_group_child(sim):
    full = _discover(_lim, sim)
    sim.control(venue="limitless", page_cap=CAP)
    capped = _discover(_lim, sim)
    keys = {i.poll_key for i in full.instruments}
    assert {i.poll_key for i in capped.instruments} == keys
    assert any(i.meta.group_slug for i in capped.instruments), "the sim catalogue has group children"
    assert capped.pages > full.pages  # more, shorter pages
    assert capped.paging_stops == {} and full.paging_stops == {}
    served = {p["path"] for p in sim.requests(venue="limitless", endpoint="limitless.markets_active")["recent"]}
    assert all("limit=25" in p for p in served)


def test_gamma_capped_pages_follow_the_cursor(sim):
    full = _discover(_poly, sim)
    sim.control(venue="polymarket", page_cap=CAP)
    capped = _discover(_poly, sim)
    assert {i.poll_key for i in capped.instruments} == {i.poll_key for i in full.instruments}
    assert len(capped.instruments) > 0
    assert capped.pages > full.pages
    assert capped.paging_stops == {}
