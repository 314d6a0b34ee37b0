"""The simulator's request log: counters per venue, endpoint and status, books served, and
a bounded list of recent requests (``/_sim/requests``)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from collector.sim.venue import VENUES


class RequestLog:
    """Counters plus a bounded list of recent requests (dicts mutated when the reply is sent)."""

    def __init__(self, maxlen: int = 5000) -> None:
        self.maxlen = maxlen
        self.reset()

    def reset(self) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.maxlen)
        self.by_venue: dict[str, int] = {v: 0 for v in VENUES}
        self.by_endpoint: dict[str, int] = {}
        self.by_status: dict[str, dict[str, int]] = {v: {} for v in VENUES}
        self.books: dict[str, int] = {v: 0 for v in VENUES}
        self.since = time.time()

    def start(self, t: float, venue: str, endpoint: str, method: str, path: str) -> dict[str, Any]:
        self.by_venue[venue] += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        e = {"t": t, "venue": venue, "endpoint": endpoint, "method": method, "path": path, "status": None,
             "fault": None, "ms": None}
        self.recent.append(e)
        return e

    def finish(self, e: dict[str, Any], status: int, fault: str | None, t_end: float, books: int = 0) -> None:
        e["status"] = status
        e["fault"] = fault
        e["ms"] = round((t_end - e["t"]) * 1000, 3)
        st = self.by_status[e["venue"]]
        k = str(status)
        st[k] = st.get(k, 0) + 1
        if books:
            self.books[e["venue"]] += books

    def report(self, since: float | None = None, venue: str | None = None, endpoint: str | None = None,
               limit: int = 1000) -> dict[str, Any]:
        rec = [
            e for e in self.recent
            if (since is None or e["t"] >= since) and (venue is None or e["venue"] == venue)
            and (endpoint is None or e["endpoint"] == endpoint)
        ]
        if limit >= 0:
            rec = rec[-limit:] if limit else []
        return {
            "since": self.since,
            "now": time.time(),
            "counts": dict(self.by_venue),
            "endpoints": dict(self.by_endpoint),
            "status": {v: dict(s) for v, s in self.by_status.items()},
            "books_served": dict(self.books),
            "recent": rec,
        }
