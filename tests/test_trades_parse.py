"""The venues' trade payloads, parsed from real captures (shared/real-payloads) and paged over a
real loopback HTTP server: exact decimals, both clocks, the aggressor side, keys that match
whichever way a trade arrives."""

from __future__ import annotations

from decimal import Decimal

import orjson
from hypothesis import given
from hypothesis import strategies as st

from collector.config.settings import KalshiSettings, PolymarketSettings
from collector.config.trades import KalshiTradesSettings, PolymarketTradesSettings
from collector.model.records import Instrument
from collector.venues.kalshi import KalshiClient
from collector.venues.kalshi_trades import iso_ms, parse_trade
from collector.venues.limitless_trades import parse_event
from collector.venues.polymarket import PolymarketClient
from collector.venues.polymarket_trades import parse_api_trade, parse_ws_trade
from tests.http_stub import Reply, http_stub
from tests.real_payloads import load


def _poly(token: str, market: str = "0xm") -> Instrument:
    return Instrument(venue="polymarket", poll_key=token, market_id=market)


def test_kalshi_tape_from_the_real_capture():
    page = load("kalshi/trades_ccxt_elonmars.json")
    inst = Instrument(venue="kalshi", poll_key="KXELONMARS-99", market_id="KXELONMARS-99")
    got = [parse_trade(t, {inst.poll_key: inst}, 7) for t in page["trades"]]
    assert [(r.price, r.size, r.side, r.key) for r in got] == [
        ("0.1", "9.4", "buy", "6e924506-2c0f-5717-f9b7-eae14a12202a"),
        ("0.1", "0.94", "buy", "201c12b1-e3fb-7783-370e-5cb5072ef066"),
        ("0.08", "9.4", "sell", "5abd8b71-1197-4c2c-7686-2f19a30727c9"),  # the taker bought NO at 0.92
    ]
    assert got[0].ob_ts_ms == 1781284271927 and got[0].ts_ms == 7 and got[0].trade_id == got[0].key
    assert parse_trade(page["trades"][0], {}, 7) is None  # a ticker we do not track
    assert parse_trade({**page["trades"][0], "count_fp": None}, {inst.poll_key: inst}, 7) == "no_price_or_size"


def test_rfc3339_to_ms_is_exact():
    assert iso_ms("2026-06-12T17:11:11.927591Z") == 1781284271927
    assert iso_ms("2026-06-12T17:11:11.999999+00:00") == 1781284271999
    assert iso_ms("2026-06-12T19:11:11Z") == 1781291471000
    assert iso_ms("0001-01-01T00:00:00Z") is None and iso_ms("junk") is None and iso_ms(None) is None


def test_polymarket_data_api_captures_strings_and_numbers_alike():
    ccxt = load("polymarket/data_api_trades_ccxt_jd_vance.json")
    insts = {t["asset"]: _poly(t["asset"], t["conditionId"]) for t in ccxt}
    got = [parse_api_trade(t, insts, 1) for t in ccxt]
    assert [(r.price, r.size, r.side, r.ob_ts_ms) for r in got][:2] == [
        ("0.152", "256", "buy", 1781289172000), ("0.848", "11.77", "sell", 1781288635000)]
    assert all(r.tx_hash == t["transactionHash"] and r.source == "rest" for r, t in zip(got, ccxt))
    nt = load("polymarket/data_api_trades_nautilus_sanitized.json")["data"]
    insts = {t["token_id"]: _poly(t["token_id"]) for t in nt}
    got = [parse_api_trade(t, insts, 1) for t in nt]
    assert (got[1].price, got[1].size) == ("0.709999959", "1.464786")  # JSON numbers, exact text


def test_polymarket_feed_trades_from_the_real_captures():
    frames = load("polymarket/ws_market_stream_polymorph.json")
    events = [f for f in frames if isinstance(f, dict) and f.get("event_type") == "last_trade_price"]
    assert len(events) == 10
    recs = [parse_ws_trade(e, _poly(e["asset_id"], e["market"]), 5) for e in events]
    assert len({r.key for r in recs}) == 10  # ten transactions, ten trades
    assert all(r.price == "0.002" and r.size == "5" and r.side == "buy" and r.fee_rate_bps == "0" for r in recs)
    assert recs[0].ob_ts_ms == 1790491136979
    legacy = load("polymarket/ws_legacy_2024_nautilus.json")["last_trade_price_2024_08"]
    assert parse_ws_trade(legacy, _poly(legacy["asset_id"]), 5) == "no_transaction_hash"  # 2024: no hash sent


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.999"), places=3),
       st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2))
