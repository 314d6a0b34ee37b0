"""What feed threads hand to the poller's loop thread (through the loop's one queue).

A connection thread never touches books, records or files: it stamps the receive time, numbers
the message on its connection, parses the JSON and puts one of these on the queue. The loop
thread routes each to its venue's StreamLane (``target``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class FeedUp:
    """A connection is open and has sent its subscription."""

    target: Any  # the StreamLane
    index: int  # the connection's slot in the lane's pool
    conn: str  # this connection's id (new on every reconnect)
    ts_ms: int


@dataclass(slots=True)
class FeedMessage:
    target: Any
    index: int
    conn: str
    seq: int  # 1, 2, ... on this connection
    ts_ms: int  # receive time, wall clock
    mono: float  # receive time, monotonic
    data: Any  # the parsed JSON (a dict, or a list of dicts for Polymarket's initial dump)
    event: str = ""  # the Socket.IO event name (Limitless); "" for plain WebSocket messages


@dataclass(slots=True)
class FeedDown:
    """A connection ended (error, close by the venue, silence, or our own stop)."""

    target: Any
    index: int
    conn: str
    ts_ms: int
    reason: str  # short kind, e.g. "closed", "silence", "error:ConnectionRefusedError"
    detail: str = ""


@dataclass(slots=True)
class FeedBad:
    """A message that was not JSON (counted and logged; the connection carries on)."""

    target: Any
    index: int
    conn: str
    ts_ms: int
    detail: str
