"""Periodic fsyncs off the writing thread.

An ``fsync`` of a file that took a second of writes can block for a long time on a busy disk, and
the poller's loop thread is the writer: blocking it holds back every record behind it (receive-
to-disk latency) and every REST submit. The writer therefore hands its descriptor, duplicated, to
one daemon thread that syncs it; the duplicate keeps the file open if the writer rotates or
closes it meanwhile. Closing a file still syncs it on the writer's own thread (a clean stop
leaves everything synced), so only the periodic syncs move here.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundSync", "SYNCER", "SyncSlot"]

Done = Callable[[float, "OSError | None"], None]  # (seconds the fsync took, its error) on the sync thread


class BackgroundSync:
    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[int, Done]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, fd: int, done: Done) -> None:
        """Sync ``fd``'s file in the background (OSError when it cannot be duplicated)."""
        dup = os.dup(fd)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fsync", daemon=True)
                self._thread.start()
        self._q.put((dup, done))

    def _run(self) -> None:
        while True:
            fd, done = self._q.get()
            t0 = time.perf_counter()
            err: OSError | None = None
            try:
                os.fsync(fd)
            except OSError as e:
                err = e
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                done(time.perf_counter() - t0, err)
            except Exception:  # noqa: BLE001 - a callback bug must not end the sync thread
                pass


SYNCER = BackgroundSync()


class SyncSlot:
    """One writer's background syncs: at most one in flight; an error comes back to the writer."""

    __slots__ = ("stats", "_pending", "_error")

    def __init__(self, stats: Any) -> None:
        self.stats = stats  # the writer's WriterStats: fsyncs and their time are counted there
        self._pending = False
        self._error: OSError | None = None

    def start(self, fd: int) -> bool:
        """Hand a sync of ``fd`` over; False while the last one runs. OSError: not handed over."""
        if self._pending:
            return False
        self._pending = True
        try:
            os.fstat(fd)
            SYNCER.submit(fd, self._done)
        except OSError:
            self._pending = False
            raise
        return True

    def _done(self, seconds: float, err: OSError | None) -> None:
        self.stats.fsyncs += 1
        self.stats.fsync_seconds_total += seconds
        self._error = err
        self._pending = False

    def take_error(self) -> OSError | None:
        err, self._error = self._error, None
        return err
