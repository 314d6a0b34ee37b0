"""One connection to Polymarket's public market channel (``websockets`` sync client).

The venue wants a text ``PING`` about every 10 s and answers ``PONG``; a connection that
receives nothing (not even that answer) for ``silence_s`` is dropped and made again, because
stalled connections that stay open are the feed's most reported failure.
"""

from __future__ import annotations

import time

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from collector.stream.conn import FeedConnection, Reconnect

_READ_TIMEOUT_S = 0.25  # how often the thread looks at its commands and timers between messages


class PolymarketConnection(FeedConnection):
    kind = "polymarket-ws"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._ws: ClientConnection | None = None

    def _session(self) -> None:
        s = self.s
        self._commands()  # a stop or subscription change queued while disconnected
        ws = self._ws = connect(
            s.url,
            open_timeout=s.connect_timeout_s,
            ping_interval=None,  # the venue's keepalive is its text PING, sent below
            close_timeout=1,
            max_size=64 << 20,  # an initial dump of 200 deep books is several MB
            max_queue=256,  # frames buffered by the library; beyond, TCP backpressure (see backlog)
            compression=None,
            proxy=None,
            user_agent_header="pm-orderbook-collector",
        )
        first = {"assets_ids": sorted(self.keys), "type": "market", "initial_dump": True,
                 "custom_feature_enabled": s.custom_feature_enabled}
        ws.send(orjson.dumps(first).decode())
        self._up()
        next_ping = time.monotonic() + s.ping_interval_s
        while True:
            try:
                msg = ws.recv(timeout=_READ_TIMEOUT_S)
            except TimeoutError:
                msg = None
            except ConnectionClosed as e:
                raise Reconnect("closed") from e
            now = time.monotonic()
            if msg is not None:
                if msg == "PONG" or msg == b"PONG":
                    self.last_rx = now
                else:
                    self._emit(msg)
            self._commands()
            if now >= next_ping:
                ws.send("PING")
                next_ping = now + s.ping_interval_s
            if now - self.last_rx > s.silence_s:
                raise Reconnect("silence")

    def _send_change(self, op: str, keys: list[str]) -> None:
        if self._ws is None:
            return
        verb = "subscribe" if op == "sub" else "unsubscribe"
        self._ws.send(orjson.dumps({"assets_ids": keys, "operation": verb}).decode())

    def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
