"""The simulated Polymarket: its market registry, the reads Gamma and the CLOB serve
(keyset pages, books by token id) and the ``/_sim/markets`` lifecycle actions."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import math
import time
from typing import Any

from collector.model.clock import now_ms
from collector.sim.clock import SimClock, SimError
from collector.sim.names import token_id
from collector.sim.polymarket.books import PolyBooks
from collector.sim.polymarket.catalog import CRYPTO, RECURRENCES, PolyFactory
from collector.sim.polymarket.market import PolyMarket
from collector.sim.venue import VenueSim

# Tick sizes a control update may set, and the price grid (ticks per 1.0) of each.
TICKS = {"0.01": 100, "0.001": 1000, "0.0001": 10000}


class PolymarketSim(VenueSim):
    name = "polymarket"

    def __init__(self, clock: SimClock, n_markets: int) -> None:
        super().__init__(clock)
        self.markets: dict[int, PolyMarket] = {}
        self.ids: list[int] = []  # sorted: the keyset order
        self.tokens: dict[str, tuple[PolyMarket, int]] = {}  # token id -> (market, 0 YES / 1 NO)
        self.shuffle_key: dict[str, int] = {}  # /books answers in this order, not the request's
        self.factory = PolyFactory(clock.seed, clock.epoch)
        for m in self.factory.build(n_markets):
            self._register(m)

    def _register(self, m: PolyMarket) -> None:
        self.markets[m.id] = m
        bisect.insort(self.ids, m.id)
        self._index_tokens(m)
        self.notify("added", m)

    def _index_tokens(self, m: PolyMarket) -> None:
        for i, t in enumerate(m.tokens):
            self.tokens[t] = (m, i)
            self.shuffle_key[t] = int(hashlib.md5(f"{self.clock.seed}:{t}".encode()).hexdigest()[:12], 16)

    # ---------------- reads

    def gamma_page(self, after_id: int | None, limit: int, closed: bool | None) -> tuple[list[bytes], int | None]:
        """Up to ``limit`` Gamma objects after ``after_id``; the last id when more follow."""
        ids = self.ids
        i = 0 if after_id is None else bisect.bisect_right(ids, after_id)
        out: list[bytes] = []
        last = None
        poly = self.markets
        while i < len(ids) and len(out) < limit:
            m = poly[ids[i]]
            i += 1
            if closed is None or m.closed == closed:
                out.append(m.gamma_bytes())
                last = m.id
        more = False
        while i < len(ids):
            m = poly[ids[i]]
            i += 1
            if closed is None or m.closed == closed:
                more = True
                break
        return out, (last if more else None)

    @staticmethod
    def encode_cursor(mid: int) -> str:
        return base64.urlsafe_b64encode(f"ks1:{mid}".encode()).decode().rstrip("=")

    @staticmethod
    def decode_cursor(c: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode()
            if not raw.startswith("ks1:"):
                raise ValueError
            return int(raw[4:])
        except Exception as e:  # noqa: BLE001
            raise SimError("invalid after_cursor") from e

    def book_bytes(self, token: str, now: int) -> bytes | None:
        ent = self.tokens.get(token)
        if ent is None:
            return None
        m, side = ent
        if not m.live:
            return None
        return self.ensure_book(m).get(side, now)

    def ensure_book(self, m: PolyMarket) -> PolyBooks:
        """The market's book, made on first use (a book read or a trades read)."""
        b = m.book
        if b is None:
            b = m.book = PolyBooks(self.clock, m)
        return b

    # ---------------- lifecycle

    def info(self) -> list[dict[str, Any]]:
        return [self.markets[i].info() for i in self.ids]

    def size(self) -> int:
        return len(self.markets)

    def summary(self) -> str:
        return f"{len(self.markets)} markets/{len(self.tokens)} tokens"

    def add_one(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        return [m.info() for m in self._add(spec)]

    def _add(self, spec: dict[str, Any]) -> list[PolyMarket]:
        rng = self.clock.life_rng
        f = self.factory
        kind = spec.get("kind", "yesno")
        now = time.time()
        if kind == "crypto":
            asset = spec.get("asset", "btc")
            rec = spec.get("recurrence", "15m")
            a = next((c for c in CRYPTO if c[0] == asset), None)
            r = next((x for x in RECURRENCES if x[0] == rec), None)
            if a is None or r is None:
                raise SimError("unknown asset or recurrence")
            if "start_ts" in spec:
                start = float(spec["start_ts"])
            else:  # the slot after the last open one of this series (or the current slot)
                start = math.floor(now / r[1]) * r[1]
                for x in self.markets.values():
                    if x.series and not x.closed and x.series["asset"] == asset and x.series["rec"] == rec:
                        start = max(start, x.series["start"] + r[1])
            ms = [f.make_crypto(rng, *a, rec, r[1], start)]
        elif kind == "sports":
            ms = [f.make_sports(rng)]
        elif kind == "negrisk":
            ms = f.make_negrisk(rng, int(spec.get("outcomes", 3)))
        elif kind == "yesno":
            ms = [f.make_yesno(rng)]
        else:
            raise SimError("kind must be one of crypto, yesno, sports, negrisk")
        for m in ms:
            m.start_ts = now - 60
            m.fresh = False
            if "end_in_s" in spec:
                m.end_ts = now + float(spec["end_in_s"])
            if spec.get("slug") and len(ms) == 1:
                m.slug = str(spec["slug"])
                m.event = dict(m.event, slug=m.slug)
            if spec.get("question") and len(ms) == 1:
                m.question = str(spec["question"])
            if spec.get("hydrating"):
                f.hydrating(m, True)
            self._apply_flags(m, spec)
            self._register(m)
        return ms

    @staticmethod
    def _apply_flags(m: PolyMarket, spec: dict[str, Any]) -> None:
        """The plain market fields ``add`` and ``update`` both accept."""
        if "accepting_orders" in spec:
            m.accepting = bool(spec["accepting_orders"])
        if "enable_order_book" in spec:
            m.enable_ob = bool(spec["enable_order_book"])
        if "has_book" in spec:
            m.has_book = bool(spec["has_book"])
        if "volume24hr" in spec:
            m.volume24hr = float(spec["volume24hr"])

    def select(self, spec: dict[str, Any]) -> list[PolyMarket]:
        if "id" in spec:
            m = self.markets.get(int(spec["id"]))
            return [m] if m else []
        if "slug" in spec:
            return [m for m in self.markets.values() if m.slug == spec["slug"]]
        if "token_id" in spec:
            e = self.tokens.get(str(spec["token_id"]))
            return [e[0]] if e else []
        pool = [self.markets[i] for i in self.ids if not self.markets[i].closed]
        if "kind" in spec:
            pool = [m for m in pool if m.kind == spec["kind"]]
        return self.clock.pick(pool, spec)

    def close(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for m in self.select(spec):
            if not m.closed:
                m.closed = True
                m.accepting = False
                m.closed_ts = now
                m.outcome_prices = ["1", "0"]
                book, m.book = m.book, None
                m.touch()
                self.notify("closed", m, book=book)
            out.append(m.info())
        return out

    def expire(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        t_ms = now_ms()
        out = []
        for m in self.select(spec):
            m.end_ts = min(m.end_ts, now)
            m.accepting = False
            m.expired = True
            if m.live:
                if m.book is None:
                    m.book = PolyBooks(self.clock, m)
                m.book.freeze(t_ms)
            m.touch()
            self.notify("expired", m)
            out.append(m.info())
        return out

    def update(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        if "tick_size" in spec and str(spec["tick_size"]) not in TICKS:
            raise SimError("tick_size must be one of " + ", ".join(TICKS))
        out = []
        for m in self.select(spec):
            if "tick_size" in spec:
                self._set_tick(m, str(spec["tick_size"]))
            self._apply_flags(m, spec)
            if "hydrating" in spec:
                if spec["hydrating"]:
                    for t in m.tokens:
                        self.tokens.pop(t, None)
                    self.factory.hydrating(m, True)
                elif not m.tokens:
                    m.tokens = [token_id(self.clock.seed, f"{m.id}:{i}") for i in range(2)]
                    m.clob_field = json.dumps(m.tokens)
                    m.fresh = False
                    self._index_tokens(m)
            m.touch()
            self.notify("updated", m)
            out.append(m.info())
        return out

    def _set_tick(self, m: PolyMarket, tick: str) -> None:
        """Move the market (and its book, if it has one) to another tick size. A finer grid
        leaves every level where it is (only ``tick_size`` and so the hash change); a coarser
        one merges levels, which is a book change stamped now."""
        n = TICKS[tick]
        if n == m.tick_n:
            return
        old_tick, old_n = m.tick_s, m.tick_n
        book = m.book
        before = None
        if book is not None:
            now = now_ms()
            book.advance(now)
            w = book.walk
            before = ([lv[:] for lv in w.bids], [lv[:] for lv in w.asks])
            try:
                w.rescale(n)
            except ValueError as e:
                raise SimError(f"tick_size {tick}: {e}") from None
            f = max(n, old_n)
            if ([[q * f // n, s] for q, s in w.bids] != [[q * f // old_n, s] for q, s in before[0]]
                    or [[q * f // n, s] for q, s in w.asks] != [[q * f // old_n, s] for q, s in before[1]]):
                book.ts_ms = max(book.ts_ms, now)
            book.dirty = True
        m.tick_n, m.tick_s, m.tick_f = n, tick, float(tick)
        self.notify("tick", m, old_tick=old_tick, old_n=old_n, book=book, before=before)

    def churn(self, now: float) -> tuple[list, list]:
        """Roll finished recurring slots forward, close one random market, add one."""
        closed: list = []
        added: list = []
        for m in [self.markets[i] for i in self.ids]:
            if m.closed or m.end_ts > now:
                continue
            closed += self.close({"id": m.id})
            if m.series:
                s = m.series
                nxt = s["start"] + s["secs"]
                while nxt + s["secs"] <= now:
                    nxt += s["secs"]
                later = any(
                    x.series and not x.closed and x.series["asset"] == s["asset"] and x.series["rec"] == s["rec"]
                    and x.series["start"] >= nxt for x in self.markets.values()
                )
                if not later:
                    added += self.add({"kind": "crypto", "asset": s["asset"], "recurrence": s["rec"], "start_ts": nxt})
        closed += self.close({"count": 1})
        added += self.add({"kind": self.clock.life_rng.choice(("yesno", "yesno", "sports", "crypto"))})
        return closed, added
