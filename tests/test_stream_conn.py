"""Connection threads against real loopback WebSocket servers: the subscription message, text
PING keepalive, operations for membership changes, numbering, reconnects and the silence bound."""

from __future__ import annotations

import queue
import threading
import time

import orjson
import pytest
from websockets.sync.server import serve

from collector.config.streams import PolymarketStreamSettings
from collector.stream.events import FeedDown, FeedMessage, FeedUp
from collector.stream.ws_polymarket import PolymarketConnection


class Server:
    """A market-channel stand-in that records what clients send and obeys the test."""

    def __init__(self, reply_pong: bool = True) -> None:
        self.got: queue.SimpleQueue = queue.SimpleQueue()
        self.reply_pong = reply_pong
        self.conns: list = []
        self.srv = serve(self._handle, "127.0.0.1", 0)
        self.port = self.srv.socket.getsockname()[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def _handle(self, ws) -> None:
        self.conns.append(ws)
        for msg in ws:
            self.got.put(msg)
            if msg == "PING" and self.reply_pong:
                ws.send("PONG")

    def next(self, timeout: float = 5.0):
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        self.srv.shutdown()


def _conn(url: str, out, **kw):
    s = PolymarketStreamSettings(url=url, reconnect_min_s=0.05, reconnect_max_s=0.2, **kw)
    return PolymarketConnection(None, 0, out, s, keys=["1", "2"])


def _events(out, kind, n=1, timeout=5.0):
    got, end = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        try:
            ev = out.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(ev, kind):
            got.append(ev)
    assert len(got) == n, f"wanted {n} {kind.__name__}, got {len(got)}"
    return got


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def test_subscribes_pings_numbers_and_changes_membership(server):
    out = queue.SimpleQueue()
    c = _conn(f"ws://127.0.0.1:{server.port}/ws/market", out, ping_interval_s=0.2)
    c.start()
    try:
        first = orjson.loads(server.next())
        assert first == {"assets_ids": ["1", "2"], "type": "market", "initial_dump": True,
                         "custom_feature_enabled": True}
        (up,) = _events(out, FeedUp)
        server.conns[0].send(orjson.dumps([{"event_type": "book", "asset_id": "1"}]).decode())
        server.conns[0].send('{"event_type":"price_change"}')
        m1, m2 = _events(out, FeedMessage, 2)
        assert (m1.seq, m2.seq) == (1, 2) and m1.conn == up.conn and isinstance(m1.data, list)
        assert m1.ts_ms <= m2.ts_ms
        assert server.next() == "PING"
        c.subscribe(["3"])
        c.unsubscribe(["1"])
        msgs = [server.next() for _ in range(3)]
        ops = [orjson.loads(m) for m in msgs if m != "PING"]
        assert {"assets_ids": ["3"], "operation": "subscribe"} in ops
        assert {"assets_ids": ["1"], "operation": "unsubscribe"} in ops
        assert c.keys == {"2", "3"}
    finally:
        c.stop()
        c.join(3)


def test_reconnects_with_a_new_id_and_resubscribes_everything(server):
    out = queue.SimpleQueue()
    c = _conn(f"ws://127.0.0.1:{server.port}/ws/market", out)
    c.start()
    try:
        server.next()
        (up1,) = _events(out, FeedUp)
        c.subscribe(["9"])
        server.next()
        server.conns[0].close()
        (down,) = _events(out, FeedDown)
        assert down.conn == up1.conn and down.reason == "closed"
        (up2,) = _events(out, FeedUp)
        assert up2.conn != up1.conn
        again = orjson.loads(server.next())
        assert sorted(again["assets_ids"]) == ["1", "2", "9"]
        server.conns[1].send('{"event_type":"book"}')
        (m,) = _events(out, FeedMessage)
        assert m.conn == up2.conn and m.seq == 1
    finally:
        c.stop()
        c.join(3)
    assert not c._thread.is_alive()


def test_a_silent_connection_is_dropped_and_made_again():
    srv = Server(reply_pong=False)  # open, but answers nothing: a stalled feed
    out = queue.SimpleQueue()
    c = _conn(f"ws://127.0.0.1:{srv.port}/ws/market", out, ping_interval_s=0.1, silence_s=0.5)
    c.start()
    try:
        (up1,) = _events(out, FeedUp)
        (down,) = _events(out, FeedDown, timeout=5)
        assert down.reason == "silence" and down.conn == up1.conn
        _events(out, FeedUp)
    finally:
        c.stop()
        c.join(3)
        srv.close()


def test_refused_connection_keeps_retrying_with_backoff():
    out = queue.SimpleQueue()
    c = _conn("ws://127.0.0.1:9/ws/market", out)  # nothing listens on port 9
    c.start()
    try:
        downs = _events(out, FeedDown, 3)
        assert all(d.reason.startswith("error:") for d in downs)
        assert c.reconnects >= 3
    finally:
        c.stop()
        c.join(3)
