"""Feed faults on demand, each seen from a real client and counted by /_sim/feeds:
disconnects (now and periodic), a silent stall of a connection, a silent stall of some tokens
or slugs while REST moves on, dropped / duplicated / swapped change messages, corrupted
price_change hashes, and slow consumers dropped once their send queue is full."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import socketio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from collector.sim.testing import run_sim
from tests.feed_frames import read_for

NS = "/markets"


def barrier(ws: Any, timeout: float = 10) -> list[str] | None:
    """PING, and every frame up to its PONG (None: no PONG within ``timeout``). The server
    answers in order: what comes after was sent after it handled everything before the PING."""
    ws.send("PING")
    out, end = [], time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        try:
            f = ws.recv(timeout=left)
        except TimeoutError:
            break
        if f == "PONG":
            return out
        out.append(f)
    return None


def changes(frames: list[str]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        d = json.loads(f) if f != "PONG" else None
        if isinstance(d, dict) and d["event_type"] == "price_change":
            out.append(d)
    return out


def closed_within(ws: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            ws.recv(timeout=max(0.01, end - time.monotonic()))
    except TimeoutError:
        return False
    except ConnectionClosed:
        return True
    return False


@pytest.fixture(scope="module")
def sim():
    with run_sim("--markets", "20", "--seed", "9", "--tick-s", "0.05", "--change-prob", "1", "--no-rate-limit",
                 "--sio-ping-interval", "0.5", "--sio-ping-timeout", "0.5") as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(sim):
    sim.control(reset=True)
    yield
    sim.control(reset=True)


@pytest.fixture(scope="module")
def live(sim):
    return [m for m in sim.markets(venue="polymarket")["polymarket"] if m["has_book"]]


def open_ws(sim: Any, tokens: list[str], **kw: Any) -> Any:
    ws = connect(sim.poly_ws_url, max_size=None, **kw)
    ws.send(json.dumps({"assets_ids": tokens, "type": "market", "initial_dump": True}))
    return ws


def faults(sim: Any, venue: str = "polymarket") -> dict[str, int]:
    return sim.feeds()[venue]["faults"]


# --------------------------------------------------------------------------- connections


def test_disconnect_now_a_count_or_all(sim, live):
    before = faults(sim)["disconnects"]
    a, b, c = (open_ws(sim, live[0]["tokens"]) for _ in range(3))
    try:
        time.sleep(0.3)
        assert sim.control(venue="polymarket", ws_disconnect=1)["feed_actions"] == {"polymarket.ws_disconnect": 1}
        assert sum(closed_within(ws, 0.5) for ws in (a, b, c)) == 1
        sim.control(venue="polymarket", ws_disconnect=True)
        assert [closed_within(ws, 0.5) for ws in (a, b, c)].count(True) == 3
    finally:
        for ws in (a, b, c):
            ws.close()
    assert faults(sim)["disconnects"] - before == 3


def test_disconnect_every_n_seconds(sim, live):
    sim.control(venue="polymarket", ws_disconnect_every_s=0.5)
    t0 = time.monotonic()
    with open_ws(sim, live[0]["tokens"]) as ws:
        assert closed_within(ws, 1.5)
    with open_ws(sim, live[0]["tokens"]) as ws:  # the next period drops the new connection too
        assert closed_within(ws, 1.5)
    assert time.monotonic() - t0 < 2.5
    sim.control(venue="polymarket", ws_disconnect_every_s=0)
    with open_ws(sim, live[0]["tokens"]) as ws:
        assert not closed_within(ws, 1.0)


def test_stalled_connection_is_open_and_silent(sim, live):
    with open_ws(sim, live[1]["tokens"]) as ws, open_ws(sim, live[1]["tokens"]) as other:
        assert changes(read_for(ws, 0.4))
        sim.control(venue="polymarket", ws_stall=1)
        answers = [barrier(w, timeout=1.5) for w in (ws, other)]
        assert [a is None for a in answers].count(True) == 1  # one of them no longer answers PING
        stalled, fine = (ws, other) if answers[0] is None else (other, ws)
        assert read_for(stalled, 1.0) == []  # no change either, and no close: the socket is open
        stalled.send("PING")  # still writable
        assert read_for(stalled, 0.5) == []
        assert changes(read_for(fine, 0.4))
    with open_ws(sim, live[1]["tokens"]) as ws:  # a new connection is not stalled
        assert changes(read_for(ws, 0.4))
    assert faults(sim)["stalled_connections"] >= 1


def test_stalled_tokens_go_quiet_while_rest_moves(sim, live):
    quiet, loud = live[2], live[3]
    with open_ws(sim, quiet["tokens"] + loud["tokens"]) as ws, httpx.Client(timeout=5, trust_env=False) as http:
        read_for(ws, 0.3)
        sim.control(venue="polymarket", ws_stall_ids=quiet["tokens"])
        barrier(ws)
        t0 = http.get(sim.clob_url + "/book", params={"token_id": quiet["tokens"][0]}).json()["timestamp"]
        got = changes(read_for(ws, 0.8))
        t1 = http.get(sim.clob_url + "/book", params={"token_id": quiet["tokens"][0]}).json()["timestamp"]
        assert t1 != t0  # REST keeps moving
        assert got and {d["market"] for d in got} == {loud["condition_id"]}
        sim.control(venue="polymarket", ws_stall_ids=[])
        barrier(ws)
        assert quiet["condition_id"] in {d["market"] for d in changes(read_for(ws, 0.6))}
    assert faults(sim)["stall_suppressed"] > 0


# --------------------------------------------------------------------------- messages


def test_dropped_changes(sim, live):
    sim.control(venue="polymarket", ws_drop_rate=1.0)
    with open_ws(sim, live[4]["tokens"]) as ws:
        frames = read_for(ws, 0.6)
    assert frames and not changes(frames)  # the dump and trade events still come
    assert faults(sim)["dropped"] >= 5


def test_duplicated_changes_arrive_twice_in_a_row(sim, live):
    sim.control(venue="polymarket", ws_dup_rate=1.0)
    with open_ws(sim, live[5]["tokens"]) as ws:
        got = [f for f in read_for(ws, 0.6) if '"price_change"' in f]
    got = got[: len(got) // 2 * 2]  # the reading may stop between a frame and its copy
    assert len(got) >= 6
    assert all(got[i] == got[i + 1] for i in range(0, len(got), 2))
    assert faults(sim)["duplicated"] >= 3


def test_reordered_changes_break_time_order(sim, live):
    tokens = [t for m in live[6:12] for t in m["tokens"]]
    with open_ws(sim, tokens) as ws:  # the sim sends in time order...
        base = [int(d["timestamp"]) for d in changes(read_for(ws, 0.6))]
    assert base == sorted(base)
    sim.control(venue="polymarket", ws_reorder_rate=0.3)
    with open_ws(sim, tokens) as ws:  # ...unless told to swap
        ts = [int(d["timestamp"]) for d in changes(read_for(ws, 1.0))]
    assert sum(a > b for a, b in zip(ts, ts[1:])) > 0
    assert faults(sim)["reordered"] > 0


def test_bad_hashes_do_not_match_the_rest_book(sim, live):
    def last_hash_vs_rest(m: dict[str, Any]) -> tuple[str, str]:
        with open_ws(sim, m["tokens"]) as ws:
            got = changes(read_for(ws, 0.5))
            sim.markets("expire", venue="polymarket", id=m["id"])  # the book stops here
            got += changes(read_for(ws, 0.3))
        rest = httpx.get(sim.clob_url + "/book", params={"token_id": m["tokens"][0]}, timeout=5, trust_env=False).json()
        last = [c for d in got if d["timestamp"] == rest["timestamp"] for c in d["price_changes"]
                if c["asset_id"] == m["tokens"][0]]
        return last[-1]["hash"], rest["hash"]

    good, rest = last_hash_vs_rest(live[12])
    assert good == rest
    sim.control(venue="polymarket", ws_bad_hash_rate=1.0)
    bad, rest = last_hash_vs_rest(live[13])
    assert bad != rest and len(bad) == 40 and int(bad, 16) >= 0
    assert faults(sim)["bad_hash"] > 0


def test_slow_consumer_is_dropped():
    with run_sim("--markets", "60", "--seed", "2", "--tick-s", "0.01", "--change-prob", "1", "--no-rate-limit",
                 "--ws-send-queue-max", "50") as sim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", sim.port))
        with open_ws(sim, sim.live_tokens(), sock=sock) as ws, open_ws(sim, sim.live_tokens()[:2]) as reader:
            deadline = time.monotonic() + 15
            while faults(sim)["slow_consumers"] == 0 and time.monotonic() < deadline:
                read_for(reader, 0.2)  # a client that reads is never the slow one
            assert faults(sim)["slow_consumers"] == 1
            assert closed_within(ws, 10.0)
            assert read_for(reader, 0.2)
        assert sim.feeds()["polymarket"]["connections"] <= 1


# --------------------------------------------------------------------------- Limitless


class SioClient:
    def __init__(self, sim: Any, slugs: list[str]) -> None:
        self.got: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.c = socketio.Client(reconnection=False)
        self.c.on("orderbookUpdate", self._on, namespace=NS)
        self.c.on("disconnect", lambda *a: self.events.append("disconnect"), namespace=NS)
        self.c.connect(sim.limitless_sio_url, namespaces=[NS], transports=["websocket"], wait_timeout=5)
        self.c.emit("subscribe_market_prices", {"marketSlugs": slugs, "marketAddresses": []}, namespace=NS)

    def _on(self, d: dict[str, Any]) -> None:
        with self.lock:
            self.got.append(d)

    def count(self) -> int:
        with self.lock:
            return len(self.got)


def test_limitless_disconnect_and_stall(sim):
    slugs = sim.live_slugs()[:3]
    a = SioClient(sim, slugs)
    try:
        time.sleep(0.5)
        assert a.count() > 0
        sim.control(venue="limitless", ws_disconnect=True)
        time.sleep(0.5)
        assert a.events == ["disconnect"] and not a.c.connected
    finally:
        a.c.disconnect()
    b = SioClient(sim, slugs)
    try:
        time.sleep(0.3)
        sim.control(venue="limitless", ws_stall=True)
        time.sleep(0.2)
        n = b.count()
        # No updates and no Engine.IO pings: the client's own heartbeat check gives up.
        deadline = time.monotonic() + 5
        while b.c.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b.count() == n and not b.c.connected
    finally:
        b.c.disconnect()
    f = faults(sim, "limitless")
    assert f["disconnects"] >= 1 and f["stalled_connections"] >= 1 and f["stall_suppressed"] > 0


def test_limitless_drop_dup_and_stalled_slugs(sim):
    slugs = sim.live_slugs()[3:6]
    sim.control(venue="limitless", ws_dup_rate=1.0, ws_stall_ids=[slugs[0]])
    c = SioClient(sim, slugs)
    try:
        time.sleep(0.8)
        with c.lock:
            got = list(c.got)
        sim.control(venue="limitless", ws_dup_rate=0.0, ws_drop_rate=1.0)
        time.sleep(0.2)
        n = c.count()
        time.sleep(0.5)
        assert c.count() == n
    finally:
        c.c.disconnect()
    assert got and slugs[0] not in {u["marketSlug"] for u in got}
    assert all(got[i] == got[i + 1] for i in range(0, len(got) - 1, 2))
    f = faults(sim, "limitless")
    assert f["duplicated"] > 0 and f["dropped"] > 0 and f["stall_suppressed"] > 0


def test_limitless_slow_consumer_is_dropped():
    """A raw Engine.IO client that subscribes and then stops reading."""
    with run_sim("--markets", "60", "--seed", "2", "--tick-s", "0.01", "--change-prob", "1", "--no-rate-limit",
                 "--ws-send-queue-max", "50") as sim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", sim.port))
        url = sim.limitless_ws_url + "/socket.io/?EIO=4&transport=websocket"
        with connect(url, sock=sock, max_size=None) as ws:
            assert ws.recv(timeout=5).startswith("0{")  # Engine.IO open
            ws.send("40" + NS + ",")
            assert ws.recv(timeout=5).startswith("40" + NS)
            ws.send("42" + NS + "," + json.dumps(["subscribe_market_prices", {"marketSlugs": sim.live_slugs(False)}]))
            deadline = time.monotonic() + 15
            while faults(sim, "limitless")["slow_consumers"] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert faults(sim, "limitless")["slow_consumers"] == 1
            assert closed_within(ws, 10.0)

