"""The simulator's Polymarket market channel, over a real socket against a subprocess sim:
the dump plus every change rebuilds exactly the REST book of the same instant, every hash
reproduces with the collector's own hash function, and the frames look like the captured ones."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from collector.sim.testing import run_sim
from collector.venues.polyhash import book_hash
from tests.feed_frames import read_for
from tests.real_payloads import load


def events(frames: list[str]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        if f == "PONG":
            continue
        d = json.loads(f)
        out.extend(d if isinstance(d, list) else [d])
    return out


def subscribe(ws: Any, tokens: list[str], dump: bool = True, custom: bool = True) -> None:
    ws.send(json.dumps({"assets_ids": tokens, "type": "market", "initial_dump": dump, "custom_feature_enabled": custom}))


class Replay:
    """A client's copy of one token's book, built from feed events only."""

    def __init__(self, ev: dict[str, Any]) -> None:
        self.tick = ev["tick_size"]
        self.ltp = ev["last_trade_price"]
        self.ts = ev["timestamp"]
        self.load(ev)

    def load(self, ev: dict[str, Any]) -> None:
        self.bids = {lv["price"]: lv["size"] for lv in ev["bids"]}
        self.asks = {lv["price"]: lv["size"] for lv in ev["asks"]}
        self.ts = ev["timestamp"]

    def apply(self, e: dict[str, Any]) -> None:
        side = self.bids if e["side"] == "BUY" else self.asks
        if e["size"] == "0":
            side.pop(e["price"], None)
        else:
            side[e["price"]] = e["size"]

    def levels(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        bids = [{"price": p, "size": self.bids[p]} for p in sorted(self.bids, key=Decimal)]
        asks = [{"price": p, "size": self.asks[p]} for p in sorted(self.asks, key=Decimal, reverse=True)]
        return bids, asks

    def body(self, market: str, asset: str, ts: str, rest: dict[str, Any]) -> dict[str, Any]:
        """The REST body this state stands for (min_order_size / neg_risk: market metadata)."""
        bids, asks = self.levels()
        return {"market": market, "asset_id": asset, "timestamp": ts, "hash": "", "bids": bids, "asks": asks,
                "min_order_size": rest["min_order_size"], "tick_size": self.tick, "neg_risk": rest["neg_risk"],
                "last_trade_price": self.ltp}


def rest_books(sim: Any, tokens: list[str]) -> dict[str, dict[str, Any]]:
    r = httpx.post(sim.clob_url + "/books", json=[{"token_id": t} for t in tokens], timeout=10, trust_env=False)
    assert r.status_code == 200, r.text
    return {b["asset_id"]: b for b in r.json()}


def replay(evs: list[dict[str, Any]], rest: dict[str, dict[str, Any]]) -> tuple[dict[str, Replay], dict[str, int]]:
    """Apply ``evs`` up to each market's REST timestamp; check every entry's hash on the way.
    The replayed books and counts of what was checked."""
    books: dict[str, Replay] = {}
    tokens_of: dict[str, set[str]] = {}
    # A trade's price_change already carries the post-trade hash, which includes the trade price
    # the last_trade_price event announces just after (same market, same timestamp).
    trade_price = {(e["market"], e["timestamp"]): e["price"] for e in evs if e["event_type"] == "last_trade_price"}
    seen = {"price_change": 0, "entries": 0, "book": 0, "last_trade_price": 0}
    for e in evs:
        kind, market = e["event_type"], e["market"]
        if kind == "book" and "tick_size" in e:  # the dump
            books[e["asset_id"]] = Replay(e)
            tokens_of.setdefault(market, set()).add(e["asset_id"])
            continue
        if kind == "tick_size_change":  # stamped when the control acted, not with a book change
            if e["asset_id"] in books:
                books[e["asset_id"]].tick = e["new_tick_size"]
            continue
        toks = tokens_of.get(market, set())
        cut = min((int(rest[t]["timestamp"]) for t in toks if t in rest), default=None)
        if cut is None or int(e["timestamp"]) > cut:
            continue
        if kind == "price_change":
            seen["price_change"] += 1
            ltp = trade_price.get((market, e["timestamp"]))
            for t in toks:
                if ltp is not None:
                    books[t].ltp = ltp
                books[t].ts = e["timestamp"]
            for c in e["price_changes"]:
                books[c["asset_id"]].apply(c)
            for c in e["price_changes"]:
                b = books[c["asset_id"]]
                assert book_hash(b.body(market, c["asset_id"], e["timestamp"], rest[c["asset_id"]])) == c["hash"]
                bids, asks = b.levels()
                assert c["best_bid"] == bids[-1]["price"] and c["best_ask"] == asks[-1]["price"]
                seen["entries"] += 1
        elif kind == "book":  # after a trade: the whole book again, with its REST twin's hash
            b = books[e["asset_id"]]
            assert b.levels() == (e["bids"], e["asks"])
            assert book_hash(b.body(market, e["asset_id"], e["timestamp"], rest[e["asset_id"]])) == e["hash"]
            seen["book"] += 1
        elif kind == "last_trade_price":
            for t in toks:
                books[t].ltp = e["price"]
            seen["last_trade_price"] += 1
    return books, seen


# --------------------------------------------------------------------------- book = REST


def test_dump_plus_changes_rebuild_the_rest_book_and_every_hash():
    with run_sim("--markets", "30", "--seed", "5", "--tick-s", "0.05", "--change-prob", "0.5", "--no-rate-limit") as sim:
        tokens = sim.live_tokens()
        with connect(sim.poly_ws_url, max_size=None) as ws:
            subscribe(ws, tokens)
            frames = read_for(ws, 1.5)
            rest = rest_books(sim, tokens)
            frames += read_for(ws, 0.5)  # changes up to REST's instant are queued before it answers
    assert frames[0].startswith("[")
    evs = events(frames)
    dumped = {e["asset_id"] for e in json.loads(frames[0])}
    assert dumped == set(rest) == set(tokens)
    books, seen = replay(evs, rest)
    assert seen["price_change"] > 100 and seen["book"] > 10 and seen["last_trade_price"] > 5
    for t, b in rest.items():
        r = books[t]
        assert r.levels() == (b["bids"], b["asks"])
        assert (r.tick, r.ltp, r.ts) == (b["tick_size"], b["last_trade_price"], b["timestamp"])
        assert book_hash(r.body(b["market"], t, b["timestamp"], b)) == b["hash"]


def test_a_change_is_on_rest_when_it_is_on_the_feed():
    """Whoever makes a book catch up, REST polling hard or the feed's own timer, each change goes
    out once and REST serves its timestamp and hash from that instant on."""
    with run_sim("--markets", "8", "--seed", "2", "--tick-s", "0.02", "--change-prob", "1", "--no-rate-limit") as sim:
        tokens = sim.live_tokens()[:2]
        with connect(sim.poly_ws_url) as ws, httpx.Client(timeout=5, trust_env=False) as http:
            subscribe(ws, tokens, custom=False)
            first = json.loads(ws.recv(timeout=5))
            stamps = [int(first[0]["timestamp"])]
            rest_ts: list[tuple[int, str]] = []
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                b = http.get(sim.clob_url + "/book", params={"token_id": tokens[0]}).json()
                rest_ts.append((int(b["timestamp"]), b["hash"]))
            evs = events(read_for(ws, 0.5))
    changes = [e for e in evs if e["event_type"] == "price_change"]
    stamps += [int(e["timestamp"]) for e in changes]
    assert stamps == sorted(set(stamps)), "one message per change, in time order"
    by_ts = {int(e["timestamp"]): c["hash"] for e in changes for c in e["price_changes"] if c["asset_id"] == tokens[0]}
    by_ts[stamps[0]] = next(b["hash"] for b in first if b["asset_id"] == tokens[0])
    assert len(rest_ts) > 50
    for ts, h in rest_ts:
        assert by_ts[ts] == h  # REST never shows a state the feed did not announce


# --------------------------------------------------------------------------- shapes


def _shape(d: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, type(v).__name__) for k, v in d.items()]


@pytest.fixture(scope="module")
def stream():
    """~2 s of frames for a few markets, with one market moved to a finer tick and one to a
    coarser tick (which merges levels: a book change of its own)."""
    with run_sim("--markets", "16", "--seed", "3", "--tick-s", "0.05", "--change-prob", "0.8", "--no-rate-limit") as sim:
        live = [x for x in sim.markets(venue="polymarket")["polymarket"] if x["has_book"]]
        fine = next(x for x in live if x["tick_size"] == "0.01")
        coarse = next(x for x in live if x["tick_size"] == "0.001")
        tokens = sim.live_tokens()
        with connect(sim.poly_ws_url, max_size=None) as ws:
            subscribe(ws, tokens)
            frames = read_for(ws, 1.0)
            sim.markets("update", venue="polymarket", id=fine["id"], tick_size="0.001")
            sim.markets("update", venue="polymarket", id=coarse["id"], tick_size="0.01")
            frames += read_for(ws, 1.0)
            rest = rest_books(sim, fine["tokens"] + coarse["tokens"])
            frames += read_for(ws, 0.3)
    return {"frames": frames, "fine": fine, "coarse": coarse, "rest": rest}


def test_frames_have_the_captured_keys_order_types_and_layout(stream):
    cap = load("polymarket/ws_market_stream_polymorph.json")
    misc = load("polymarket/ws_misc_frames_netqo.json")
    legacy = load("polymarket/ws_legacy_2024_nautilus.json")
    real = {"dump": cap[0][0], "price_change": next(f for f in cap[1:] if f["event_type"] == "price_change"),
            "book": next(f for f in cap[1:] if f["event_type"] == "book"),
            "last_trade_price": next(f for f in cap[1:] if f["event_type"] == "last_trade_price"),
            "best_bid_ask": misc["bestBidAskFrame"]}
    frames = stream["frames"]
    ours: dict[str, Any] = {}
    for raw in frames:
        d = json.loads(raw)
        if isinstance(d, list):  # the dump: one compact array
            assert raw == json.dumps(d, separators=(",", ":"))
            ours.setdefault("dump", d[0])
            continue
        assert raw == json.dumps(d, separators=(", ", ":"))  # live frames: ", " between members
        ours.setdefault(d["event_type"], d)
    assert set(real) | {"tick_size_change"} <= set(ours)
    for kind, want in real.items():
        assert _shape(ours[kind]) == _shape(want), kind
    for e in ours["price_change"]["price_changes"]:
        assert _shape(e) == _shape(real["price_change"]["price_changes"][0])
        assert e["side"] in ("BUY", "SELL")
    lv = ours["dump"]["bids"][0]
    assert _shape(lv) == _shape(real["dump"]["bids"][0])
    # tick_size_change: only a 2025 capture exists, its keys sorted by whoever saved it.
    want = legacy["tick_size_change_2025_02"]
    assert sorted(_shape(ours["tick_size_change"])) == sorted(_shape(want))


def test_tick_changes_are_announced_and_rest_follows(stream):
    evs = events(stream["frames"])
    ticks = {(e["asset_id"], e["old_tick_size"], e["new_tick_size"]) for e in evs if e["event_type"] == "tick_size_change"}
    fine, coarse, rest = stream["fine"], stream["coarse"], stream["rest"]
    assert ticks == {(t, "0.01", "0.001") for t in fine["tokens"]} | {(t, "0.001", "0.01") for t in coarse["tokens"]}
    books, _ = replay(evs, rest)  # every hash after the event is over the new tick
    for t, b in rest.items():
        assert b["tick_size"] == ("0.001" if t in fine["tokens"] else "0.01")
        assert books[t].levels() == (b["bids"], b["asks"]) and books[t].tick == b["tick_size"]
        assert book_hash(books[t].body(b["market"], t, b["timestamp"], b)) == b["hash"]
    assert all(len(lv["price"]) <= 4 for b in rest.values() if b["tick_size"] == "0.01" for lv in b["bids"] + b["asks"])
