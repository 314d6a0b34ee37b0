"""Issue 12 items 1 and 7 against payloads captured from the real venues.

Item 1: the default Limitless rule selects every BTC/ETH CLOB market by underlying (real slugs
look like ``dollarbtc-above-dollar8633210-on-...``), no AMM market and nothing else.
Item 7: the market records carry the venue metadata needed to read a book (strike, series,
underlying, fees, minimum size...), parsed by the discovery code as the payload has them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import responses
import respx

from collector.config.settings import Rule, load_settings
from collector.discovery.run import discover_venue
from collector.model.decimals import dec_text
from collector.model.details import polymarket_details
from collector.read import market_catalog
from collector.venues.limitless import LimitlessClient
from collector.venues.polymarket import PolymarketClient
from tests import real_payloads as real
from tests.reliability import schema

API = "https://api.limitless.test"
GAMMA = "https://gamma.test"
NOW = 1765_000_000_000  # before every real expiry; the default rules have no time bound


def _settings(tmp_path: Path):
    fast = {"discovery_rate_requests": 100_000, "discovery_rate_window_s": 1.0, "discovery_retry_max_s": 0.0}
    return load_settings(
        data_dir=tmp_path,
        limitless={"api_url": API, "min_spacing_s": 0.0, "share_spacing": False, **fast},
        polymarket={"gamma_url": GAMMA, "clob_url": "https://clob.test", **fast},
    )


def _serve_limitless(rsps, items: list[dict]) -> None:
    # The clob pass gets the real objects (AMM ones included: the client must drop them);
    # the group pass an empty page (no real group payload exists).
    def cb(request):
        tt = request.params.get("tradeType")
        page = int(request.params.get("page", "1"))
        data = items if tt == "clob" and page == 1 else []
        return 200, {}, orjson.dumps({"data": data, "totalMarketsCount": len(items) if tt == "clob" else 0})

    rsps.add_callback(responses.GET, f"{API}/markets/active", callback=cb)


def _records(tmp_path: Path, venue: str) -> list[dict]:
    recs = [orjson.loads(x) for f in sorted((tmp_path / venue / "markets").rglob("*.jsonl"))
            for x in f.read_bytes().splitlines()]
    for r in recs:
        assert schema.validate(r) == [], r["slug"]  # the record validator knows every new field
    return recs


def _discover_limitless(tmp_path: Path, items: list[dict]):
    s = _settings(tmp_path)
    client = LimitlessClient(s.limitless)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _serve_limitless(rsps, items)
        rep = discover_venue(s, "limitless", client=client, now_ms=NOW)
    client.close()
    assert rep.ok, rep.error
    return rep, {r["slug"]: r for r in _records(tmp_path, "limitless") if r["event"] == "added"}


# Expected selection, from the payloads by hand: the oracle ticker (drmanhattan), the recorder's
# own "underlying" label (limitlessmm), a football market (ccxt).
SELECTED = {
    "btc-up-or-down-5-min-1782064530057",
    "dollarbtc-above-dollar8864073-on-dec-17-0100-utc-1765929729571",
    "dollarbtc-above-dollar8688546-on-dec-17-0100-utc-1765929692219",
    "dollarbtc-above-dollar8785054-on-dec-17-0100-utc-1765929606588",
    "dollarbtc-above-dollar8633210-on-dec-17-1000-utc-1765879202744",
    "dollareth-above-dollar292253-on-dec-17-0600-utc-1765864802450",
}
AMM = {"dollareth-above-dollar296191-on-dec-17-0100-utc-1765929606569",
       "dollarxrp-above-dollar19294-on-dec-17-0100-utc-1765929606568"}


def test_default_limitless_rule_selects_every_real_btc_eth_clob_market(tmp_path):
    by_file = real.limitless_markets()
    items = [m for ms in by_file.values() for m in ms]
    assert len(items) == 17
    rep, added = _discover_limitless(tmp_path, items)
    assert set(added) == SELECTED
    for m in items:
        slug, tt = m["slug"], m["tradeType"]
        assert (slug in AMM) == (tt == "amm")
        if tt == "amm":
            assert slug not in added
    # Cross-check against the labels in the payload itself.
    for rec in real.load("limitless/markets_active_limitlessmm_records.json"):
        want = rec["underlying"] in ("BTC", "ETH") and rec["raw"]["tradeType"] == "clob"
        assert (rec["slug"] in added) == want, rec["slug"]
    for m in by_file["markets_active_drmanhattan.json"]:
        assert (m["slug"] in added) == (m["priceOracleMetadata"]["ticker"] in ("BTC", "ETH"))
    assert rep.skipped.get("amm") == 2
    assert {r["reason"] for r in added.values()} == {"rule:btc-eth"}


def test_limitless_market_records_carry_real_metadata(tmp_path):
    items = [m for ms in real.limitless_markets().values() for m in ms]
    s = _settings(tmp_path)
    s.limitless.rules = [Rule(name="all")]  # every open CLOB market, to see every record
    client = LimitlessClient(s.limitless)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _serve_limitless(rsps, items)
        assert discover_venue(s, "limitless", client=client, now_ms=NOW).ok
    client.close()
    recs = {r["slug"]: r for r in _records(tmp_path, "limitless")}
    cat = market_catalog(tmp_path, "limitless")
    clob = [m for m in items if m["tradeType"] == "clob"]
    assert set(recs) == {m["slug"] for m in clob}
    for m in clob:
        d = recs[m["slug"]]["details"]
        assert cat[f"limitless:{m['slug']}"]["details"] == d  # the catalog reader exposes them
        meta, st = m.get("metadata", {}), m.get("settings", {})
        if "openPrice" in meta:
            assert isinstance(d["open_price"], str) and Decimal(d["open_price"]) == Decimal(meta["openPrice"])
            assert d["open_price"] == dec_text(meta["openPrice"])
        else:
            assert "open_price" not in d
        assert d.get("stable_slug") == m.get("stableSlug")
        assert d.get("underlying") == (m.get("priceOracleMetadata") or {}).get("ticker")
        assert d["fee_enabled"] is meta["fee"]
        # minSize is raw 10^-6 units, like book sizes: written in shares.
        assert Decimal(d["min_size"]) * 10**6 == Decimal(st["minSize"])
        assert Decimal(d["max_spread"]) == Decimal(str(st["maxSpread"]))
        assert Decimal(d["daily_reward"]) == Decimal(st["dailyReward"])
        for key, field in (("rebateRate", "rebate_rate"), ("creatorFeePct", "creator_fee_pct")):
            assert (field in d) == (key in st) and (key not in st or Decimal(d[field]) == Decimal(str(st[key])))
        assert d.get("taker_delay_ms") == (int(st["takerDelayMs"]) if "takerDelayMs" in st else None)
        start = m.get("startAt")
        want = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000) if start else None
        assert recs[m["slug"]]["starts_at_ms"] == want
    btc5 = recs["btc-up-or-down-5-min-1782064530057"]
    assert btc5["details"]["open_price"] == "63947.471446920625"  # the exact strike, as text
    assert btc5["details"]["underlying"] == "BTC" and btc5["details"]["stable_slug"] == "btc-5min-price"
    assert btc5["details"]["open_price_at_ms"] == btc5["starts_at_ms"]
    above = recs["dollarbtc-above-dollar8633210-on-dec-17-1000-utc-1765879202744"]["details"]
    assert above["open_price"] == "86332.1" and "underlying" not in above and "stable_slug" not in above
    usa = recs["usa-and-australia-both-to-score-1779980360817"]
    assert usa["starts_at_ms"] is None and "open_price" not in usa["details"]  # startAt: null


FIELDS = {  # Gamma key -> details field
    "negRiskMarketID": "neg_risk_market_id",
    "groupItemTitle": "group_item_title",
    "orderMinSize": "order_min_size",
    "feesEnabled": "fees_enabled",
    "feeType": "fee_type",
    "acceptingOrdersTimestamp": "accepting_orders_at_ms",
    "closedTime": "closed_at_ms",
    "umaResolutionStatus": "uma_resolution_status",
}


def _gamma_time_ms(text: str) -> int:
    if text.endswith("+00"):
        text += ":00"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _expected(m: dict, key: str):
    v = m.get(key)
    if v is None or v == "":
        return None
    if key in ("acceptingOrdersTimestamp", "closedTime"):
        return _gamma_time_ms(v)
    if key == "orderMinSize":
        return dec_text(v)
    return v


def test_polymarket_details_from_every_real_market_object():
    seen = set()
    for m, ev in real.polymarket_markets():
        d = polymarket_details(m, ev).record()
        for key, field in FIELDS.items():
            want = _expected(m, key)
            if key == "negRiskMarketID" and want is None and ev:
                want = ev.get("negRiskMarketID")
            assert d.get(field) == want, (m.get("slug"), key)
            if want is not None:
                seen.add(field)
        fs = m.get("feeSchedule") or {}
        if fs:
            assert Decimal(d["fee_rate"]) == Decimal(str(fs["rate"])) and d["fee_taker_only"] is fs["takerOnly"]
    assert seen == set(FIELDS.values())  # the real payloads exercise every field


@respx.mock
def test_polymarket_market_records_carry_real_metadata(tmp_path):
    objs = [m for m, _ in real.polymarket_markets()]
    respx.get(f"{GAMMA}/markets/keyset").mock(return_value=httpx.Response(200, json={"markets": objs}))
    s = _settings(tmp_path)
    s.polymarket.rules = [Rule(name="all")]
    client = PolymarketClient(s.polymarket)
    assert discover_venue(s, "polymarket", client=client, now_ms=NOW).ok
    client.close()
    recs = _records(tmp_path, "polymarket")
    by_slug: dict[str, list[dict]] = {}
    for r in recs:
        by_slug.setdefault(r["slug"], []).append(r)
    open_objs = [m for m in objs if not m.get("closed") and m.get("acceptingOrders") and m.get("enableOrderBook")]
    assert set(by_slug) == {m["slug"] for m in open_objs} and len(open_objs) == 11
    cat = market_catalog(tmp_path, "polymarket")
    for m in open_objs:
        for r in by_slug[m["slug"]]:  # both outcome tokens
            d = r["details"]
            assert cat[r["instrument_id"]]["details"] == d
            for key, field in FIELDS.items():
                assert d.get(field) == _expected(m, key), (m["slug"], key)
    newsom = by_slug["will-gavin-newsom-win-the-2028-democratic-presidential-nomination-568"][0]["details"]
    assert newsom["neg_risk_market_id"] == "0x2c3d7e0eee6f058be3006baabf0d54a07da254ba47fe6e3e095e7990c7814700"
    assert newsom["group_item_title"] == "Gavin Newsom" and newsom["fee_type"] == "politics_fees"
    assert newsom["order_min_size"] == "5" and newsom["accepting_orders_at_ms"] == 1752258934000


def test_record_validator_checks_details():
    rec = {"record_type": "market", "schema_version": 1, "event": "added", "reason": "rule:x", "ts_ms": NOW,
           "venue": "limitless", "poll_key": "s", "instrument_id": "limitless:s", "market_id": "s", "outcome": "YES",
           "title": "", "slug": "s", "expires_at_ms": None, "tick_size": "0.001", "event_slug": None,
           "series_slug": None, "recurrence": None, "tags": [], "volume_24h": None, "liquidity": None,
           "starts_at_ms": None, "size_decimals": 6, "meta": {}, "details": {"open_price": "86332.1"}}
    assert schema.validate(rec) == []
    assert schema.validate({**rec, "details": None}) == []  # instrument from an older snapshot
    assert schema.validate({**rec, "details": {"open_price": 86332.1}})  # a float, not text
    assert schema.validate({**rec, "details": {"open_price": "86332.10"}})  # not canonical
    assert schema.validate({**rec, "details": {"stable_slug": None}})  # absent means omitted
    assert schema.validate({**rec, "details": {"fee_type": "x"}})  # a Polymarket key
