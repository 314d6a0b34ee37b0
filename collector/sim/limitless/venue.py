"""The simulated Limitless: its market list (newest first, as the venue lists them), the
reads ``/markets/active`` and the order-book endpoint serve, and the ``/_sim/markets``
lifecycle actions."""

from __future__ import annotations

import time
from typing import Any

from collector.model.clock import now_ms
from collector.sim.clock import SimClock, SimError
from collector.sim.limitless.books import LimBook
from collector.sim.limitless.catalog import LIM_CRYPTO, LimFactory
from collector.sim.limitless.market import LimMarket
from collector.sim.venue import VenueSim


class LimitlessSim(VenueSim):
    name = "limitless"

    def __init__(self, clock: SimClock, n_markets: int) -> None:
        super().__init__(clock)
        self.items: list[LimMarket] = []  # top-level markets and groups, in listing order
        self.slugs: dict[str, LimMarket] = {}  # every market, group children included
        self.factory = LimFactory(clock.seed, clock.epoch)
        for m in self.factory.build(n_markets):
            self._register(m)

    def _register(self, m: LimMarket, front: bool = False) -> None:
        if front:
            self.items.insert(0, m)
        else:
            self.items.append(m)
        self.slugs[m.slug] = m
        for c in m.children:
            self.slugs[c.slug] = c
        for x in (m, *m.children):
            self.notify("added", x)

    # ---------------- reads

    def active(self, trade_type: str | None) -> list[LimMarket]:
        out = []
        for m in self.items:
            if not m.listed:
                continue
            if trade_type == "clob" and m.kind == "amm":
                continue
            if trade_type == "amm" and m.kind != "amm":
                continue
            if trade_type == "group" and m.kind != "group":
                continue
            out.append(m)
        return out

    def book(self, m: LimMarket, now: int) -> bytes:
        b = m.book
        if b is None:
            b = m.book = LimBook(self.clock, m)
        return b.get(now)

    # ---------------- lifecycle

    def info(self) -> list[dict[str, Any]]:
        out = []
        for m in self.items:
            out.append(m.info())
            out.extend(c.info() for c in m.children)
        return out

    def size(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        return f"{len(self.items)} items"

    def add_one(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        m = self._add(spec)
        return [m.info(), *(c.info() for c in m.children)]

    def _add(self, spec: dict[str, Any]) -> LimMarket:
        rng = self.clock.life_rng
        f = self.factory
        kind = spec.get("kind", "clob")
        now = time.time()
        # A market opened now is generated around now, not around the start-up epoch.
        saved_epoch = f.epoch
        f.epoch = now
        try:
            if kind == "crypto":
                a = next((c for c in LIM_CRYPTO if c[0] == spec.get("asset", "btc")), None)
                if a is None:
                    raise SimError("unknown asset")
                fam = str(spec.get("family", "above"))
                if fam not in ("above", "up_or_down"):
                    raise SimError("family must be above or up_or_down")
                m = f.make_crypto(rng, a, hours=float(spec.get("end_in_s", 3600)) / 3600, family=fam)
            elif kind == "clob":
                m = f.make_single(rng)
            elif kind == "amm":
                m = f.make_amm(rng)
            elif kind == "group":
                m = f.make_group(rng, int(spec.get("outcomes", 3)))
            else:
                raise SimError("kind must be one of crypto, clob, amm, group")
        finally:
            f.epoch = saved_epoch
        m.created_ms = int(now * 1000)
        if spec.get("slug") and not m.children:
            m.slug = str(spec["slug"])
        m.status = "FUNDED"
        m.expired = False
        if "end_in_s" in spec:
            m.exp_ms = int((now + float(spec["end_in_s"])) * 1000)
            for c in m.children:
                c.exp_ms = m.exp_ms
        self._register(m, front=True)  # the active list shows newest first
        return m

    def select(self, spec: dict[str, Any]) -> list[LimMarket]:
        if "slug" in spec:
            m = self.slugs.get(str(spec["slug"]))
            return [m] if m else []
        if "id" in spec:
            return [m for m in self.slugs.values() if str(m.id) == str(spec["id"])]
        if "token_id" in spec:
            return [m for m in self.slugs.values() if m.tokens and spec["token_id"] in m.tokens.values()]
        pool = [m for m in self.items if m.listed]
        if "kind" in spec:
            pool = [m for m in pool if m.kind == spec["kind"]]
        return self.clock.pick(pool, spec)

    def close(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in self.select(spec):
            for x in (m, *m.children):
                x.active = False
                x.status = "RESOLVED"
                book, x.book = x.book, None
                self.notify("closed", x, book=book)
            out.append(m.info())
        return out

    def expire(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        t_ms = now_ms()
        out = []
        for m in self.select(spec):
            for x in [m, *m.children]:
                x.exp_ms = min(x.exp_ms, int(now * 1000))
                x.expired = True
                if x.status in ("FUNDED", "FUNDED_FLAGGED"):
                    x.status = "LOCKED"
                if x.live:
                    self.book(x, t_ms)
                    x.book.freeze(t_ms)
                self.notify("expired", x)
            out.append(m.info())
        return out

    def update(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in self.select(spec):
            if "status" in spec:
                m.status = str(spec["status"])
            self.notify("updated", m)
            out.append(m.info())
        return out

    def churn(self, now: float) -> tuple[list, list]:
        """Resolve what expired (reopening recurring crypto), close one random market, add one."""
        closed: list = []
        added: list = []
        now_ms_ = int(now * 1000)
        for m in list(self.items):
            if m.active and m.exp_ms <= now_ms_:
                closed += self.close({"slug": m.slug})
                if m.recurring:
                    spec = {"kind": "crypto", "asset": m.asset, "family": m.family}
                    if m.family == "above":
                        spec["end_in_s"] = 3600
                    added += self.add(spec)
        closed += self.close({"count": 1})
        added += self.add({"kind": self.clock.life_rng.choice(("clob", "clob", "crypto", "amm", "group"))})
        return closed, added