def test_one_trade_has_one_key_on_the_feed_and_on_the_data_api(price, size):
    inst = _poly("123")
    ws = parse_ws_trade({"asset_id": "123", "price": str(price), "size": str(size), "side": "SELL",
                         "timestamp": "1786728467101", "transaction_hash": "0xabc"}, inst, 1)
    rest = parse_api_trade(orjson.loads(orjson.dumps({"asset": "123", "price": float(price), "size": float(size),
                                                      "side": "SELL", "timestamp": 1786728467,
                                                      "transactionHash": "0xabc"})), {"123": inst}, 1)
    assert ws.key == rest.key and Decimal(ws.price) == price and Decimal(rest.size) == size


def test_limitless_events_in_the_yes_books_terms():
    inst = Instrument(venue="limitless", poll_key="btc-up", market_id="btc-up", size_decimals=6)
    kinds = frozenset(["trade"])
    ev = {"id": "e1", "type": "trade", "timestamp": "2026-12-01T10:00:00.123Z",
          "data": {"side": "BUY", "outcome": "YES", "price": "0.52", "contracts": "12500000", "txHash": "0xab"}}
    r = parse_event(ev, inst, 5, kinds, 6)
    assert (r.price, r.size, r.side, r.key, r.ob_ts_ms) == ("0.52", "12.5", "buy", "btc-up:e1", 1796119200123)
    no = parse_event({**ev, "data": {**ev["data"], "outcome": "NO"}}, inst, 5, kinds, 6)
    assert (no.price, no.side) == ("0.48", "sell")  # buying NO at 0.52 sells YES at 0.48
    assert parse_event({**ev, "type": "ORDER_PLACED"}, inst, 5, kinds, 6) == "not_a_trade"
    assert parse_event({**ev, "data": {"price": "0.5"}}, inst, 5, kinds, 6) == "no_price_or_size"


def test_kalshi_pages_the_tape_to_its_end_over_http():
    page = load("kalshi/trades_ccxt_elonmars.json")
    with http_stub() as stub:
        def answer(req):
            if req.query.get("cursor") == "c2":
                return Reply.json({"cursor": "", "trades": page["trades"][2:]})
            return Reply.json({"cursor": "c2", "trades": page["trades"][:2]})
        stub.route("GET", "/markets/trades", answer)
        client = KalshiClient(KalshiSettings(api_url=stub.url, min_spacing_s=0))
        src = client.trades_source(KalshiTradesSettings())
        inst = Instrument(venue="kalshi", poll_key="KXELONMARS-99", market_id="KXELONMARS-99")
        got = src.fetch("", {inst.poll_key: inst}, 1781270000000)
        client.close()
    assert [r.key[:8] for r in got.trades] == ["6e924506", "201c12b1", "5abd8b71"]
    assert got.error is None and got.pages == 2 and got.covered_from_ms == 1781270000000
    assert [c.query.get("min_ts") for c in stub.calls] == ["1781270000", "1781270000"]


def test_polymarket_pages_back_only_as_far_as_asked():
    ccxt = load("polymarket/data_api_trades_ccxt_jd_vance.json")
    with http_stub() as stub:
        stub.route("GET", "/trades", lambda req: Reply.json(ccxt[int(req.query["offset"]):][:2]))
        client = PolymarketClient(PolymarketSettings(gamma_url=stub.url, clob_url=stub.url))
        src = client.trades_source(PolymarketTradesSettings(data_url=stub.url, page_limit=2))
        insts = {t["asset"]: _poly(t["asset"], t["conditionId"]) for t in ccxt}
        newest = int(ccxt[0]["timestamp"]) * 1000
        got = src.fetch(ccxt[0]["conditionId"], insts, newest)  # only the newest second
        client.close()
    assert [r.tx_hash for r in got.trades] == [ccxt[0]["transactionHash"]]
    assert got.covered_from_ms <= newest and got.pages == 1
    assert stub.calls[0].query == {"market": ccxt[0]["conditionId"], "limit": "2", "offset": "0", "takerOnly": "true"}
