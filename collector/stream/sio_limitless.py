"""One connection to Limitless's public Socket.IO feed (``python-socketio`` sync client).

Each ``subscribe_market_prices`` emit replaces the connection's whole subscription, so every
change re-sends the full list. The library's own reconnection is off: this thread reconnects,
so every outage is seen (and recorded as a gap) the same way as on the other feeds. Liveness
is Engine.IO's ping/pong, which the library enforces (it drops a connection whose server stops
pinging); ``silence_s`` is a second bound on top of it, counted over every Engine.IO packet
(pings included), since quiet markets send no messages at all.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import socketio

from collector.stream.conn import FeedConnection, Reconnect

_POLL_S = 0.25


def http_url(url: str) -> str:
    """python-socketio takes http(s) URLs and upgrades them itself."""
    if url.startswith("wss://"):
        return "https://" + url[6:]
    if url.startswith("ws://"):
        return "http://" + url[5:]
    return url


class LimitlessConnection(FeedConnection):
    kind = "limitless-sio"

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._sio: socketio.Client | None = None
        self._ended = threading.Event()
        self._end_reason = "closed"

    def _session(self) -> None:
        s = self.s
        ns = s.namespace
        self._commands()
        self._ended.clear()
        sio = self._sio = socketio.Client(reconnection=False, logger=False, engineio_logger=False,
                                          handle_sigint=False, request_timeout=s.connect_timeout_s)

        def on_update(data: Any) -> None:
            self._emit(data, "orderbookUpdate")

        def on_other(event: str, data: Any = None) -> None:
            self.last_rx = time.monotonic()
            if event in ("exception", "system"):
                self._emit(data if isinstance(data, (dict, list)) else {"message": data}, event)

        def on_disconnect(*_a: Any) -> None:
            self._ended.set()

        _watch_packets(sio, self)
        sio.on("orderbookUpdate", on_update, namespace=ns)
        sio.on("*", on_other, namespace=ns)
        sio.on("disconnect", on_disconnect, namespace=ns)
        sio.connect(http_url(s.url), namespaces=[ns], transports=["websocket"],
                    wait_timeout=s.connect_timeout_s)
        self._up()  # before subscribing: updates may arrive (on the library's thread) right after
        self._subscribe_all()
        while True:
            if self._ended.wait(_POLL_S):
                raise Reconnect("closed")
            self._commands()
            if self.keys and time.monotonic() - self.last_rx > s.silence_s:
                raise Reconnect("silence")
            if not sio.connected:
                raise Reconnect("closed")

    def _subscribe_all(self) -> None:
        if self._sio is not None:
            self._sio.emit("subscribe_market_prices", {"marketSlugs": sorted(self.keys)}, namespace=self.s.namespace)

    def _send_change(self, op: str, keys: list[str]) -> None:
        self._subscribe_all()  # each emit replaces the subscription: always the full list

    def _close_socket(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            try:
                sio.disconnect()
            except Exception:  # noqa: BLE001 - already broken
                pass


def _watch_packets(sio: socketio.Client, conn: FeedConnection) -> None:
    """Count every Engine.IO packet (pings too) as a sign of life. Hooks the client's private
    packet handler (python-engineio is pinned); without it only messages would count."""
    eio = getattr(sio, "eio", None)
    orig = getattr(eio, "_receive_packet", None)
    if orig is None:
        return

    def receive(pkt: Any) -> Any:
        conn.last_rx = time.monotonic()
        return orig(pkt)

    eio._receive_packet = receive
