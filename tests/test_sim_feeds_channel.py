"""The simulator's Polymarket market channel as a conversation: PING/PONG, subscribe and
unsubscribe operations on one connection, the initial dump switch, unknown tokens, and the
custom-feature events (best_bid_ask, new_market, market_resolved)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from websockets.sync.client import connect

from collector.sim.testing import run_sim
from tests.feed_frames import read_for


def barrier(ws: Any) -> list[str]:
    """PING, and every frame up to its PONG: the server answers in order, so what comes after
    was sent after it handled everything before the PING."""
    ws.send("PING")
    out = []
    while (f := ws.recv(timeout=10)) != "PONG":
        out.append(f)
    return out


def parsed(frames: list[str]) -> list[Any]:
    return [json.loads(f) for f in frames if f != "PONG"]


def markets_in(frames: list[str]) -> set[str]:
    out = set()
    for d in parsed(frames):
        for e in d if isinstance(d, list) else [d]:
            out.add(e["market"])
    return out


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "20", "--seed", "11", "--tick-s", "0.05", "--change-prob", "1", "--no-rate-limit") as s:
        yield s


@pytest.fixture(scope="module")
def live(sim):
    return [m for m in sim.markets(venue="polymarket")["polymarket"] if m["has_book"]]


def test_ping_is_answered_pong_before_and_after_subscribing(sim, live):
    with connect(sim.poly_ws_url) as ws:
        ws.send("PING")
        assert ws.recv(timeout=2) == "PONG"
        ws.send(json.dumps({"assets_ids": live[0]["tokens"], "type": "market"}))
        ws.send("PING")
        assert "PONG" in read_for(ws, 0.5)


def test_subscribe_and_unsubscribe_operations_on_one_connection(sim, live):
    a, b = live[0], live[1]
    with connect(sim.poly_ws_url, max_size=None) as ws:
        ws.send(json.dumps({"assets_ids": [a["tokens"][0]], "type": "market", "initial_dump": True}))
        first = read_for(ws, 0.6)
        dump = json.loads(first[0])
        assert [e["asset_id"] for e in dump] == [a["tokens"][0]]
        assert markets_in(first) == {a["condition_id"]}
        # Both tokens' entries ride in each price_change, whichever token was asked for.
        pcs = [d for d in parsed(first[1:]) if d["event_type"] == "price_change"]
        assert pcs and all({c["asset_id"] for c in d["price_changes"]} == set(a["tokens"]) for d in pcs)

        ws.send(json.dumps({"assets_ids": b["tokens"], "operation": "subscribe"}))
        more = read_for(ws, 0.6)
        dumps = [d for d in parsed(more) if isinstance(d, list)]
        assert len(dumps) == 1 and {e["asset_id"] for e in dumps[0]} == set(b["tokens"])
        assert markets_in(more) == {a["condition_id"], b["condition_id"]}

        ws.send(json.dumps({"assets_ids": [a["tokens"][0]], "operation": "unsubscribe"}))
        barrier(ws)  # what was on the way already
        after = read_for(ws, 0.6)
        assert after and markets_in(after) == {b["condition_id"]}


def test_initial_dump_false_means_changes_without_a_book_first(sim, live):
    with connect(sim.poly_ws_url) as ws:
        ws.send(json.dumps({"assets_ids": live[2]["tokens"], "type": "market", "initial_dump": False}))
        frames = parsed(read_for(ws, 0.6))
        assert frames and not any(isinstance(d, list) for d in frames)
        assert {d["event_type"] for d in frames} >= {"price_change"}
        # A later subscribe on this connection follows its own initial_dump choice.
        ws.send(json.dumps({"assets_ids": live[3]["tokens"], "operation": "subscribe"}))
        assert not any(isinstance(d, list) for d in parsed(read_for(ws, 0.4)))


def test_unknown_and_closed_tokens_yield_nothing(sim, live):
    closed = [m for m in sim.markets(venue="polymarket")["polymarket"] if m["closed"] and m["tokens"]]
    with connect(sim.poly_ws_url) as ws:
        ids = ["123", "not-a-token"] + (closed[0]["tokens"] if closed else [])
        ws.send(json.dumps({"assets_ids": ids, "type": "market", "initial_dump": True}))
        assert read_for(ws, 0.5) == []
        ws.send("PING")
        assert read_for(ws, 0.3) == ["PONG"]  # the connection is fine, there is just nothing to say


def test_best_bid_ask_only_with_custom_features(sim, live):
    msg = {"assets_ids": live[4]["tokens"], "type": "market"}
    with connect(sim.poly_ws_url) as plain, connect(sim.poly_ws_url) as custom:
        plain.send(json.dumps({**msg, "custom_feature_enabled": False}))
        custom.send(json.dumps({**msg, "custom_feature_enabled": True}))
        time.sleep(1.0)
        got_plain = {d["event_type"] for d in parsed(read_for(plain, 0.2)) if isinstance(d, dict)}
        got_custom = [d for d in parsed(read_for(custom, 0.2)) if isinstance(d, dict)]
    assert "best_bid_ask" not in got_plain
    bba = [d for d in got_custom if d["event_type"] == "best_bid_ask"]
    assert bba and {d["asset_id"] for d in bba} <= set(live[4]["tokens"])
    for d in bba:
        assert float(d["best_bid"]) < float(d["best_ask"])
        assert abs(float(d["best_ask"]) - float(d["best_bid"]) - float(d["spread"])) < 1e-9


def test_new_market_and_market_resolved_for_custom_feature_clients(sim, live):
    m = live[5]
    with connect(sim.poly_ws_url) as ws, connect(sim.poly_ws_url) as plain:
        ws.send(json.dumps({"assets_ids": m["tokens"], "type": "market", "custom_feature_enabled": True}))
        plain.send(json.dumps({"assets_ids": m["tokens"], "type": "market"}))
        read_for(ws, 0.2)
        added = sim.markets("add", venue="polymarket", kind="yesno")["markets"][0]
        sim.markets("close", venue="polymarket", id=m["id"])
        evs = [d for d in parsed(read_for(ws, 0.5)) if isinstance(d, dict)]
        plain_kinds = {d["event_type"] for d in parsed(read_for(plain, 0.1)) if isinstance(d, dict)}
    new = [d for d in evs if d["event_type"] == "new_market"]
    assert len(new) == 1 and new[0]["assets_ids"] == added["tokens"] and new[0]["market"] == added["condition_id"]
    assert new[0]["id"] == added["id"] and isinstance(new[0]["timestamp"], str)
    res = [d for d in evs if d["event_type"] == "market_resolved"]
    assert len(res) == 1 and res[0]["market"] == m["condition_id"]
    assert res[0]["winning_asset_id"] == m["tokens"][0] and res[0]["winning_outcome"] == m["outcomes"][0]
    i = evs.index(res[0])
    assert not [d for d in evs[i + 1:] if d.get("market") == m["condition_id"]], "nothing after the resolution"
    assert not plain_kinds & {"new_market", "market_resolved"}
