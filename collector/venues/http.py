"""Shared HTTP plumbing of the venue clients: per-thread sessions, status -> typed error,
JSON body parsing, and the retry loop of one discovery page.

Each venue module keeps its own request function (Polymarket speaks httpx for discovery and
urllib3 for books, collector.venues.pooled; Limitless requests),
but both map answers to the same typed errors (collector.model.errors) through this module, so
the poller and discovery see one error vocabulary whatever the venue.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from collector.model.errors import (
    BadPayload,
    ClientError,
    NotFound,
    RateLimited,
    ServerError,
    Timeout,
    TransportError,
)
from collector.venues.base import DiscoveryResult

log = logging.getLogger(__name__)
T = TypeVar("T")

# Discovery page failures another try can fix; a 404 or another 4xx will not change.
PAGE_RETRYABLE = (RateLimited, ServerError, Timeout, TransportError, BadPayload)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date); None when absent or junk."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(body: bytes, limit: int = 200) -> str:
    return body[:limit].decode("utf-8", "replace").replace("\n", " ")


def raise_for_status(status: int, headers: Any, body: bytes, venue: str) -> None:
    """Map a non-2xx answer to a typed error. ``headers`` is any case-insensitive mapping."""
    if 200 <= status < 300:
        return
    msg = f"HTTP {status}: {_snippet(body)}"
    if status == 404:
        raise NotFound(msg, status=status, venue=venue)
    if status == 429:
        raise RateLimited(
            msg, status=status, venue=venue, retry_after_s=parse_retry_after(headers.get("retry-after"))
        )
    if status >= 500 or status == 425:
        raise ServerError(msg, status=status, venue=venue)
    raise ClientError(msg, status=status, venue=venue)


def parse_json(body: bytes, venue: str) -> Any:
    """Parse a 2xx body; an HTML page or malformed JSON is a BadPayload, never a crash."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        kind = "HTML page" if body.lstrip()[:1] == b"<" else "malformed JSON"
        raise BadPayload(f"{kind}: {_snippet(body)}", venue=venue) from None


def fetch_page(
    fetch: Callable[[], T],
    *,
    attempts: int,
    max_wait_s: float,
    what: str,
    venue: str,
    result: DiscoveryResult,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fetch()`` one discovery page, trying again on PAGE_RETRYABLE errors up to ``attempts``
    times: after the venue's Retry-After when a 429 sends one, else 1, 2, 4... s; every wait is
    capped at ``max_wait_s``. One bad page otherwise fails the whole pass, and Limitless has
    dozens of pages under a 300 ms spacing that the poller shares."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            return fetch()
        except PAGE_RETRYABLE as e:
            if attempt >= attempts:
                raise
            ra = e.retry_after_s if isinstance(e, RateLimited) else None
            wait = min(ra if ra is not None else delay, max_wait_s)
            delay *= 2
            result.retries += 1
            log.warning(
                "%s discovery: %s failed (%s: %s); try %d of %d in %.1f s",
                venue, what, e.kind, e, attempt + 1, attempts, wait,
            )  # fmt: skip
            sleep(wait)
    raise AssertionError("unreachable")  # attempts >= 1


class ThreadLocal:
    """One HTTP session per thread (connection pools are not shared across threads)."""

    def __init__(self, factory):
        self._factory = factory
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._gen = 0

    def get(self):
        s = getattr(self._local, "s", None)
        if s is None or getattr(self._local, "gen", -1) != self._gen:
            s = self._factory()
            self._local.s = s
            self._local.gen = self._gen
            with self._lock:
                self._all.append(s)
        return s

    def close_all(self) -> None:
        """Close every session; a thread that makes a request afterwards gets a fresh one."""
        with self._lock:
            self._gen += 1
            sessions, self._all = self._all, []
        for s in sessions:
            try:
                s.close()
            except Exception:  # closing must never raise during shutdown
                pass
