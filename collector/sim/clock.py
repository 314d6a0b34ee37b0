"""The simulated clock every venue shares: seeds, the book tick and the lazy change schedule.

Everything random is drawn from ``random.Random`` instances seeded from ``--seed`` plus a
stable key, so the same seed gives the same catalogue and the same book paths.

Books follow a random walk (``collector.sim.walk``) advanced lazily: each book changes at
tick boundaries (``tick_s``, plus a per-book phase) with probability ``change_prob`` per tick,
or, with a ``change_mix`` (``--change-mix "0.05:1.0,0.95:0.02"``: share of books : probability),
with the probability of the class the book falls in.
The number of ticks to the next change is drawn from a geometric distribution, so a request
only pays for the changes that happened since the book was last looked at.

A book somebody subscribed to on a feed has a ``listener``: then ``advance`` reports every
change, at its own tick time, whoever made the book catch up (a REST read or the feed's timer),
so each change reaches the feed exactly once and REST shows the same state at the same instant.
Either way every trade goes on the book's tape (``collector.sim.tape``) at its change's time.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Callable

from collector.sim.tape import DEFAULT_BUDGET, DEFAULT_PER_BOOK, Tape, TapeBudget
from collector.sim.walk import Walk

INF_MS = 1 << 62

ChangeMix = tuple[tuple[float, float], ...]  # (share of books, change probability per tick)


def parse_change_mix(text: str | None) -> ChangeMix | None:
    """``"0.05:1.0,0.95:0.02"`` -> ``((0.05, 1.0), (0.95, 0.02))``; None or "" -> None.
    The shares must add up to 1; probabilities lie in [0, 1]."""
    if text is None or not text.strip():
        return None
    out = []
    for part in text.split(","):
        try:
            share_s, prob_s = part.split(":")
            share, prob = float(share_s), float(prob_s)
        except ValueError:
            raise ValueError(f"change mix entry {part.strip()!r} is not SHARE:PROB") from None
        if not (0.0 < share <= 1.0 and 0.0 <= prob <= 1.0):
            raise ValueError(f"change mix entry {part.strip()!r}: share in (0, 1], probability in [0, 1]")
        out.append((share, prob))
    if abs(sum(s for s, _ in out) - 1.0) > 1e-6:
        raise ValueError(f"change mix shares add up to {sum(s for s, _ in out):g}, not 1")
    return tuple(out)

class SimError(ValueError):
    """A control request the simulator refuses (answered with HTTP 400)."""


class SimClock:
    """Seed, catalogue epoch, book tick and the one lifecycle RNG all venues draw from.

    ``life_rng`` is shared on purpose: churn and the control API draw from it venue after venue,
    and that order is part of what a seed reproduces."""

    def __init__(self, seed: int, epoch: float | None, tick_s: float, change_prob: float,
                 t0: float | None, change_mix: ChangeMix | None = None, tape_per_book: int = DEFAULT_PER_BOOK,
                 tape_budget: int = DEFAULT_BUDGET) -> None:
        self.seed = seed
        self.tapes = TapeBudget(seed, tape_per_book, tape_budget)
        self.epoch = float(epoch) if epoch is not None else time.time()
        self.t0_ms = int((t0 if t0 is not None else time.time()) * 1000)
        self.tick_ms = max(1, int(tick_s * 1000))
        self.change_prob = change_prob
        self.change_mix = change_mix
        self.life_rng = random.Random(f"{seed}:life")

    def pick(self, pool: list[Any], spec: dict[str, Any]) -> list[Any]:
        """``spec["count"]`` (default 1) random members of ``pool``, or all of it."""
        count = int(spec.get("count", 1))
        if count >= len(pool):
            return pool
        return self.life_rng.sample(pool, count)

    def change_prob_of(self, key: str) -> float:
        """The change probability per tick of the book ``key``. A mix draws the class from an
        RNG of the book's own (seed and key), not from the book's walk RNG, so the walk makes the
        same moves with or without a mix, and without one nothing is drawn at all."""
        if self.change_mix is None:
            return self.change_prob
        u = random.Random(f"{self.seed}:mix:{key}").random()
        acc = 0.0
        for share, prob in self.change_mix:
            acc += share
            if u < acc:
                return prob
        return self.change_mix[-1][1]  # u just under 1 with shares that round below it


def _geom(rng: random.Random, p: float) -> int:
    """Ticks until the next change, >= 1."""
    if p >= 1.0:
        return 1
    if p <= 0.0:
        return 1 << 40
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


# Called after each change of a watched book: (book, the trade or None, bids and asks before
# the change as the walk's [price ticks, size cents] levels). It must not block: it runs
# inside ``advance``.
Listener = Callable[["LazyBook", "tuple[int, int, bool] | None", "list[list[int]]", "list[list[int]]"], None]


class LazyBook:
    """A walk plus its change schedule. Venue subclasses render the wire bytes (and cache
    them until ``dirty``: a book is rebuilt only after it changed)."""

    __slots__ = ("rng", "walk", "ts_ms", "next_ms", "tick_ms", "p", "dirty", "frozen", "listener", "tape")

    def __init__(self, clock: SimClock, key: str, n: int) -> None:
        rng = random.Random(f"{clock.seed}:book:{key}")
        self.rng = rng
        self.walk = Walk(rng, n)
        self.tick_ms = clock.tick_ms
        self.p = clock.change_prob_of(key)
        phase = rng.randrange(max(1, clock.tick_ms))
        self.ts_ms = clock.t0_ms - rng.randint(1_000, 900_000)
        self.next_ms = clock.t0_ms + phase + clock.tick_ms * _geom(rng, self.p)
        self.dirty = True
        self.frozen = False
        self.listener: Listener | None = None
        self.tape = Tape(key, clock.tapes)  # every trade of the walk (collector.sim.tape)

    def advance(self, now: int) -> None:
        if now < self.next_ms:
            return
        if self.listener is not None:
            self._advance_reporting(now)
            return
        rng, walk, p, tick = self.rng, self.walk, self.p, self.tick_ms
        nxt = self.next_ms
        while nxt <= now:
            bids, asks = [lv[:] for lv in walk.bids], [lv[:] for lv in walk.asks]
            n = walk.n
            trade = walk.mutate(rng)
            # A draw can leave the book as it was (a level added where one is): the venue's
            # timestamp moves only with a change, so this one does not count.
            if walk.bids != bids or walk.asks != asks:
                self.ts_ms = nxt
                self.dirty = True
                if trade is not None:
                    self.tape.add(nxt, trade[0], n, trade[1], trade[2])
            nxt += tick * _geom(rng, p)
        self.next_ms = nxt

    def _advance_reporting(self, now: int) -> None:
        """``advance`` one change at a time, the book's state (ts_ms, next_ms) already moved
        on when the listener sees it; the same draws in the same order as the fast path."""
        rng, walk, p, tick = self.rng, self.walk, self.p, self.tick_ms
        while self.next_ms <= now:
            bids, asks = [lv[:] for lv in walk.bids], [lv[:] for lv in walk.asks]
            n = walk.n
            trade = walk.mutate(rng)
            due = self.next_ms
            self.next_ms += tick * _geom(rng, p)
            if walk.bids == bids and walk.asks == asks:
                continue  # nothing changed (see advance)
            self.ts_ms = due
            self.dirty = True
            if trade is not None:  # on the tape before the listener reports it
                self.tape.add(due, trade[0], n, trade[1], trade[2])
            listener = self.listener
            if listener is not None:
                listener(self, trade, bids, asks)

    def freeze(self, now: int) -> None:
        self.advance(now)
        self.next_ms = INF_MS
        self.frozen = True
