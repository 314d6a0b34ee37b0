"""The simulator's Limitless Socket.IO feed, with a real python-socketio client against a
subprocess sim: every orderbookUpdate is the REST order book of that instant, a subscribe
replaces the previous one, and a book right after subscribing only when asked for."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import httpx
import pytest
import socketio

from collector.sim.testing import run_sim

NS = "/markets"
OB_KEYS = ["bids", "asks", "tokenId", "adjustedMidpoint", "maxSpread", "minSize", "lastTradePrice"]


class Listener:
    """A Socket.IO client that keeps every orderbookUpdate with its arrival time."""

    def __init__(self, url: str) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.c = socketio.Client(reconnection=False)
        self.c.on("orderbookUpdate", self._on, namespace=NS)
        self.c.connect(url, namespaces=[NS], transports=["websocket"], wait_timeout=5)

    def _on(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.got.append((time.monotonic(), data))

    def subscribe(self, slugs: list[str], addresses: list[str] | None = None) -> None:
        self.c.emit("subscribe_market_prices", {"marketSlugs": slugs, "marketAddresses": addresses or []}, namespace=NS)

    def since(self, t: float) -> list[dict[str, Any]]:
        with self.lock:
            return [d for at, d in self.got if at >= t]

    def close(self) -> None:
        self.c.disconnect()


def rest_book(sim: Any, slug: str) -> dict[str, Any]:
    r = httpx.get(f"{sim.limitless_url}/markets/{slug}/orderbook", timeout=5, trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()


def as_feed(book: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in book.items() if k != "midpoint"}


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "30", "--seed", "4", "--tick-s", "0.1", "--change-prob", "1", "--no-rate-limit") as s:
        yield s


def test_updates_are_the_rest_book_of_their_instant(sim):
    slugs = sim.live_slugs()[:4]
    lst = Listener(sim.limitless_sio_url)
    try:
        t0 = time.monotonic()
        lst.subscribe(slugs)
        time.sleep(0.8)
        seen_rest = [(s, rest_book(sim, s)) for s in slugs]
        frozen = slugs[0]
        sim.markets("expire", venue="limitless", slug=frozen)  # no change after this one
        time.sleep(0.5)
        ups = lst.since(t0)
        frozen_rest = rest_book(sim, frozen)
        time.sleep(0.3)
        late = lst.since(time.monotonic() - 0.3)
    finally:
        lst.close()
    assert {u["marketSlug"] for u in ups} == set(slugs)
    for u in ups:
        assert list(u) == ["marketSlug", "orderbook", "timestamp"] and list(u["orderbook"]) == OB_KEYS
        assert all(type(lv["size"]) is int and type(lv["price"]) is float for lv in u["orderbook"]["bids"])
        assert dt.datetime.strptime(u["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    for slug, book in seen_rest:  # REST at any moment is one of the books the feed announced
        assert as_feed(book) in [u["orderbook"] for u in ups if u["marketSlug"] == slug]
    mine = [u for u in ups if u["marketSlug"] == frozen]
    assert mine[-1]["orderbook"] == as_feed(frozen_rest)
    assert not [u for u in late if u["marketSlug"] == frozen]
    stamps = [u["timestamp"] for u in mine]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_a_subscribe_replaces_the_previous_one(sim):
    a, b, c = sim.live_slugs()[4:7]
    lst = Listener(sim.limitless_sio_url)
    try:
        lst.subscribe([a, b])
        time.sleep(0.6)
        assert {u["marketSlug"] for u in lst.since(0)} == {a, b}
        lst.subscribe([b, c])
        time.sleep(0.3)
        t = time.monotonic()
        time.sleep(0.6)
        assert {u["marketSlug"] for u in lst.since(t)} == {b, c}
        lst.subscribe([])
        time.sleep(0.3)
        t = time.monotonic()
        time.sleep(0.5)
        assert lst.since(t) == []
    finally:
        lst.close()
    st = sim.feeds()["limitless"]
    assert st["sent"]["orderbookUpdate"] > 0 and st["subscribed"] >= 0


def test_a_book_right_after_subscribing_only_when_asked(sim):
    slug = sim.live_slugs()[7]
    sim.markets("expire", venue="limitless", slug=slug)  # quiet from now on: only a snapshot could speak
    book = rest_book(sim, slug)
    lst = Listener(sim.limitless_sio_url)
    try:
        lst.subscribe([slug])
        time.sleep(0.5)
        assert lst.since(0) == []
        sim.control(venue="limitless", ws_snapshot_on_subscribe=True)
        lst.subscribe([])
        lst.subscribe([slug])
        time.sleep(0.5)
        got = lst.since(0)
    finally:
        sim.control(reset=True)
        lst.close()
    assert [u["orderbook"] for u in got] == [as_feed(book)]
