"""The whole simulated world: one shared clock plus one state per venue.

``SimState`` only composes: each venue (``collector.sim.<venue>.venue``) owns its catalogue,
books and lifecycle; this module routes the ``/_sim/markets`` actions to the named venue and
runs a churn tick over all of them, in a fixed order (they share the lifecycle RNG).
"""

from __future__ import annotations

import time
from typing import Any

from collector.sim.clock import ChangeMix, SimClock, SimError
from collector.sim.kalshi.venue import KalshiSim
from collector.sim.limitless.venue import LimitlessSim
from collector.sim.polymarket.venue import PolymarketSim
from collector.sim.tape import DEFAULT_BUDGET, DEFAULT_PER_BOOK
from collector.sim.venue import VenueSim


class SimState:
    def __init__(
        self,
        seed: int = 1,
        markets: int = 50,
        epoch: float | None = None,
        tick_s: float = 1.0,
        change_prob: float = 0.3,
        t0: float | None = None,
        change_mix: ChangeMix | None = None,
        tape_per_book: int = DEFAULT_PER_BOOK,
        tape_budget: int = DEFAULT_BUDGET,
    ) -> None:
        self.clock = SimClock(seed, epoch, tick_s, change_prob, t0, change_mix, tape_per_book, tape_budget)
        self.seed = seed
        n = max(1, markets)
        self.polymarket = PolymarketSim(self.clock, n)
        self.limitless = LimitlessSim(self.clock, n)
        self.kalshi = KalshiSim(self.clock, n)
        # The order is part of what a seed reproduces: venues are listed and churned in it.
        self.venues: dict[str, VenueSim] = {"polymarket": self.polymarket, "limitless": self.limitless,
                                            "kalshi": self.kalshi}

    def venue(self, name: Any) -> VenueSim:
        v = self.venues.get(name) if isinstance(name, str) else None
        if v is None:
            raise SimError("venue must be " + " or ".join(self.venues))
        return v

    def act(self, venue: str, action: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """One ``/_sim/markets`` action (add, close, expire, update) on one venue."""
        v = self.venue(venue)
        if action == "add":
            return v.add(spec)
        if action == "close":
            return v.close(spec)
        if action == "expire":
            return v.expire(spec)
        if action == "update":
            return v.update(spec)
        raise SimError("action must be add, close, expire, update or churn")

    def churn_step(self) -> dict[str, list]:
        """One churn tick: on each venue, retire markets past their end (rolling recurring
        series forward), close one random open market and open one new market."""
        now = time.time()
        closed: list = []
        added: list = []
        for v in self.venues.values():
            c, a = v.churn(now)
            closed += c
            added += a
        return {"closed": closed, "added": added}
