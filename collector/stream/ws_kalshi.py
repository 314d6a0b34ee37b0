"""One connection to Kalshi's ``orderbook_delta`` channel (``websockets`` sync client).

The upgrade is signed like a REST call (``timestamp + "GET" + "/trade-api/ws/v2"``), afresh on
every connect: the channel refuses anonymous connections (HTTP 401). One ``subscribe`` carries
every ticker of the connection, with ``use_yes_price`` sent explicitly (the venue's default is
announced to flip). Later membership changes are ``update_subscription`` commands with exactly
one sid (several sids in one command are an error, seen to cause reconnect storms); before the
venue has named the sid, a change reconnects instead, which subscribes the whole set again.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from collector.stream.conn import FeedConnection, Reconnect

_READ_TIMEOUT_S = 0.25
CHANNEL = "orderbook_delta"


class KalshiConnection(FeedConnection):
    kind = "kalshi-ws"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._ws: ClientConnection | None = None
        self._sid: int | None = None
        self._id = 0

    def _session(self) -> None:
        s = self.s
        self._commands()
        self._sid, self._id = None, 0
        try:
            ws = self._ws = connect(
                s.url,
                additional_headers=self.target.feed.auth_headers(),
                open_timeout=s.connect_timeout_s,
                ping_interval=s.ping_interval_s,
                ping_timeout=s.silence_s,
                close_timeout=1,
                max_size=16 << 20,
                max_queue=256,
                compression=None,
                proxy=None,
                user_agent_header="pm-orderbook-collector",
            )
        except InvalidStatus as e:  # 401 without a key: say so, never the headers sent
            raise Reconnect(f"http_{e.response.status_code}") from None
        if self.keys:
            self._send("subscribe", {"channels": [CHANNEL], "market_tickers": sorted(self.keys),
                                     "use_yes_price": s.use_yes_price})
        self._up()
        while True:
            try:
                msg = ws.recv(timeout=_READ_TIMEOUT_S)
            except TimeoutError:
                msg = None
            except ConnectionClosed as e:
                raise Reconnect("closed") from e
            now = time.monotonic()
            if msg is not None:
                if self._sid is None and '"subscribed"' in (msg if isinstance(msg, str) else msg.decode()):
                    self._note_sid(msg)
                self._emit(msg)
            self._commands()
            if now - self.last_rx > s.silence_s:
                raise Reconnect("silence")

    def _note_sid(self, raw: str | bytes) -> None:
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        m = d.get("msg") if type(d) is dict else None
        if d.get("type") == "subscribed" and type(m) is dict and m.get("channel") == CHANNEL and type(m.get("sid")) is int:
            self._sid = m["sid"]

    def _send(self, cmd: str, params: dict[str, Any]) -> None:
        if self._ws is None:
            return
        self._id += 1  # unique per session
        self._ws.send(orjson.dumps({"id": self._id, "cmd": cmd, "params": params}).decode())

    def _send_change(self, op: str, keys: list[str]) -> None:
        if self._sid is None:
            if op == "sub" and len(self.keys) == len(keys):  # the first tickers of an idle connection
                self._send("subscribe", {"channels": [CHANNEL], "market_tickers": sorted(keys),
                                         "use_yes_price": self.s.use_yes_price})
                return
            raise Reconnect("resubscribe")  # the sid is not known yet: subscribe the whole set again
        action = "add_markets" if op == "sub" else "delete_markets"
        self._send("update_subscription", {"sids": [self._sid], "market_tickers": sorted(keys), "action": action})

    def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
