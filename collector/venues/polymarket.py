"""Polymarket: Gamma keyset discovery + CLOB ``POST /books`` polling.

Venue facts (see shared/venues/polymarket.md):

* Discovery pages ``GET {gamma}/markets/keyset`` and sends the previous ``next_cursor`` back
  as ``after_cursor`` (``cursor=`` is silently ignored and returns page 1 forever). Every filter
  is re-sent on every page. The list ends when ``next_cursor`` is absent, ``""`` or ``"LTE="``.
* ``clobTokenIds`` / ``outcomes`` are JSON-encoded *strings*; token ``i`` pairs with
  ``outcomes[i]`` (labels are often not Yes/No).
* ``POST {clob}/books`` takes ``[{"token_id": ...}]`` (max 500) and silently leaves out tokens
  that have no book, in undocumented order: results are joined on ``asset_id``.
* Book prices and sizes are strings; bids arrive ascending and asks descending (best = last),
  so both sides are re-sorted explicitly.
* A book's ``hash`` is the SHA-1 of its body as served with ``hash`` = "": checked per book on the
  fetch thread, before the re-sort (collector.venues.polyhash); a mismatch flags, never drops.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import re
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx
import orjson

from collector.config.settings import PolymarketSettings
from collector.model import errors
from collector.model.clock import now_ms
from collector.model.decimals import dec_text
from collector.model.details import polymarket_details
from collector.model.records import BookRecord, DecText, Instrument, Level
from collector.venues import polyhash
from collector.venues.base import (
    DiscoveryResult,
    FetchResult,
    ThreadLocal,
    fetch_page,
    parse_json,
    raise_for_status,
)
from collector.venues.pacing import Pacer
from collector.venues.polyhash import CheckedBook, ExactReply

log = logging.getLogger(__name__)

MAX_BOOKS_PER_REQUEST = 500  # venue limit: 501 items -> 400 "Payload exceeds the limit"
MAX_DISCOVERY_PAGES = 10_000
END_CURSORS = frozenset({"", "LTE="})  # "LTE=" is base64 "-1", the CLOB list terminator

# Plain decimal text of bounded length: safe to hand straight to dec_text's fast path.
_FAST_NUM = re.compile(r"(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,14})?")
_MAX_NUM_CHARS = 64  # longer price/size text is garbage, not a Polymarket number
_MAX_ADJUSTED_EXP = 40  # |exponent| bound for scientific-notation input ("1E+999999999" bomb)
_MAX_TS_MS = 2**63 - 1  # orjson cannot write larger integers


class _BadMarket(Exception):
    """A Gamma market object we cannot turn into instruments (counted as "bad_market")."""


# --------------------------------------------------------------------------- numbers


def _num_text(value: Any) -> str:
    """Canonical decimal text for a book price/size; ValueError on junk.

    Like ``dec_text`` but bounded: refuses huge exponents and absurdly long text, whose
    canonical (exponent-free) form would otherwise be enormous.
    """
    if type(value) is str:
        if _FAST_NUM.fullmatch(value):  # dec_text's fast path without its second regex match
            return value.rstrip("0").rstrip(".") if "." in value else value
        text = value.strip()
        if len(text) > _MAX_NUM_CHARS:
            raise ValueError("number text too long")
        try:
            d = Decimal(text)
        except (InvalidOperation, ValueError):
            raise ValueError(f"not a number: {text!r}") from None
        if d.is_finite() and d != 0 and abs(d.adjusted()) > _MAX_ADJUSTED_EXP:
            raise ValueError(f"number out of range: {text!r}")
        out = dec_text(text)
        if len(out) > _MAX_NUM_CHARS:
            raise ValueError("number text too long")
        return out
    out = dec_text(value)  # int / float (bool and everything else -> ValueError)
    if len(out) > _MAX_NUM_CHARS:
        raise ValueError("number too long")
    return out


# Raw venue text -> canonical text. Prices and sizes repeat heavily from poll to poll, so a
# dict hit replaces two regex matches per number. Only valid text is cached, and only str keys
# (a float/bool key would alias: True == 1 == 1.0), so a lookup with any other value simply
# misses. The caches are dropped when they grow past the bound (dict get/set are atomic under
# the GIL). _PRICE_CACHE holds only prices whose canonical text is "0", "1" or "0.<digits>":
# for those, plain string order is numeric order (no exponent, no trailing zeros), so levels
# whose prices all come from it sort with a C-level key instead of float() per level.
_TEXT_CACHE: dict[str, str] = {}
_TEXT_CACHE_MAX = 100_000
_PRICE_CACHE: dict[str, str] = {}
_price_of = operator.itemgetter(0)


class _NotUnit(Exception):
    """A valid price outside [0, 1]: the level list takes the general path (_levels_any)."""


def _unit_price(value: Any) -> str:
    """Canonical text of a price in [0, 1] (cached when it came as text); ValueError on junk."""
    t = _num_text(value)
    if not (t[:2] == "0." or t == "0" or t == "1"):
        raise _NotUnit
    if type(value) is str:
        _PRICE_CACHE[value] = t
    return t


def _size_text(value: Any) -> str:
    t = _num_text(value)
    if type(value) is str:
        _TEXT_CACHE[value] = t
    return t


def _sort_key(levels: list[Level]):
    """Sort key for canonical prices. Text of <= 15 chars has <= 15 significant digits, which
    round-trip through a double, so float() keeps distinct values distinct and ordered; longer
    text falls back to Decimal."""
    for p, _ in levels:
        if len(p) > 15:
            return lambda lv: Decimal(lv[0])
    return lambda lv: float(lv[0])


def _levels(side: Any, name: str, descending: bool) -> list[Level]:
    """One book side as canonical (price, size) levels, sorted best first; BadPayload on junk.

    The hot path: one comprehension of two dict hits per level, then a sort on the price text
    (valid because every price came from _PRICE_CACHE / _unit_price, i.e. lies in [0, 1]).
    Anything else (a price above 1, junk) is handled by _levels_any with the same result.
    """
    if type(side) is not list:
        raise errors.BadPayload(f"book {name} is not a list", venue=PolymarketClient.name)
    pget = _PRICE_CACHE.get
    sget = _TEXT_CACHE.get
    try:
        out = [
            (pget(lv["price"]) or _unit_price(lv["price"]), sget(lv["size"]) or _size_text(lv["size"]))
            for lv in side
        ]
    except _NotUnit:
        out = _levels_any(side, name)
        if len(out) > 1:
            out.sort(key=_sort_key(out), reverse=descending)
        return out
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise errors.BadPayload(f"bad {name} level: {e}", venue=PolymarketClient.name) from None
    if len(out) > 1:
        out.sort(key=_price_of, reverse=descending)
    return out


def _levels_any(side: list[Any], name: str) -> list[Level]:
    """The general path of _levels (any valid price), unsorted."""
    out: list[Level] = []
    append = out.append
    cache = _TEXT_CACHE
    get = cache.get
    try:
        for lv in side:
            p = lv["price"]
            s = lv["size"]
            # Only str keys: a float/bool key would alias (True == 1 == 1.0) in the dict.
            tp = get(p) if type(p) is str else None
            if tp is None:
                tp = _num_text(p)
                if type(p) is str:
                    cache[p] = tp
            ts = get(s) if type(s) is str else None
            if ts is None:
                ts = _num_text(s)
                if type(s) is str:
                    cache[s] = ts
            append((tp, ts))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise errors.BadPayload(f"bad {name} level: {e}", venue=PolymarketClient.name) from None
    return out


def _opt_dec(value: Any) -> str | None:
    """Optional decimal text (tick size, last trade, min size); None when absent/""/junk."""
    if value is None or value == "":
        return None
    if type(value) is str:
        t = _TEXT_CACHE.get(value)
        if t is not None:
            return t
    try:
        t = _num_text(value)
    except ValueError:
        return None
    if type(value) is str:
        _TEXT_CACHE[value] = t
    return t


def _ob_ts(value: Any) -> int | None:
    """Book ``timestamp`` (string unix ms) -> int, None when absent or invalid."""
    if value is None or type(value) is bool:
        return None
    try:
        ts = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return ts if 0 <= ts <= _MAX_TS_MS else None


def _float(value: Any) -> float | None:
    if value is None or type(value) is bool:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _parse_time_ms(value: Any) -> int | None:
    """Lenient ISO-8601 (``Z``, fractions, date only, space separator, ``+00``) -> epoch ms.

    Naive values are taken as UTC. Numbers are epoch seconds, or ms when > 1e11.
    None when absent or unparseable.
    """
    if value is None or type(value) is bool:
        return None
    if type(value) in (int, float):
        if not math.isfinite(value) or abs(value) > 1e17:
            return None
        return int(value if abs(value) > 1e11 else value * 1000)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        try:  # "Z" with odd fractions etc.: retry without the zone suffix
            dt = datetime.fromisoformat(text.rstrip("Zz"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return int(dt.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):  # e.g. year 1 shifted out of range by its offset
        return None


# --------------------------------------------------------------------------- Gamma fields


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _json_list(value: Any, field: str) -> list[Any] | None:
    """A Gamma JSON-string array (or a real array). None when absent/empty text."""
    if value is None:
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _BadMarket(f"{field} is not JSON") from None
        if isinstance(parsed, list):
            return parsed
    raise _BadMarket(f"{field} is not an array")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def _tags(*sources: Any) -> tuple[str, ...]:
    """Tags from market and event ``tags``: a dict gives its slug and its label (rules match
    either, case-insensitively), a string is itself. First spelling kept, case-insensitive dedupe."""
    out: dict[str, str] = {}
    for src in sources:
        if isinstance(src, str):
            try:
                src = orjson.loads(src)
            except orjson.JSONDecodeError:
                src = [src]
        if not isinstance(src, list):
            continue
        for t in src:
            names = (t.get("slug"), t.get("label")) if isinstance(t, dict) else (t,)
            for name in names:
                if isinstance(name, str) and name.strip():
                    name = name.strip()
                    out.setdefault(name.lower(), name)
    return tuple(out.values())


# --------------------------------------------------------------------------- client


class PolymarketClient:
    """VenueClient for Polymarket (see collector.venues.base.VenueClient)."""

    name: ClassVar[str] = "polymarket"
    shared_spacing: None = None  # no spacing shared with other processes (limits are per window)

    def __init__(self, settings: PolymarketSettings, *, state_dir: str | os.PathLike[str] | None = None):
        self.settings = settings  # state_dir: unused (discovery and books are on different hosts)
        # "single" polls one token per GET /book (the per-instrument baseline): batch size 1.
        self.single = settings.books_endpoint == "single"
        self.batch_size: int = 1 if self.single else settings.books_batch_size
        self._gamma = settings.gamma_url.rstrip("/")
        self._clob = settings.clob_url.rstrip("/")
        self._book_timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.connect_timeout_s,
        )
        self._discovery_timeout = httpx.Timeout(settings.discovery_timeout_s)
        self._clients = ThreadLocal(self._new_client)
        self._pacer = Pacer(settings.discovery_rate_requests, settings.discovery_rate_window_s)
        self.max_pages = MAX_DISCOVERY_PAGES
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self.unusable_books = 0  # /books elements that were not a dict with an asset_id
        self.unrequested_books = 0  # /books elements for tokens we did not ask for
        self.verify_hash = settings.verify_book_hash
        self.hash_mismatches = 0  # books whose venue hash did not reproduce (flagged, kept)

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            headers={"User-Agent": self.settings.user_agent, "Accept": "application/json"},
            timeout=self._book_timeout,
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

    def _request(
        self,
        method: str,
        url: str,
        *,
        timeout: httpx.Timeout,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[Any, int, float, bytes]:
        """One HTTP call -> (parsed JSON, ts_ms on arrival, latency ms, raw body); typed errors only."""
        client = self._clients.get()
        headers = {"Content-Type": "application/json"} if body is not None else None
        t0 = time.monotonic()
        try:
            resp = client.request(method, url, params=params, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as e:
            raise errors.Timeout(f"{method} {url}: {type(e).__name__}", venue=self.name) from e
        except httpx.DecodingError as e:
            raise errors.BadPayload(f"{method} {url}: undecodable body: {e}", venue=self.name) from e
        except httpx.HTTPError as e:  # TransportError and the other request-level failures
            raise errors.TransportError(f"{method} {url}: {type(e).__name__}: {e}", venue=self.name) from e
        ts = now_ms()
        latency = (time.monotonic() - t0) * 1000.0
        content = resp.content
        raise_for_status(resp.status_code, resp.headers, content, self.name)
        return parse_json(content, self.name), ts, latency, content

    # ------------------------------------------------------------------ discovery

    def _gamma_params(self, cursor: str | None) -> dict[str, str]:
        # Built fresh for every page: the cursor is tied to the query, so every filter is re-sent.
        params = {"closed": "false", "limit": str(self.settings.gamma_page_limit)}
        if cursor:
            params["after_cursor"] = cursor
        return params

    def _get_page(self, url: str, params: dict[str, str]) -> Any:
        self._pacer.wait()
        return self._request("GET", url, params=params, timeout=self._discovery_timeout)[0]

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
                self._add_market(market, result, seen_keys)
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

    def _add_market(self, market: Any, result: DiscoveryResult, seen_keys: set[str]) -> None:
        try:
            reason, instruments = self._market_instruments(market)
        except _BadMarket as e:
            log.debug("polymarket discovery: bad market %s: %s", _market_id(market), e)
            result.skip("bad_market")
            return
        except Exception as e:  # one malformed market (e.g. Instrument validation) never fails the page
            log.debug("polymarket discovery: bad market %s: %r", _market_id(market), e)
            result.skip("bad_market")
            return
        if reason is not None:
            result.skip(reason)
            return
        fresh = [i for i in instruments if i.poll_key not in seen_keys]
        if not fresh:
            result.skip("duplicate")
            return
        for inst in fresh:
            seen_keys.add(inst.poll_key)
            result.instruments.append(inst)

    def _market_instruments(self, m: Any) -> tuple[str | None, list[Instrument]]:
        """(skip reason, []) or (None, one Instrument per outcome token)."""
        if not isinstance(m, dict):
            raise _BadMarket("market is not an object")
        if _flag(m.get("closed")):
            return "closed", []
        if not _flag(m.get("acceptingOrders")):
            return "not_accepting_orders", []
        if not _flag(m.get("enableOrderBook")):
            return "no_order_book", []

        tokens = _json_list(m.get("clobTokenIds"), "clobTokenIds")
        if not tokens:  # absent, "", "[]": the market is still hydrating on the CLOB
            return "tokens_pending", []
        if not all(isinstance(t, str) for t in tokens):
            raise _BadMarket("clobTokenIds holds a non-string id")
        tokens = [t.strip() for t in tokens]
        if not all(tokens):
            return "tokens_pending", []
        if len(set(tokens)) != len(tokens):
            raise _BadMarket("duplicate token ids")
        outcomes = _json_list(m.get("outcomes"), "outcomes")
        if outcomes is None or len(outcomes) != len(tokens):
            raise _BadMarket("outcomes do not pair with clobTokenIds")
        if not all(isinstance(o, str) for o in outcomes):
            raise _BadMarket("outcome label is not a string")
        condition_id = m.get("conditionId")
        if not isinstance(condition_id, str) or not condition_id:
            raise _BadMarket("no conditionId")

        event = _first_dict(m.get("events"))
        series = _first_dict(event.get("series"))
        end_date = m.get("endDate")
        tick = _opt_dec(m.get("orderPriceMinTickSize"))
        liquidity = _float(m.get("liquidityNum"))
        if liquidity is None:
            liquidity = _float(m.get("liquidity"))
        starts = None
        for candidate in (m.get("eventStartTime"), event.get("startTime"), m.get("startDate")):
            starts = _parse_time_ms(candidate)
            if starts is not None:
                break
        neg_risk = m.get("negRisk")
        common = {
            "venue": self.name,
            "market_id": condition_id,
            "title": m.get("question") if isinstance(m.get("question"), str) else "",
            "slug": m.get("slug") if isinstance(m.get("slug"), str) else "",
            "expires_at_ms": _parse_time_ms(end_date),
            "tick_size": tick,
            "event_slug": _str_or_none(event.get("slug")),
            "series_slug": _str_or_none(event.get("seriesSlug")) or _str_or_none(series.get("slug")),
            "recurrence": _str_or_none(series.get("recurrence")),
            "tags": _tags(m.get("tags"), event.get("tags")),
            "volume_24h": _float(m.get("volume24hr")),
            "liquidity": liquidity,
            "starts_at_ms": starts,
            "details": polymarket_details(m, event),
        }
        question_id = m.get("questionID", m.get("questionId"))
        out = []
        for i, token in enumerate(tokens):
            meta = {
                "gamma_id": m.get("id") if isinstance(m.get("id"), (str, int)) else None,
                "condition_id": condition_id,
                "question_id": question_id if isinstance(question_id, str) else None,
                "neg_risk": neg_risk if isinstance(neg_risk, bool) else None,
                "token_index": i,
                "other_token": tokens[1 - i] if len(tokens) == 2 else None,
                "end_date": end_date if isinstance(end_date, str) else None,
            }
            out.append(Instrument(poll_key=token, outcome=outcomes[i], meta=meta, **common))
        return None, out

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
        data, ts, latency, content = self._request("POST", f"{self._clob}/books", body=body, timeout=self._book_timeout)
        if not isinstance(data, list):
            raise errors.BadPayload(f"/books: expected an array, got {type(data).__name__}", venue=self.name)
        wanted = set(keys)
        books: dict[str, Any] = {}
        unusable = unrequested = 0
        exact = ExactReply(content)
        for i, el in enumerate(data):
            aid = el.get("asset_id") if isinstance(el, dict) else None
            if not isinstance(aid, str) or not aid:
                unusable += 1
            elif aid in wanted:
                if aid not in books:  # a duplicate answer for one token: keep the first
                    books[aid] = self._checked(el, exact, i)
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
        data, ts, latency, content = self._request(
            "GET", f"{self._clob}/book", params={"token_id": poll_key}, timeout=self._book_timeout
        )
        if not isinstance(data, dict):
            raise errors.BadPayload(f"/book: expected an object, got {type(data).__name__}", venue=self.name)
        return FetchResult(books={poll_key: self._checked(data, ExactReply(content), None)}, errors={}, ts_ms=ts,
                           latency_ms=latency)

    def _checked(self, body: dict[str, Any], exact: ExactReply | None, index: int | None) -> CheckedBook:
        """The hash verdict of one fetched book, on the fetch thread: before normalize re-sorts
        the levels, and off the loop thread (SHA-1 over the body is the costly part)."""
        if not self.verify_hash:
            return CheckedBook(body, None)
        ok = polyhash.check(body, exact, index)
        if ok is False:
            with self._lock:
                self.hash_mismatches += 1
                n = self.hash_mismatches
            if n == 1 or n % 1000 == 0:  # flagged on every record; the log only samples
                log.warning("polymarket: book hash mismatch for %s (%d so far); kept, flagged hash_ok=false",
                            body.get("asset_id"), n)
        return CheckedBook(body, ok)

    # ------------------------------------------------------------------ normalize

    def normalize(self, inst: Instrument, raw: Any, ts_ms: int, latency_ms: float) -> BookRecord:
        """Raw CLOB book -> BookRecord (bids best-first descending, asks ascending).

        Levels are kept as given apart from the re-sort (zero sizes and repeated prices are
        not dropped or merged). Raises BadPayload for anything it cannot trust. ``raw`` is the
        CheckedBook from fetch_books; a bare dict (tests, tools) is checked here instead.
        """
        if type(raw) is CheckedBook:
            hash_ok = raw.hash_ok
            raw = raw.body
        elif type(raw) is dict:
            hash_ok = polyhash.check(raw) if self.verify_hash else None
        else:
            raise errors.BadPayload("book is not an object", venue=self.name)
        if raw.get("asset_id") != inst.poll_key:
            raise errors.BadPayload(
                f"book asset_id {raw.get('asset_id')!r} != requested {inst.poll_key!r}", venue=self.name
            )
        bids = _levels(raw.get("bids"), "bids", True)
        asks = _levels(raw.get("asks"), "asks", False)
        if len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
            _TEXT_CACHE.clear()
        if len(_PRICE_CACHE) > _TEXT_CACHE_MAX:
            _PRICE_CACHE.clear()
        h = raw.get("hash")
        extra: dict[str, Any] = {}
        ltp = _opt_dec(raw.get("last_trade_price"))
        if ltp is not None:
            extra["last_trade_price"] = DecText(ltp)
        mos = _opt_dec(raw.get("min_order_size"))
        if mos is not None:
            extra["min_order_size"] = DecText(mos)
        nr = raw.get("neg_risk")
        if type(nr) is bool:
            extra["neg_risk"] = nr
        return BookRecord(
            venue=self.name,
            instrument_id=inst.instrument_id,
            poll_key=inst.poll_key,
            market_id=inst.market_id,
            outcome=inst.outcome,
            ts_ms=ts_ms,
            bids=bids,
            asks=asks,
            latency_ms=latency_ms,
            ob_ts_ms=_ob_ts(raw.get("timestamp")),
            hash=h if type(h) is str and h else None,
            hash_ok=hash_ok,
            tick_size=_opt_dec(raw.get("tick_size")) or inst.tick_size,
            extra=extra,
        )

    def close(self) -> None:
        """Close every thread's HTTP client; a later request on any thread opens a fresh one."""
        self._clients.close_all()


def _market_id(m: Any) -> Any:
    return m.get("id") if isinstance(m, dict) else None


CLIENT = PolymarketClient
