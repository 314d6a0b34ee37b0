"""The simulator's trades: the per-book tape (both advance paths, bounded), the REST trade
endpoints of each venue (shapes of the captured payloads, paging), the feeds' trade messages
(the same trades, at the book change's instant), the trade faults and the ground truth
``/_sim/trades``, against a real simulator subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from collector.sim.clock import LazyBook, SimClock
from collector.sim.tape import Tape, TapeBudget, pack, unpack
from collector.sim.testing import run_sim
from tests.feed_frames import read_for
from tests.real_payloads import load

KAL_HEADERS = {"KALSHI-ACCESS-KEY": "k", "KALSHI-ACCESS-SIGNATURE": "s", "KALSHI-ACCESS-TIMESTAMP": "1"}


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "8", "--seed", "11", "--tick-s", "0.05", "--change-prob", "0.6", "--no-rate-limit") as s:
        yield s


@pytest.fixture(scope="module")
def http(sim):
    with httpx.Client(base_url=sim.base, timeout=10, trust_env=False) as c:
        yield c


def get(http: httpx.Client, path: str, **params: Any) -> Any:
    r = http.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def truth(http: httpx.Client, venue: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
    params = {k: v for k, v in (("venue", venue), ("key", key)) if v}
    return get(http, "/_sim/trades", **params)["trades"]


def poly_market(sim: Any) -> dict[str, Any]:
    return next(m for m in sim.markets(venue="polymarket")["polymarket"] if m["has_book"])


def busy(http: httpx.Client, venue: str, keys: list[str], want: int = 3, timeout: float = 8.0) -> str:
    """A key of ``venue`` with at least ``want`` trades on its tape (the books trade as they move)."""
    end = time.monotonic() + timeout
    while True:
        for k in keys:
            if len(truth(http, venue, k)) >= want:
                return k
        assert time.monotonic() < end, f"no {venue} book traded {want} times"
        time.sleep(0.2)


# --------------------------------------------------------------------------- tape (in process)


def _book(seed: int, key: str, n: int, tick_s: float = 0.01) -> LazyBook:
    return LazyBook(SimClock(seed, 0.0, tick_s, 0.7, 1_000.0), key, n)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([100, 1000]))
def test_both_advance_paths_make_the_same_book_and_tape(seed, n):
    fast, slow = _book(seed, "k", n), _book(seed, "k", n)
    seen: list[Any] = []
    slow.listener = lambda b, trade, bids, asks: seen.append((trade, b.tape.last()))
    end = 1_000_000 + 60_000
    fast.advance(end)
    slow.advance(end)
    assert (fast.walk.bids, fast.walk.asks, fast.ts_ms) == (slow.walk.bids, slow.walk.asks, slow.ts_ms)
    assert fast.tape.trades() == slow.tape.trades()
    # The listener sees each trade right after it went on the tape.
    for trade, last in (x for x in seen if x[0] is not None):
        assert (last.price, last.cents, last.at_bid) == trade


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.sampled_from([100, 1000, 10000]))
def test_a_trade_takes_exactly_its_size_off_the_level_it_hits(seed, n):
    b = _book(seed, "k", n)
    checked = 0

    def on_change(book: LazyBook, trade: Any, bids0: list, asks0: list) -> None:
        nonlocal checked
        if trade is None:
            return
        price, cents, at_bid = trade
        before, after = (bids0, book.walk.bids) if at_bid else (asks0, book.walk.asks)
        other0, other1 = (asks0, book.walk.asks) if at_bid else (bids0, book.walk.bids)
        if other0 != other1:
            return  # the walk rebuilt the whole book (no room left): not a trade's doing alone
        assert before[0][0] == price  # at the touch
        left = dict(map(tuple, after)).get(price, 0)
        assert before[0][1] - left == cents > 0
        checked += 1

    b.listener = on_change
    b.advance(1_000_000 + 30_000)
    assert checked > 0 or not b.tape.trades()


@given(seq=st.integers(1, 1 << 40), ts=st.integers(0, (1 << 43) - 1), n=st.sampled_from([100, 1000, 10000]),
       cents=st.integers(1, 500_000_000), at_bid=st.booleans(), data=st.data())
def test_packed_entries_round_trip(seq, ts, n, cents, at_bid, data):
    p = data.draw(st.integers(0, n))
    assert tuple(unpack(pack(seq, ts, p, n, cents, at_bid))) == (seq, ts, p, n, cents, at_bid)


def test_tapes_stay_within_their_bounds():
    budget = TapeBudget(1, per_book=30, budget=10_000)
    t = Tape("a", budget)
    for i in range(100):
        t.add(i, 5, 100, 100, False)
    assert len(t.entries) == 30 and t.seq == 100 and t.trades()[-1].seq == 100
    # Many books share the budget: each keeps budget // books, never fewer than 50.
    many = TapeBudget(1, per_book=2000, budget=100_000)
    tapes = [Tape(str(i), many) for i in range(10_000)]
    for tp in tapes[:200]:
        for i in range(300):
            tp.add(i, 5, 100, 100, True)
    assert many.keep() == 50 and all(len(tp.entries) == 50 for tp in tapes[:200])
    del tapes, tp
    assert many.tapes == 0  # a dropped book gives its share back


def test_ids_depend_on_seed_book_and_seq_only():
    from collector.sim.tape import tx_hash, uuid_text

    a, b, c = Tape("poly:1", TapeBudget(3)), Tape("poly:1", TapeBudget(3)), Tape("poly:1", TapeBudget(4))
    assert tx_hash(a, 7) == tx_hash(b, 7) != tx_hash(c, 7)
    assert len(tx_hash(a, 7)) == 66 and tx_hash(a, 7).startswith("0x")
    assert [len(x) for x in uuid_text(a, 7).split("-")] == [8, 4, 4, 4, 12]


# --------------------------------------------------------------------------- REST shapes


def test_data_api_items_have_the_captured_keys_and_json_numbers(sim, http):
    real = load("polymarket/data_api_trades_ccxt_jd_vance.json")
    m = poly_market(sim)
    busy(http, "polymarket", m["tokens"], 1)
    items = get(http, "/data-api/trades", market=m["condition_id"])
    assert isinstance(items, list) and items
    for it in items:
        assert list(it) == list(real[0])  # the keys, in the captured order
        assert type(it["size"]) in (int, float) and type(it["price"]) in (int, float)
        assert type(it["timestamp"]) is int and it["timestamp"] < 10**11  # seconds
        assert type(it["outcomeIndex"]) is int and it["asset"] == m["tokens"][it["outcomeIndex"]]
        assert it["conditionId"] == m["condition_id"] and it["side"] in ("BUY", "SELL")
        assert it["transactionHash"].startswith("0x") and len(it["transactionHash"]) == 66
    # The nautilus capture (numbers kept): the same fields, snake_case.
    naut = load("polymarket/data_api_trades_nautilus_sanitized.json")["data"][0]
    assert type(naut["size"]) in (int, float) and type(naut["timestamp"]) is int


def test_kalshi_trades_have_the_captured_keys(sim, http):
    real = load("kalshi/trades_ccxt_elonmars.json")
    tickers = sim.live_tickers()
    t = busy(http, "kalshi", tickers, 1)
    d = get(http, "/kalshi/trade-api/v2/markets/trades", ticker=t, limit=1000)
    assert set(d) == set(real) and d["trades"]
    for it in d["trades"]:
        assert set(it) == set(real["trades"][0])
        assert it["ticker"] == t and it["is_block_trade"] is False
        assert len(it["yes_price_dollars"].split(".")[1]) == 4 and len(it["count_fp"].split(".")[1]) == 2
        assert abs(float(it["yes_price_dollars"]) + float(it["no_price_dollars"]) - 1) < 1e-9
        assert it["created_time"].endswith("Z") and len(it["created_time"].split(".")[1]) == 7  # µs + Z
        side = it["taker_outcome_side"]
        assert it["taker_side"] == side and it["taker_book_side"] == {"yes": "bid", "no": "ask"}[side]


def test_limitless_events_shape(sim, http):
    slug = busy(http, "limitless", sim.live_slugs(), 2)
    d = get(http, f"/limitless/markets/{slug}/events", limit=100)
    assert set(d) == {"events", "totalPages"}
    trades = [e for e in d["events"] if e["type"] == "trade"]
    assert trades
    for e in d["events"]:
        assert set(e) == {"id", "type", "timestamp", "data"} and e["timestamp"].endswith("Z")
    for e in trades:
        assert set(e["data"]) == {"side", "outcome", "price", "contracts", "txHash"}
        assert e["data"]["contracts"].isdigit()
    stamps = [e["timestamp"] for e in d["events"]]
    assert stamps == sorted(stamps, reverse=True)
    gt = {r["id"]: r for r in sim.trades("limitless", slug)}
    for e in trades:
        r = gt[e["id"]]
        assert (r["price"], r["size"], r["side"], r["tx_hash"]) == (e["data"]["price"], e["data"]["contracts"],
                                                                    e["data"]["side"], e["data"]["txHash"])
        assert float(r["shares"]) * 1e6 == pytest.approx(int(r["size"]))


# --------------------------------------------------------------------------- paging


def test_data_api_offset_paging_walks_a_frozen_market(sim, http):
    m = poly_market(sim)
    busy(http, "polymarket", m["tokens"], 4)
    sim.markets("expire", venue="polymarket", id=m["id"])  # the book stops: a stable tape
    full = get(http, "/data-api/trades", market=m["condition_id"], limit=1000)
    pages = [get(http, "/data-api/trades", market=m["condition_id"], limit=3, offset=o) for o in range(0, len(full), 3)]
    assert [it for p in pages for it in p] == full
    gt = truth(http, "polymarket", m["tokens"][0]) + truth(http, "polymarket", m["tokens"][1])
    assert {it["transactionHash"] for it in full} == {r["id"] for r in gt}
    assert [it["timestamp"] for it in full] == sorted((it["timestamp"] for it in full), reverse=True)
    for tok in m["tokens"]:
        only = get(http, "/data-api/trades", market=m["condition_id"], asset=tok, limit=1000)
        assert only == [it for it in full if it["asset"] == tok]
    both = get(http, "/data-api/trades", market=m["condition_id"], limit=1000, takerOnly="false")
    assert both[::2] == full and len(both) == 2 * len(full)
    assert all(a["transactionHash"] == b["transactionHash"] and a["side"] != b["side"] for a, b in zip(both[::2], both[1::2]))


def test_kalshi_cursor_and_time_window(sim, http):
    busy(http, "kalshi", sim.live_tickers(), 3)
    end = time.monotonic() + 10
    while True:  # more than one page of trades before a closed window (nothing more can land in it)
        max_ts = int(time.time()) - 1
        every = [r for r in truth(http, "kalshi") if r["ts_ms"] <= max_ts * 1000]
        if len(every) > 5 or time.monotonic() > end:
            break
        time.sleep(0.3)
    got, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 5, "max_ts": max_ts}
        if cursor:
            params["cursor"] = cursor
        d = get(http, "/kalshi/trade-api/v2/markets/trades", **params)
        got += d["trades"]
        pages += 1
        cursor = d["cursor"]
        if not cursor:
            break
    assert cursor is None  # all markets: the end is null (one ticker: "")
    assert [t["trade_id"] for t in got] == [r["id"] for r in every] and pages >= 2
    # min_ts cuts the older end; one ticker's last page ends with "".
    mid = every[len(every) // 2]["ts_ms"] // 1000
    win = get(http, "/kalshi/trade-api/v2/markets/trades", limit=1000, min_ts=mid, max_ts=max_ts)["trades"]
    assert [t["trade_id"] for t in win] == [r["id"] for r in every if r["ts_ms"] >= mid * 1000]
    one = get(http, "/kalshi/trade-api/v2/markets/trades", ticker=every[0]["key"], limit=1000)
    assert one["cursor"] == ""


# --------------------------------------------------------------------------- REST consistency


def _kal_levels(book: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    ob = book["orderbook_fp"]
    return dict(map(tuple, ob["yes_dollars"])), dict(map(tuple, ob["no_dollars"]))


def test_a_trade_is_the_size_its_level_lost_between_rest_books():
    # Every tick is a draw (change_prob 1): the book a read returns in [T - tick, T) is the one
    # just before the change at T, and in [T, T + tick) the one just after.
    tick = 100
    with run_sim("--markets", "4", "--seed", "5", "--tick-s", str(tick / 1000), "--change-prob", "1",
                 "--no-rate-limit") as s, httpx.Client(base_url=s.base, timeout=10, trust_env=False) as http:
        tickers = [m["ticker"] for m in s.markets(venue="kalshi")["kalshi"] if m["has_book"] and not m["illiquid"]][:4]
        snaps: list[tuple[int, int, dict[str, Any]]] = []
        end = time.monotonic() + 6
        while time.monotonic() < end:
            t0 = get(http, "/_sim/trades", venue="kalshi", key=tickers[0])["now_ms"]
            books = get(http, "/kalshi/trade-api/v2/markets/orderbooks", tickers=tickers)["orderbooks"]
            t1 = get(http, "/_sim/trades", venue="kalshi", key=tickers[0])["now_ms"]
            snaps.append((t0, t1, {b["ticker"]: b for b in books}))
            time.sleep(0.005)
        trades = [r for t in tickers for r in truth(http, "kalshi", t)]
    checked = 0
    for tr in trades:
        at, tk = tr["ts_ms"], tr["key"]
        before = [b[tk] for t0, t1, b in snaps if t0 >= at - tick and t1 < at]
        after = [b[tk] for t0, t1, b in snaps if t0 >= at and t1 < at + tick]
        if not before or not after:
            continue
        (yb, nb), (ya, na) = _kal_levels(before[-1]), _kal_levels(after[0])
        if tr["side"] == "no":  # sold YES into the YES bid at the trade's price
            lvl0, lvl1, other0, other1, px = yb, ya, nb, na, tr["price"]
        else:  # bought the YES ask: the NO bid at 1 - price
            lvl0, lvl1, other0, other1, px = nb, na, yb, ya, f"{1 - float(tr['price']):.4f}"
        if other0 != other1:
            continue  # the whole book was rebuilt in that change
        lost = round(float(lvl0[px]) - float(lvl1.get(px, "0")), 2)
        assert f"{lost:.2f}" == tr["size"], tr
        checked += 1
    assert checked >= 5, (checked, len(trades), len(snaps))


# --------------------------------------------------------------------------- feeds


def _poly_events(frames: list[str]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        if f != "PONG":
            d = json.loads(f)
            out.extend(d if isinstance(d, list) else [d])
    return out


def test_last_trade_price_matches_the_data_api(sim, http):
    real = load("polymarket/ws_misc_frames_netqo.json")["lastTradeFrame"]
    polymorph = [e for e in load("polymarket/ws_market_stream_polymorph.json")
                 if isinstance(e, dict) and e.get("event_type") == "last_trade_price"]
    ms = [m for m in sim.markets(venue="polymarket")["polymarket"] if m["has_book"] and not m["expired"]][:4]
    tokens = [t for m in ms for t in m["tokens"]]
    with connect(sim.poly_ws_url, max_size=None) as ws:
        ws.send(json.dumps({"assets_ids": tokens, "type": "market", "initial_dump": False}))
        evs = [e for e in _poly_events(read_for(ws, 2.0)) if e["event_type"] == "last_trade_price"]
    assert evs
    items = {}
    for m in ms:
        for it in get(http, "/data-api/trades", market=m["condition_id"], limit=10_000):
            items[it["transactionHash"]] = it
    for e in evs:
        assert list(e) == list(real) == list(polymorph[0])
        it = items[e["transaction_hash"]]
        assert (e["asset_id"], e["side"], int(e["timestamp"]) // 1000) == (it["asset"], it["side"], it["timestamp"])
        assert float(e["price"]) == it["price"] and float(e["size"]) == it["size"] and e["fee_rate_bps"] == "0"
    # Every trade of those books in the window reached the feed, once.
    lo, hi = int(evs[0]["timestamp"]), int(evs[-1]["timestamp"]) - 300  # the end of the read may cut a batch
    gt = [r for t in tokens for r in truth(http, "polymarket", t) if lo <= r["ts_ms"] <= hi]
    assert gt and sorted(r["id"] for r in gt) == sorted(e["transaction_hash"] for e in evs
                                                       if lo <= int(e["timestamp"]) <= hi)
    every = {r["id"]: r for t in tokens for r in truth(http, "polymarket", t)}
    for e in evs:  # the ground truth speaks the feed's text
        r = every[e["transaction_hash"]]
        assert (r["key"], r["price"], r["size"], r["side"], r["ts_ms"]) == (
            e["asset_id"], e["price"], e["size"], e["side"], int(e["timestamp"]))


def _kal_subscribe(ws: Any, tickers: list[str], channels: list[str]) -> None:
    ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": channels, "market_tickers": tickers}}))


def test_kalshi_trade_channel_follows_the_deltas_and_matches_rest(sim, http):
    tickers = sim.live_tickers()[:6]
    with connect(sim.env["COLLECTOR_STREAMS__KALSHI__URL"], additional_headers=KAL_HEADERS, max_size=None) as ws:
        _kal_subscribe(ws, tickers, ["orderbook_delta", "trade"])
        msgs = [json.loads(f) for f in read_for(ws, 2.0)]
    subs = [m for m in msgs if m["type"] == "subscribed"]
    assert [s["msg"]["channel"] for s in subs] == ["orderbook_delta", "trade"]
    tsid = subs[1]["msg"]["sid"]
    trades = [m for m in msgs if m["type"] == "trade"]
    assert trades
    want = set(load("kalshi/trades_ccxt_elonmars.json")["trades"][0]) - {"created_time", "ticker"}
    for i, m in enumerate(msgs):
        if m["type"] != "trade":
            continue
        assert set(m) == {"type", "sid", "msg"} and m["sid"] == tsid  # no seq on this channel
        t = m["msg"]
        assert set(t) == want | {"market_ticker", "ts", "ts_ms"} and t["ts"] == t["ts_ms"] // 1000
        prev = msgs[i - 1]  # right after the deltas of the same change
        assert prev["type"] in ("orderbook_delta", "trade") and prev["msg"]["ts_ms"] == t["ts_ms"]
        if prev["type"] == "orderbook_delta":
            assert prev["msg"]["market_ticker"] == t["market_ticker"]
    rest = {}
    for tk in {m["msg"]["market_ticker"] for m in trades}:
        for it in get(http, "/kalshi/trade-api/v2/markets/trades", ticker=tk, limit=1000)["trades"]:
            rest[it["trade_id"]] = it
    for m in trades:
        t, it = m["msg"], rest[m["msg"]["trade_id"]]
        assert {k: t[k] for k in want} == {k: it[k] for k in want} and t["market_ticker"] == it["ticker"]
        assert it["created_time"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t["ts"])))
    lo, hi = trades[0]["msg"]["ts_ms"], trades[-1]["msg"]["ts_ms"] - 300
    gt = [r for tk in tickers for r in truth(http, "kalshi", tk) if lo <= r["ts_ms"] <= hi]
    assert sorted(r["id"] for r in gt) == sorted(m["msg"]["trade_id"] for m in trades
                                                 if lo <= m["msg"]["ts_ms"] <= hi)


def test_kalshi_trade_only_subscription_and_unknown_channel(sim):
    tickers = sim.live_tickers()[:6]
    with connect(sim.env["COLLECTOR_STREAMS__KALSHI__URL"], additional_headers=KAL_HEADERS) as ws:
        _kal_subscribe(ws, tickers, ["trade"])
        msgs = [json.loads(f) for f in read_for(ws, 1.5)]
        _kal_subscribe(ws, tickers, ["ticker_v2"])
        err = next(m for m in map(json.loads, read_for(ws, 1.0)) if m["type"] != "trade")
    assert {m["type"] for m in msgs} <= {"subscribed", "trade"} and any(m["type"] == "trade" for m in msgs)
    assert err["type"] == "error" and err["msg"]["code"] == 8


# --------------------------------------------------------------------------- faults


def test_rest_trade_faults(sim, http):
    t = busy(http, "kalshi", sim.live_tickers(), 4)
    path = "/kalshi/trade-api/v2/markets/trades"
    max_ts = int(time.time()) - 1
    clean = get(http, path, ticker=t, max_ts=max_ts)["trades"]
    assert len(clean) >= 2
    try:
        sim.control(venue="kalshi", trade_dup_rate=1.0)
        dup = get(http, path, ticker=t, max_ts=max_ts)["trades"]
        assert dup[::2] == clean and dup[1::2] == clean
        sim.control(venue="kalshi", trade_dup_rate=0.0, trade_shuffle_rate=1.0)
        shuf = get(http, path, ticker=t, max_ts=max_ts)["trades"]
        assert shuf != clean and sorted(shuf, key=json.dumps) == sorted(clean, key=json.dumps)
        sim.control(venue="kalshi", trade_shuffle_rate=0.0, trade_missing_rate=1.0)
        miss = get(http, path, ticker=t, max_ts=max_ts)["trades"]
        assert all(len(set(c) - set(m)) == 1 and set(c) - set(m) <= {"count_fp", "trade_id"} for c, m in zip(clean, miss))
        sim.control(venue="polymarket", trade_missing_rate=1.0)
        m = poly_market(sim)
        items = get(http, "/data-api/trades", market=m["condition_id"])
        assert items and all(("size" in it) != ("transactionHash" in it) for it in items)
        served = sim.control()["kalshi"]["trade_faults_served"]
        assert served["duplicated"] >= len(clean) and served["shuffled"] >= 1 and served["missing"] >= len(clean)
    finally:
        sim.reset_faults()


def test_feed_trade_faults(sim):
    tokens = [t for m in sim.markets(venue="polymarket")["polymarket"] if m["has_book"] and not m["expired"]
              for t in m["tokens"]]

    def trades_with(**kw: Any) -> list[dict[str, Any]]:
        sim.control(venue="polymarket", **kw)
        try:
            with connect(sim.poly_ws_url, max_size=None) as ws:
                ws.send(json.dumps({"assets_ids": tokens, "type": "market", "initial_dump": False}))
                return [e for e in _poly_events(read_for(ws, 2.0)) if e["event_type"] == "last_trade_price"]
        finally:
            sim.reset_faults()

    dup = trades_with(ws_trade_dup_rate=1.0)
    assert dup and dup[::2] == dup[1::2]
    late = trades_with(ws_trade_reorder_rate=1.0)
    stamps = [int(e["timestamp"]) for e in late]
    assert len(late) >= 4 and any(b < a for a, b in zip(stamps, stamps[1:]))
    miss = trades_with(ws_trade_missing_rate=1.0)
    assert miss and all(("size" in e) != ("transaction_hash" in e) for e in miss)
    assert sim.feeds()["polymarket"]["faults"]["trade_duplicated"] >= len(dup) // 2


def test_kalshi_trades_are_rate_limited_without_retry_after():
    with run_sim("--markets", "4", "--seed", "2") as s, httpx.Client(base_url=s.base, timeout=10, trust_env=False) as c:
        codes = [c.get("/kalshi/trade-api/v2/markets/trades") for _ in range(8)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and all("retry-after" not in r.headers for r in limited)


# --------------------------------------------------------------------------- memory bound, ground truth


def test_trade_tape_bound_and_ground_truth_filters():
    with run_sim("--markets", "6", "--seed", "9", "--tick-s", "0.02", "--change-prob", "1", "--no-rate-limit",
                 "--trade-tape", "5") as s, httpx.Client(base_url=s.base, timeout=10, trust_env=False) as http:
        tickers = s.live_tickers()[:3]
        for t in tickers:
            get(http, f"/kalshi/trade-api/v2/markets/{t}/orderbook")
        time.sleep(1.5)
        for t in tickers:
            rows = truth(http, "kalshi", t)
            assert len(rows) == 5 and rows[0]["seq"] > 5  # the newest five of more
            assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)
            assert len(get(http, "/kalshi/trade-api/v2/markets/trades", ticker=t, limit=1000)["trades"]) == 5
        every = truth(http)
        assert {r["venue"] for r in every} <= {"polymarket", "limitless", "kalshi"}
        # each trade once, under its own book: ids and (venue, book, seq) are unique
        assert len({r["id"] for r in every}) == len(every)
        for v in ("polymarket", "limitless", "kalshi"):
            rows = [r for r in every if r["venue"] == v]
            keys = {(r.get("market", r["key"]), r["seq"]) for r in rows}
            assert len(keys) == len(rows), v
        assert [r["ts_ms"] for r in every] == sorted((r["ts_ms"] for r in every), reverse=True)
        assert http.get("/_sim/trades", params={"key": "x"}).status_code == 400
        assert http.get("/_sim/trades", params={"venue": "nope"}).status_code == 400


def test_seed_reproduces_the_trades():
    def trades(seed: int, key: str) -> list[Any]:
        b = _book(seed, key, 100)
        b.advance(1_000_000 + 20_000)
        return b.tape.trades()

    assert trades(4, "kal:T") == trades(4, "kal:T") != trades(5, "kal:T")
    assert trades(4, "kal:T") != trades(4, "kal:U")


@given(ts=st.integers(0, (1 << 43) - 1), seq=st.integers(1, 1 << 40), ticker=st.text(min_size=1, max_size=40))
def test_kalshi_cursor_round_trips(ts, seq, ticker):
    from collector.sim.kalshi import trades as kt

    k = (-ts, ticker, -seq)
    assert kt.decode_cursor(kt.encode_cursor(k)) == k
