"""Restart gaps: the books a poller shard missed because its previous process died uncleanly.

A fresh process knows nothing of its predecessor, so without this a kill -9, an OOM kill or a
worker that took its child down would leave a hole in the data with no ``gap`` record. Each
poller process therefore keeps, per venue, one small state file
(:func:`collector.store.layout.poller_state_path`, ``<data_dir>/<venue>/state/poller.shard-<k>of<n>.json``),
replaced atomically (temp + fsync + rename) at every stats interval and at close::

    {"pid": 4711, "started_ms": ..., "alive_ms": ..., "clean": false, "shard": "0/2",
     "last_ok_ms": {"<poll_key>": <capture time of its last good book, or null>, ...}}

``last_ok_ms`` is written after the writers handed every record to the OS, so each time in it is
a book on disk. A clean stop (stop(), the duration, SIGTERM, a Prefect cancel) writes
``clean: true`` and keeps only the instruments whose gap is still open: failing ones, and those
owed a restart gap this run has not written yet.

On start, every instrument of the shard's first active set that the previous file lists is owed
a gap: when its first good book arrives, ``gap`` (reason ``restart``, ``failures`` 0,
``from_ts_ms`` = the listed time, ``to_ts_ms`` = the new book) goes into ``orderbooks/``; with
stream capture on, a ``gap`` (reason ``restart``, up to now) also goes into ``book_changes/``
before the feed's first snapshot, so a replay does not carry the old book across the downtime.
Until the new process has written its own file the old one stands, so a process killed during
start-up passes its predecessor's times on.

``from_ts_ms`` is at most one stats interval older than the instrument's last book on disk (the
books written after the last mark are not listed). One process per shard and data directory
holds ``<state file>.lock`` (flock); a second one logs a warning and keeps no state. Failures of
the state file are logged and never stop polling.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson

from collector.model.clock import now_ms
from collector.model.records import GapRecord
from collector.store import layout
from collector.store.durable import atomic_write

try:
    import fcntl
except ImportError:  # no flock (Windows): no restart state
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

REASON = "restart"


class RestartLedger:
    """One lane's restart state. Loop thread only."""

    def __init__(self, lane: Any, writers: Any, path: Path, shard: str) -> None:
        self.lane = lane
        self.writers = writers
        self.path = path
        self.shard = shard
        self.started_ms = now_ms()
        self.owed: dict[str, int | None] = {}  # poll_key -> from_ts_ms of a restart gap not written yet
        self.begun = False  # the first active set was seen (before that the old file stands)
        self.gaps_written = 0
        self._failing = False  # the last write failed (warned once)
        self._lock_fd: int | None = None
        self.enabled = self._lock()
        self.previous = self._read() if self.enabled else None

    # -- files ----------------------------------------------------------------------------------
    def _lock(self) -> bool:
        if fcntl is None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            log.warning("%s: no restart state (%s): a restart after a crash will not record its gap", self.lane.name, e)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            log.warning("%s: another poller of shard %s holds %s: two pollers of one shard double the "
                        "request rate; this one keeps no restart state", self.lane.name, self.shard, self.path)
            return False
        self._lock_fd = fd
        return True

    def _read(self) -> dict[str, Any] | None:
        try:
            prev = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as e:
            log.warning("%s: unreadable restart state %s (%s): ignored", self.lane.name, self.path, e)
            return None
        if not isinstance(prev, dict) or not isinstance(prev.get("last_ok_ms"), dict):
            return None
        return prev

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None
        self.enabled = False

    # -- the run --------------------------------------------------------------------------------
    def begin(self) -> None:
        """Called with the shard's first active set in ``lane.state`` (before the stream
        subscribes): the gaps this run owes its predecessor."""
        if self.begun or not self.enabled:
            return
        self.begun = True
        if self.previous is None:
            return
        listed = self.previous["last_ok_ms"]
        self.owed = {k: v if type(v) is int else None for k in self.lane.state if k in listed for v in (listed[k],)}
        if self.owed:
            how = "cleanly" if self.previous.get("clean") else "uncleanly"
            log.warning("%s: previous poller (pid %s) stopped %s: %d instruments owe a restart gap",
                        self.lane.name, self.previous.get("pid"), how, len(self.owed))
        if self.owed and self.lane.stream is not None:
            out = self.writers.get(self.lane.name, layout.BOOK_CHANGES_STREAM)
            to = now_ms()
            for key, from_ms in self.owed.items():
                iid = self.lane.state[key].inst.instrument_id
                out.write(GapRecord(self.lane.name, iid, from_ms, to, REASON).to_json())

    def settle(self, keys: Any) -> None:
        """After a completion of ``keys``: close the restart gap of each that now has a good book."""
        owed, state = self.owed, self.lane.state
        for key in keys:
            if key not in owed:
                continue
            st = state.get(key)
            if st is None or st.last_ok_ts_ms is None:
                continue
            from_ms = owed.pop(key)
            self.lane.books.write(GapRecord(self.lane.name, st.inst.instrument_id, from_ms, st.last_ok_ts_ms,
                                            REASON, 0).to_json())
            self.lane.c.gaps += 1
            self.gaps_written += 1

    def mark(self, clean: bool = False, final: bool = False) -> None:
        """Replace the state file: every instrument's last good book (``clean``: only the open
        gaps). Call it after the writers handed their records to the OS."""
        if not (self.enabled and self.begun):
            return
        owed = self.owed
        last: dict[str, int | None] = {}
        for key, st in self.lane.state.items():
            if key in owed:
                last[key] = owed[key]
            elif not clean or st.failures:
                last[key] = st.last_ok_ts_ms
        doc = {"pid": os.getpid(), "started_ms": self.started_ms, "alive_ms": now_ms(), "clean": clean,
               "venue": self.lane.name, "shard": self.shard, "instruments": len(self.lane.state), "last_ok_ms": last}
        try:
            # Every stats interval on the loop thread: no fsync there (a slow disk would hold every
            # record back); the last mark, at close, is durable. A killed process needs no fsync.
            atomic_write(self.path, orjson.dumps(doc), durable=final)
            self._failing = False
        except OSError as e:
            if not self._failing:
                log.warning("%s: could not write restart state %s: %s", self.lane.name, self.path, e)
            self._failing = True
