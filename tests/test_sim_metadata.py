"""End to end: discovery against the simulator's real-shaped catalogue writes the venue
metadata into the markets log, and the default Limitless rule picks BTC/ETH by underlying."""

from __future__ import annotations

from decimal import Decimal

import httpx

from collector.config.settings import Rule, load_settings
from collector.discovery.run import run_discovery
from collector.read import market_catalog
from collector.read.catalog import market_records
from collector.sim.testing import run_sim
from tests.reliability import schema


def _lim_objects(sim) -> dict[str, dict]:
    out, page = {}, 1
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        while True:
            data = c.get(sim.limitless_url + "/markets/active", params={"page": page, "limit": 25}).json()["data"]
            for m in data:
                out[m["slug"]] = m
                for ch in m.get("markets") or []:
                    out[ch["slug"]] = ch
            if len(data) < 25:
                return out
            page += 1


def test_discovery_against_sim_records_metadata_and_selects_by_underlying(tmp_path):
    with run_sim("--markets", "40", "--seed", "5", "--no-rate-limit") as sim:
        s = load_settings(
            data_dir=tmp_path,
            polymarket={"gamma_url": sim.gamma_url, "clob_url": sim.clob_url, "rules": [Rule(name="all")]},
            limitless={"api_url": sim.limitless_url, "min_spacing_s": 0.0, "share_spacing": False},
        )
        assert [r.name for r in s.limitless.rules] == ["btc-eth"]  # the default rule
        reps = run_discovery(s)
        assert all(r.ok for r in reps), reps
        objs = _lim_objects(sim)

    lim = [r for r in market_records(tmp_path, "limitless") if r["event"] == "added"]
    for r in lim + market_records(tmp_path, "polymarket"):
        assert schema.validate(r) == [], r["slug"]
    # Every BTC/ETH CLOB market of the catalogue, in both real families, and nothing else.
    want = {slug for slug, m in objs.items() if m.get("tradeType") == "clob" and not m["expired"] and (
        slug.startswith(("dollarbtc-above-", "dollareth-above-", "btc-up-or-down-", "eth-up-or-down-")))}
    assert {r["slug"] for r in lim} == want
    assert any(x.startswith("dollarbtc-above-") for x in want) and any(x.startswith("btc-up-or-down-") for x in want)
    for r in lim:
        m, d = objs[r["slug"]], r["details"]
        assert isinstance(d["open_price"], str) and Decimal(d["open_price"]) == Decimal(m["metadata"]["openPrice"])
        assert d["fee_enabled"] is True
        assert Decimal(d["min_size"]) * 10**6 == Decimal(m["settings"]["minSize"])
        if "-up-or-down-" in r["slug"]:
            assert d["underlying"] == r["slug"][:3].upper() and d["stable_slug"] == m["stableSlug"]
            assert r["starts_at_ms"] == d["open_price_at_ms"] and d["taker_delay_ms"] == 0
        else:
            assert "underlying" not in d and "stable_slug" not in d  # not sent on "above" markets

    poly = market_records(tmp_path, "polymarket")
    neg = [r for r in poly if r["details"].get("neg_risk_market_id")]
    assert neg and all(r["details"]["group_item_title"] for r in neg)
    crypto = [r for r in poly if r["slug"].startswith(("btc-up-or-down-", "eth-up-or-down-"))]
    assert crypto and all(r["details"]["fee_type"] == "crypto_fees" and r["details"]["fees_enabled"] for r in crypto)
    assert all(r["details"]["order_min_size"] in ("1", "5") for r in poly)
    assert all(isinstance(r["details"]["accepting_orders_at_ms"], int) for r in poly)
    cat = market_catalog(tmp_path, "polymarket")
    assert all(cat[r["instrument_id"]]["details"] == r["details"] for r in poly)
