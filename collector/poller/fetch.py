"""A venue's fetch threads, the only code of the poller that runs off the loop thread, and how
whatever a fetch raised is classified for the loop thread (:func:`as_venue_error`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from collector.model.errors import VenueError

log = logging.getLogger(__name__)


class InternalError(VenueError):
    """A client raised something that is not a VenueError (a bug): counted, never fatal."""

    kind = "internal"


def as_venue_error(e: BaseException) -> VenueError:
    """What a fetch raised, as the VenueError the lane counts (a bug becomes InternalError)."""
    if isinstance(e, VenueError):
        return e
    log.warning("fetch raised %s: %s", type(e).__name__, e)
    return InternalError(f"{type(e).__name__}: {e}")


class FetchPool:
    """A venue's fetch threads: daemon workers fed by one queue.

    Not a ThreadPoolExecutor on purpose: the interpreter joins an executor's workers at exit,
    so one fetch blocked in a read would hold the process for up to its timeout after the
    files are closed. A blocked daemon worker never delays shutdown.
    """

    def __init__(self, workers: int, name: str):
        self._q: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._n = workers
        for i in range(workers):
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True).start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._q.put((fn, args))

    def _work(self) -> None:
        while (job := self._q.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # Poller._fetch already hands errors over; never kill a worker
                log.exception("fetch job failed")

    def shutdown(self) -> None:
        """Drop queued jobs and let idle workers exit; never waits for a running fetch."""
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        for _ in range(self._n):
            self._q.put(None)
