"""Polymarket: Gamma keyset discovery + CLOB ``POST /books`` polling.

Venue facts (see shared/venues/polymarket.md):

* Discovery pages ``GET {gamma}/markets/keyset`` and sends the previous ``next_cursor`` back
  as ``after_cursor`` (``cursor=`` is silently ignored and returns page 1 forever). Every filter
  is re-sent on every page. The list ends when ``next_cursor`` is absent, ``""`` or ``"LTE="``.
* Each market object becomes one instrument per outcome token
  (collector.venues.polymarket_markets).
* ``POST {clob}/books`` takes ``[{"token_id": ...}]`` (max 500) and silently leaves out tokens
  that have no book, in undocumented order: results are joined on ``asset_id``.
* Book prices and sizes are strings; bids arrive ascending and asks descending (best = last),
  so both sides are re-sorted explicitly (collector.venues.polymarket_book).
* A book's ``hash`` is the SHA-1 of its body as served with ``hash`` = "": checked per book on the
  fetch thread, before the re-sort (collector.venues.polyhash); a mismatch flags, never drops.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import orjson

from collector.config.settings import PolymarketSettings
from collector.config.trades import PolymarketTradesSettings
from collector.model import errors
from collector.model.clock import now_ms
from collector.model.records import BookRecord, Instrument
from collector.venues import polyhash
from collector.venues import polymarket_reply as reply
from collector.venues.base import DiscoveryResult, FetchResult, PolledBook
from collector.venues.http import ThreadLocal, fetch_page, parse_json, raise_for_status
from collector.venues.pacing import Pacer
from collector.venues.polyhash import CheckedBook, ExactReply
from collector.venues.polymarket_book import VENUE, book_record
from collector.venues.polymarket_markets import add_market
from collector.venues.polymarket_trades import PolymarketTrades
from collector.venues.pooled import PooledHTTP

log = logging.getLogger(__name__)

MAX_BOOKS_PER_REQUEST = 500  # venue limit: 501 items -> 400 "Payload exceeds the limit"
MAX_DISCOVERY_PAGES = 10_000
END_CURSORS = frozenset({"", "LTE="})  # "LTE=" is base64 "-1", the CLOB list terminator


class PolymarketClient:
    """VenueClient for Polymarket (see collector.venues.base.VenueClient)."""

    name: ClassVar[str] = VENUE
    shared_spacing = None  # discovery (Gamma) and books (CLOB) are different hosts: no shared spacing

    def __init__(self, settings: PolymarketSettings, *, state_dir: str | os.PathLike[str] | None = None):
        self.settings = settings  # state_dir: unused (discovery and books are on different hosts)
        # "single" polls one token per GET /book (the per-instrument baseline): batch size 1.
        self.single = settings.books_endpoint == "single"
        self.batch_size: int = 1 if self.single else settings.books_batch_size
        self._gamma = settings.gamma_url.rstrip("/")
        self._clob = settings.clob_url.rstrip("/")
        self._discovery_timeout = httpx.Timeout(settings.discovery_timeout_s)
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._clients = ThreadLocal(self._new_client)  # httpx, for discovery
        self._books = PooledHTTP(VENUE, user_agent=settings.user_agent, connect_s=settings.connect_timeout_s,
                                 read_s=settings.read_timeout_s, ssl_context=self._ssl_context())
        self._pacer = Pacer(settings.discovery_rate_requests, settings.discovery_rate_window_s)
        self.max_pages = MAX_DISCOVERY_PAGES
        self.unusable_books = 0  # /books elements that were not a dict with an asset_id
        self.unrequested_books = 0  # /books elements for tokens we did not ask for
        self.verify_hash = settings.verify_book_hash
        self.hash_mismatches = 0  # books whose venue hash did not reproduce (flagged, kept)
        # poll key -> its last levels, raw and normalized (loop thread only; collector.venues.polymarket_reply.record)
        self._sides: dict[str, tuple] = {}
        self._repeats = reply.Repeats(self._lock)  # fetch threads: each token's last book as served

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            headers={"User-Agent": self.settings.user_agent, "Accept": "application/json"},
            timeout=self._discovery_timeout,
            follow_redirects=False,
            verify=self._ssl_context(),
        )

    def _ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every thread's client (thread-safe to share). A context per
        client loads the CA bundle each time: ~1 MB RSS and ~20 ms CPU per fetch thread."""
        with self._lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    # ------------------------------------------------------------------ HTTP

    def _get_json(self, url: str, params: dict[str, str]) -> Any:
        """One discovery GET -> its parsed JSON; typed errors only (books go through self._books)."""
        try:
            resp = self._clients.get().get(url, params=params, timeout=self._discovery_timeout)
        except httpx.TimeoutException as e:
            raise errors.Timeout(f"GET {url}: {type(e).__name__}", venue=self.name) from e
        except httpx.DecodingError as e:
            raise errors.BadPayload(f"GET {url}: undecodable body: {e}", venue=self.name) from e
        except httpx.HTTPError as e:  # TransportError and the other request-level failures
            raise errors.TransportError(f"GET {url}: {type(e).__name__}: {e}", venue=self.name) from e
        content = resp.content
        raise_for_status(resp.status_code, resp.headers, content, self.name)
        return parse_json(content, self.name)

    # ------------------------------------------------------------------ discovery

    def _gamma_params(self, cursor: str | None) -> dict[str, str]:
        # Built fresh for every page: the cursor is tied to the query, so every filter is re-sent.
        params = {"closed": "false", "limit": str(self.settings.gamma_page_limit)}
        if cursor:
            params["after_cursor"] = cursor
        return params

    def _get_page(self, url: str, params: dict[str, str]) -> Any:
        self._pacer.wait()
        return self._get_json(url, params)

    def discover(self) -> DiscoveryResult:
        """Every open, order-book-enabled outcome token. A failed page request fails the whole
        discovery (typed VenueError): a partial universe must not look like markets closing."""
        result = DiscoveryResult(instruments=[])
        seen_keys: set[str] = set()
        seen_cursors: set[str] = set()
        cursor: str | None = None
        url = f"{self._gamma}/markets/keyset"
        while True:
            if result.pages >= self.max_pages:
                log.warning("polymarket discovery: stopped after %d pages (page cap)", result.pages)
                result.paging_stop("page_bound")
                break
            params = self._gamma_params(cursor)
            page = fetch_page(
                lambda: self._get_page(url, params),
                attempts=self.settings.discovery_page_attempts,
                max_wait_s=self.settings.discovery_retry_max_s,
                what=f"keyset page {result.pages + 1}",
                venue=self.name,
                result=result,
            )
            result.pages += 1
            if not isinstance(page, dict) or not isinstance(page.get("markets"), list):
                raise errors.BadPayload(
                    f"keyset page {result.pages}: expected an object with a 'markets' array", venue=self.name
                )
            markets = page["markets"]
            for market in markets:
                add_market(market, result, seen_keys)
            # A short page is not the end (Gamma caps `limit` at 100): only the cursor ends the list.
            nxt = page.get("next_cursor")
            if not isinstance(nxt, str) or nxt in END_CURSORS:
                break
            if not markets:  # a cursor after an empty page leads nowhere useful
                log.info("polymarket discovery: empty page %d with a next_cursor; stopping", result.pages)
                break
            if nxt in seen_cursors:
                log.warning(
                    "polymarket discovery: next_cursor %r repeated after %d pages; stopping", nxt, result.pages
                )
                result.paging_stop("repeated_cursor")
                break
            seen_cursors.add(nxt)
            cursor = nxt
        return result

    # ------------------------------------------------------------------ books

    def fetch_books(self, poll_keys: Sequence[str]) -> FetchResult:
        """One ``POST /books``. Tokens left out of the reply land in ``errors`` as NotFound.

        With ``books_endpoint="single"`` one ``GET /book`` per token instead (see _fetch_single).
        """
        if self.single:
            return self._fetch_single(poll_keys)
        keys = list(dict.fromkeys(poll_keys))
        if len(keys) > MAX_BOOKS_PER_REQUEST:
            raise ValueError(f"at most {MAX_BOOKS_PER_REQUEST} tokens per /books request, got {len(keys)}")
        if not keys:
            return FetchResult(books={}, errors={}, ts_ms=now_ms(), latency_ms=0.0)
        body = orjson.dumps([{"token_id": k} for k in keys])
        content, ts, latency = self._books.request("POST", f"{self._clob}/books", body=body)
        data = reply.items(content, "/books")
        wanted = set(keys)
        books: dict[str, Any] = {}
        unusable = unrequested = 0
        exact = ExactReply(content)
        repeats = self._repeats
        for i, item in enumerate(data):
            raw = bytes(item)
            hit = repeats.get(raw)
            if hit is not None:
                aid, book = hit
            else:
                hd = reply.head(raw)
                aid = hd.asset_id if hd is not None else None
                book = None
            if not isinstance(aid, str) or not aid:
                unusable += 1
            elif aid in wanted:
                if aid not in books:  # a duplicate answer for one token: keep the first
                    if book is None:
                        book = self._checked(raw, hd, exact, i)
                        repeats.put(aid, book)
                    books[aid] = book
            else:
                unrequested += 1
        if unusable or unrequested:
            with self._lock:
                self.unusable_books += unusable
                self.unrequested_books += unrequested
            if unusable:
                log.warning("polymarket /books: %d of %d elements unusable (no asset_id)", unusable, len(data))
        if data and unusable == len(data):
            raise errors.BadPayload(f"/books: none of {len(data)} elements is a book", venue=self.name)
        errs: dict[str, errors.VenueError] = {
            k: errors.NotFound("no book in /books reply", venue=self.name) for k in keys if k not in books
        }
        return FetchResult(books=books, errors=errs, ts_ms=ts, latency_ms=latency)

    def _fetch_single(self, poll_keys: Sequence[str]) -> FetchResult:
        """``GET /book`` per token (the lane sends one at a time: batch_size is 1).

        Same contract as the batch path: a 404 (no book for that token) is a per-key NotFound in
        ``errors``; any other failure raises and fails the whole call. ``ts_ms`` is the arrival
        of the last reply, ``latency_ms`` the sum of the round trips.
        """
        books: dict[str, Any] = {}
        errs: dict[str, errors.VenueError] = {}
        ts, latency = now_ms(), 0.0
        for key in dict.fromkeys(poll_keys):
            try:
                res = self.fetch_book(key)
            except errors.NotFound as e:
                errs[key] = e
                continue
            books.update(res.books)
            ts = res.ts_ms
            latency += res.latency_ms
        return FetchResult(books=books, errors=errs, ts_ms=ts, latency_ms=latency)

    def fetch_book(self, poll_key: str) -> FetchResult:
        """Single ``GET /book?token_id=`` (404 -> NotFound raised)."""
        content, ts, latency = self._books.request("GET", f"{self._clob}/book", params={"token_id": poll_key})
        data = parse_json(content, self.name)
        hd = reply.head(content) if isinstance(data, dict) else None
        if hd is None:
            raise errors.BadPayload(f"/book: expected an object, got {type(data).__name__}", venue=self.name)
        book = self._checked(content, hd, ExactReply(content), None)
        if hd.asset_id != poll_key:  # normalize refuses it (from the parsed body, with both ids)
            book.body = data
        return FetchResult(books={poll_key: book}, errors={}, ts_ms=ts, latency_ms=latency)

    def _checked(self, item: Any, hd: reply.Head, exact: ExactReply | None, index: int | None) -> PolledBook:
        """One fetched book with its hash verdict and content key, on the fetch thread: before
        normalize re-sorts the levels, and off the loop thread (collector.venues.polymarket_reply)."""
        book = reply.polled(item, hd, self.verify_hash, exact, index)
        ok = book.hash_ok
        if ok is False:
            with self._lock:
                self.hash_mismatches += 1
                n = self.hash_mismatches
            if n == 1 or n % 1000 == 0:  # flagged on every record; the log only samples
                log.warning("polymarket: book hash mismatch for %s (%d so far); kept, flagged hash_ok=false",
                            hd.asset_id, n)
        return book

    # ------------------------------------------------------------------ normalize

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
        """Raw CLOB book -> BookRecord (collector.venues.polymarket_book.book_record).

        ``raw`` is the CheckedBook from fetch_books; a bare dict (tests, tools) is checked here instead.
        """
        if type(raw) is PolledBook:
            return reply.record(inst, raw, ts_ms, latency_ms, self._sides)
        if type(raw) is CheckedBook:
            return book_record(inst, raw.body, raw.hash_ok, ts_ms, latency_ms)
        if type(raw) is dict:
            return book_record(inst, raw, polyhash.check(raw) if self.verify_hash else None, ts_ms, latency_ms)
        raise errors.BadPayload("book is not an object", venue=self.name)

    def trades_source(self, ts: PolymarketTradesSettings) -> PolymarketTrades:
        """The data API's trade tape (a gap's backfill), paced like discovery."""
        return PolymarketTrades(self._get_page, ts.data_url, ts.page_limit, ts.max_pages)

    def close(self) -> None:
        """Close every thread's HTTP client; a later request on any thread opens a fresh one."""
        self._clients.close_all()
        self._books.close()


CLIENT = PolymarketClient
