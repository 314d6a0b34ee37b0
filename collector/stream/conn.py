"""Feed connection threads: one thread per connection, reconnecting with jittered backoff.

The loop thread changes a connection's subscription through ``subscribe`` / ``unsubscribe``
(a command queue: only the connection's own thread talks to its socket). ``keys`` is the set
the thread (re)subscribes on every new connection; only that thread mutates it.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson

from collector.model.clock import now_ms
from collector.stream.events import FeedBad, FeedDown, FeedMessage, FeedUp

log = logging.getLogger(__name__)

_PID = f"{os.getpid():x}"


class StopRequested(Exception):
    """Raised inside a connection's loop when its thread is asked to stop."""


class Reconnect(Exception):
    """Raised inside a connection's loop to drop the socket and connect again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FeedConnection:
    """Base of a venue connection: the thread, the backoff, the command queue, the numbering.

    Subclasses implement ``_session()``: connect, subscribe ``self.keys``, call ``self._up()``,
    then pump messages through ``self._emit()`` until the socket ends, calling
    ``self._commands()`` often. ``last_rx`` (monotonic) is the last time anything arrived.
    """

    kind = "feed"

    def __init__(self, target: Any, index: int, out: Any, settings: Any, keys: Iterable[str] = ()) -> None:
        self.target = target
        self.index = index
        self.out = out
        self.s = settings
        self.keys: set[str] = set(keys)
        self._cmd: queue.SimpleQueue[tuple[str, tuple[str, ...]]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._gen = 0
        self.conn = ""
        self.seq = 0
        self.connected = False
        self.last_rx = time.monotonic()
        self.reconnects = 0
        self.started = False
        # Messages handed to the loop and not yet recorded; past the bound this thread stops
        # reading (TCP backpressure) instead of queueing without end: the loop releases one per
        # message it handled. A venue that drops slow consumers then drops us: a gap, not a leak.
        self.backlog = threading.Semaphore(settings.max_backlog)
        self.blocked_s = 0.0  # time spent waiting for the loop (written by this thread)
        self._rng = random.Random(f"{index}:{time.time_ns()}")
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-{index}", daemon=True)

    # -- used by the loop thread ------------------------------------------------------------
    def start(self) -> None:
        self.started = True
        self._thread.start()

    def subscribe(self, keys: Iterable[str]) -> None:
        self._cmd.put(("sub", tuple(keys)))

    def unsubscribe(self, keys: Iterable[str]) -> None:
        self._cmd.put(("unsub", tuple(keys)))

    def reconnect(self, reason: str) -> None:
        self._cmd.put(("reconnect", (reason,)))

    def stop(self) -> None:
        self._stop.set()
        self._cmd.put(("stop", ()))

    def join(self, timeout: float) -> None:
        if self.started:
            self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.s.reconnect_min_s
        while not self._stop.is_set():
            self._gen += 1
            self.conn = f"{_PID}-{self.index}-{self._gen}"
            self.seq = 0
            reason, detail = "closed", ""
            started = time.monotonic()
            try:
                self._session()
            except StopRequested:
                reason = "stopped"
            except Reconnect as e:
                reason = e.reason
            except Exception as e:  # noqa: BLE001 - any failure is a disconnect, never a dead thread
                reason, detail = f"error:{type(e).__name__}", str(e)[:200]
            was_up = self.connected
            self.connected = False
            self._close_socket()
            if was_up or reason != "stopped":
                self.out.put(FeedDown(self.target, self.index, self.conn, now_ms(), reason, detail))
            if self._stop.is_set():
                return
            if was_up and time.monotonic() - started > 30:
                delay = self.s.reconnect_min_s  # it had been healthy: start the backoff again
            wait = delay * (0.5 + self._rng.random())  # jitter: pooled connections do not reconnect in step
            delay = min(self.s.reconnect_max_s, delay * 2)
            self.reconnects += 1
            log.info("%s %s: %s %s; reconnecting in %.1fs", self.kind, self.conn, reason, detail, wait)
            if self._stop.wait(wait):
                return

    def _up(self) -> None:
        self.connected = True
        self.last_rx = time.monotonic()
        self.out.put(FeedUp(self.target, self.index, self.conn, now_ms()))

    def _emit(self, raw: str | bytes, event: str = "") -> None:
        ts = now_ms()
        mono = time.monotonic()
        self.last_rx = mono
        self.seq += 1
        try:
            data = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except orjson.JSONDecodeError as e:
            self.out.put(FeedBad(self.target, self.index, self.conn, ts, f"{e}: {str(raw)[:80]!r}"))
            return
        if not self.backlog.acquire(blocking=False):
            t = time.monotonic()
            while not self.backlog.acquire(timeout=0.25):
                if self._stop.is_set():
                    raise StopRequested
            self.blocked_s += time.monotonic() - t
        self.out.put(FeedMessage(self.target, self.index, self.conn, self.seq, ts, mono, data, event))

    def _commands(self) -> None:
        """Apply queued subscription changes (on this thread, between reads)."""
        while True:
            try:
                op, arg = self._cmd.get_nowait()
            except queue.Empty:
                return
            if op == "stop":
                raise StopRequested
            if op == "reconnect":
                raise Reconnect(arg[0])
            new = [k for k in arg if (k not in self.keys) == (op == "sub")]
            if op == "sub":
                self.keys.update(new)
            else:
                self.keys.difference_update(new)
            if new and self.connected:
                self._send_change(op, new)

    # -- subclass hooks ----------------------------------------------------------------------
    def _session(self) -> None:
        raise NotImplementedError

    def _send_change(self, op: str, keys: list[str]) -> None:
        raise NotImplementedError

    def _close_socket(self) -> None:
        pass
