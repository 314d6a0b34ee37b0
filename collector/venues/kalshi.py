"""Kalshi Trade API v2: ``/events`` discovery (nested markets, cursor paging) and batched
``GET /markets/orderbooks`` polling, one YES book per market ticker.

Venue facts this module relies on (see shared/venues/kalshi.md):

* Market data needs no auth; a signed request (collector.venues.kalshi_auth) spends the key's
  larger budget instead of the per-IP anonymous one.
* ``GET /events?status=open&with_nested_markets=true&limit<=200[&series_ticker=S]&cursor=C``
  -> ``{"events": [...], "cursor": "..."}``; the list ends on a ``""`` or null cursor. It leaves
  multivariate combos out (those are on ``/events/multivariate``). The open universe is over
  100,000 markets, so discovery asks per series (``kalshi.series``), not for everything.
* ``GET /markets/orderbooks?tickers=A&tickers=B`` (repeated, at most 100; a comma-joined value
  returns one book) -> ``{"orderbooks": [{"ticker", "orderbook_fp"}]}``, joined on ``ticker``.
  No timestamp, sequence or hash (collector.venues.kalshi_book).
* A 429 sends no Retry-After: the pause is ``cooldown_429_s``, shared with every process on the
  data directory, like the request spacing (discovery and the poller spend one per-IP budget).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson
import requests

from collector.config.settings import KalshiSettings
from collector.config.trades import VenueTradesSettings
from collector.model import errors
from collector.model.clock import now_ms
from collector.model.records import BookRecord, Instrument
from collector.venues.base import DiscoveryResult, FetchResult, PolledBook
from collector.venues.http import ThreadLocal, fetch_page, parse_json, raise_for_status
from collector.venues.kalshi_auth import Signer
from collector.venues.kalshi_book import VENUE, book_record
from collector.venues.kalshi_markets import add_event
from collector.venues.kalshi_trades import KalshiTrades
from collector.venues.pacing import Pacer
from collector.venues.shared_spacing import SharedSpacing, spacing_path

log = logging.getLogger(__name__)

MAX_TICKERS_PER_REQUEST = 100
END_CURSORS = (None, "")
COMBO_PREFIX = "KXMVE"  # every multivariate combo series and event ticker starts so


class KalshiClient:
    """VenueClient for Kalshi (see collector.venues.base.VenueClient)."""

    name: ClassVar[str] = VENUE

    def __init__(self, settings: KalshiSettings, *, state_dir: str | os.PathLike[str] | None = None):
        self.settings = settings
        self.batch_size: int = settings.books_batch_size
        self.shared_spacing: SharedSpacing | None = None
        if state_dir is not None and settings.share_spacing and settings.min_spacing_s > 0:
            self.shared_spacing = SharedSpacing(spacing_path(state_dir, VENUE), settings.min_spacing_s)
        self._api = settings.api_url.rstrip("/")
        self._path = urlsplit(self._api).path  # what is signed: the path as the server sees it
        self._book_timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._pacer = Pacer(settings.discovery_rate_requests, settings.discovery_rate_window_s, settings.min_spacing_s)
        self._signer = (
            Signer(settings.api_key_id, settings.private_key, settings.private_key_file)
            if settings.api_key_id is not None else None
        )
        self._sessions = ThreadLocal(self._new_session)
        self.unrequested_books = 0  # batch items for tickers we did not ask for (or without one)
        # Combos are asked for by the setting, or by a rule naming a combo series (KXMVE...).
        self.combos = settings.combos or any(
            p.upper().startswith(COMBO_PREFIX) for r in settings.rules for p in r.event_slug_prefixes + r.slug_prefixes
        )

    def _new_session(self) -> requests.Session:
        s = requests.Session()
        s.headers.update({"User-Agent": self.settings.user_agent, "Accept": "application/json"})
        return s

    def _get(self, endpoint: str, params: Any, timeout: Any) -> tuple[Any, int, float]:
        """GET ``endpoint`` (signed when a key is set) -> (payload, ts_ms at arrival, latency ms)."""
        headers = self._signer.headers("GET", self._path + endpoint) if self._signer is not None else None
        t0 = time.monotonic()
        try:
            resp = self._sessions.get().get(self._api + endpoint, params=params, headers=headers, timeout=timeout)
        except requests.Timeout as e:
            raise errors.Timeout(f"timeout: {type(e).__name__}", venue=VENUE) from None
        except requests.RequestException as e:
            raise errors.TransportError(f"transport: {type(e).__name__}", venue=VENUE) from None
        latency_ms = (time.monotonic() - t0) * 1000.0
        ts = now_ms()
        body = resp.content
        try:
            raise_for_status(resp.status_code, resp.headers, body, VENUE)
        except errors.RateLimited:
            # Counted per IP (or key), not per process: every process here pauses.
            if self.shared_spacing is not None and self.settings.cooldown_429_s > 0:
                self.shared_spacing.hold(time.monotonic() + self.settings.cooldown_429_s)
            raise
        return parse_json(body, VENUE), ts, latency_ms

    # ------------------------------------------------------------- discovery

    def discover(self) -> DiscoveryResult:
        """Every active binary market of the configured series (all open events when none)."""
        result = DiscoveryResult(instruments=[])
        seen: set[str] = set()
        scopes: list[dict[str, str]] = [{"series_ticker": s} for s in dict.fromkeys(self.settings.series)] or [{}]
        paths = ["/events"] + (["/events/multivariate"] if self.combos else [])
        for path in paths:
            for scope in scopes:
                self._discover_pass(path, scope, result, seen)
        return result

    def _get_page(self, endpoint: str, params: dict[str, Any]) -> Any:
        self._pacer.wait()
        if self.shared_spacing is not None:
            self.shared_spacing.wait()  # books ahead of the poller, which only takes free starts
        return self._get(endpoint, params, self.settings.discovery_timeout_s)[0]

    def _discover_pass(self, path: str, scope: dict[str, str], result: DiscoveryResult, seen: set[str]) -> None:
        cursor: str | None = None
        cursors: set[str] = set()
        pages = 0
        what = path + "".join(f" {v}" for v in scope.values())
        while True:
            if pages >= self.settings.max_pages:
                log.warning("kalshi discovery: %s stopped at the page bound (%d pages)", what, pages)
                result.paging_stop("page_bound")
                return
            # Every filter on every page: the cursor belongs to the query.
            params: dict[str, Any] = {"status": "open", "with_nested_markets": "true",
                                      "limit": self.settings.page_limit, **scope}
            if cursor:
                params["cursor"] = cursor
            page = fetch_page(
                lambda: self._get_page(path, params),
                attempts=self.settings.discovery_page_attempts,
                max_wait_s=self.settings.discovery_retry_max_s,
                what=f"{what} page {pages + 1}",
                venue=VENUE,
                result=result,
            )
            pages += 1
            result.pages += 1
            if type(page) is not dict or type(page.get("events")) is not list:
                raise errors.BadPayload(f"{what} page {pages}: expected an object with an 'events' list", venue=VENUE)
            for ev in page["events"]:
                add_event(ev, result, seen, self.combos)
            nxt = page.get("cursor")
            if nxt in END_CURSORS:
                return
            if type(nxt) is not str:
                raise errors.BadPayload(f"{what} page {pages}: cursor is not a string", venue=VENUE)
            if not page["events"]:
                log.info("kalshi discovery: %s page %d is empty with a cursor; stopping", what, pages)
                return
            if nxt in cursors:
                log.warning("kalshi discovery: %s cursor repeated after %d pages; stopping", what, pages)
                result.paging_stop("repeated_cursor")
                return
            cursors.add(nxt)
            cursor = nxt

    # ----------------------------------------------------------------- books

    def fetch_books(self, poll_keys: Sequence[str]) -> FetchResult:
        """One ``GET /markets/orderbooks``; tickers left out of the reply are per-key NotFound."""
        keys = list(dict.fromkeys(poll_keys))
        if len(keys) > MAX_TICKERS_PER_REQUEST:
            raise ValueError(f"at most {MAX_TICKERS_PER_REQUEST} tickers per request, got {len(keys)}")
        if not keys:
            return FetchResult(books={}, errors={}, ts_ms=now_ms(), latency_ms=0.0)
        payload, ts, latency = self._get("/markets/orderbooks", [("tickers", k) for k in keys], self._book_timeout)
        items = payload.get("orderbooks") if type(payload) is dict else None
        if type(items) is not list:
            raise errors.BadPayload("/markets/orderbooks: expected an object with an 'orderbooks' list", venue=VENUE)
        wanted = set(keys)
        books: dict[str, Any] = {}
        stray = 0
        for item in items:
            ticker = item.get("ticker") if type(item) is dict else None
            if type(ticker) is not str or ticker not in wanted:
                stray += 1
            elif ticker not in books:  # a repeated ticker: the first answer wins
                if "orderbook_fp" in item:
                    body = item["orderbook_fp"]
                else:  # the removed cents shape, or nothing: normalize refuses either
                    body = {"orderbook": item.get("orderbook")} if "orderbook" in item else None
                # The level text as served is the content key: an unchanged book is not normalized.
                books[ticker] = PolledBook(body=body, content=orjson.dumps(body), ob_ts_ms=None, hash=None,
                                           hash_ok=None)
        if stray:
            self.unrequested_books += stray
            if items and stray == len(items):
                raise errors.BadPayload(f"/markets/orderbooks: none of {len(items)} items is a requested book",
                                        venue=VENUE)
        errs: dict[str, errors.VenueError] = {
            k: errors.NotFound("no book in /markets/orderbooks reply", venue=VENUE) for k in keys if k not in books
        }
        return FetchResult(books=books, errors=errs, ts_ms=ts, latency_ms=latency)

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
        return book_record(inst, raw.body if type(raw) is PolledBook else raw, ts_ms, latency_ms)

    def trades_source(self, ts: VenueTradesSettings) -> KalshiTrades:
        """The venue's public trade tape, paced like discovery inside the shared spacing."""
        return KalshiTrades(self._get_page, ts.page_limit, ts.max_pages)

    def close(self) -> None:
        self._sessions.close_all()
        if self.shared_spacing is not None:
            self.shared_spacing.close()


CLIENT = KalshiClient
