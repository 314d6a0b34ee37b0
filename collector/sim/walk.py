"""The random walk of one order book's levels, in integer ticks (venue-neutral).

``collector.sim.clock.LazyBook`` decides when a book changes; ``Walk.mutate`` decides how:
resize levels, trade at the touch, add or remove a level, or shift the whole book.
``Walk.rescale`` moves the levels onto another price grid (a tick size change).
"""

from __future__ import annotations

import random


def _rand_size(rng: random.Random) -> int:
    """A level size in 1/100 shares (>= 5 shares)."""
    cents = int(rng.lognormvariate(9.9, 1.3))
    if rng.random() < 0.5:
        cents = (cents // 100) * 100
    return max(500, min(cents, 500_000_000))


class Walk:
    """Levels in integer ticks; ``n`` ticks make 1.0. bids best-first (descending), asks best-first."""

    # last: the last trade price, in ticks of a grid of last_n (the grid it traded on: a later
    # tick change does not move a past trade's price).
    __slots__ = ("n", "bids", "asks", "last", "last_n", "gmax", "lo", "hi")

    def __init__(self, rng: random.Random, n: int) -> None:
        self.n = n
        self.gmax = 3 if n <= 100 else 8
        self.lo = max(6, n // 20)
        self.hi = n - self.lo
        mid = rng.randint(int(n * 0.12), int(n * 0.88))
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self._build(rng, mid)
        self.last: int | None = None if rng.random() < 0.06 else rng.choice((self.bids[0][0], self.asks[0][0]))
        self.last_n = n

    def _gap(self, rng: random.Random) -> int:
        return 1 + int(rng.random() ** 2 * self.gmax)

    def _build(self, rng: random.Random, mid: int) -> None:
        n = self.n
        spread = max(1, min(int(rng.expovariate(1.0 / max(0.8, n * 0.006))), n // 20))
        bb = max(1, mid - spread // 2)
        ba = min(n - 1, max(bb + 1, bb + spread))
        self.bids = [[bb, _rand_size(rng)]]
        self.asks = [[ba, _rand_size(rng)]]
        self._fill(rng, self.bids, -1, rng.randint(5, 30))
        self._fill(rng, self.asks, +1, rng.randint(5, 30))

    def _fill(self, rng: random.Random, side: list[list[int]], d: int, target: int) -> None:
        n = self.n
        while len(side) < target:
            p = side[-1][0] + d * self._gap(rng)
            if not 0 < p < n:
                p = side[-1][0] + d
                if not 0 < p < n:
                    break
            side.append([p, _rand_size(rng)])

    def mutate(self, rng: random.Random) -> tuple[int, int, bool] | None:
        """One change; for a trade, (price ticks, size taken in cents, at the bid) so the tape and
        the feeds can report it, else None. The size is what the hit level lost (all of it when
        the level went), so REST books before and after a trade differ by exactly the trade. The
        return value draws nothing: the path stays the seed's."""
        trade = None
        r = rng.random()
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        if r < 0.4:  # resize a few levels, mostly near the touch
            for _ in range(rng.randint(1, 3)):
                i = min(len(side) - 1, int(rng.expovariate(0.3)))
                side[i][1] = _rand_size(rng)
        elif r < 0.6:  # a trade takes liquidity at the touch
            lvl = side[0]
            self.last, self.last_n = lvl[0], self.n
            take = rng.randint(1, lvl[1])
            if take >= lvl[1] - 100 or rng.random() < 0.3:
                del side[0]
                take = lvl[1]  # the whole level went: that is what traded (the level lost it all)
            else:
                lvl[1] -= take
            trade = (lvl[0], take, is_bid)
        elif r < 0.8:  # a level appears or disappears
            if rng.random() < 0.5 and len(side) > 5:
                del side[rng.randrange(len(side))]
            elif rng.random() < 0.4:  # improve the touch when the spread allows it
                if is_bid:
                    p = self.bids[0][0] + 1
                else:
                    p = self.asks[0][0] - 1
                side.insert(0, [p, _rand_size(rng)])
            else:
                d = -1 if is_bid else 1
                p = side[rng.randrange(len(side))][0] + d * self._gap(rng)
                side.append([p, _rand_size(rng)])
        else:  # the whole book moves
            delta = rng.choice((-2, -1, 1, 2)) * (1 if self.n <= 100 else rng.randint(1, 4))
            if self.bids[0][0] + delta < self.lo or self.asks[0][0] + delta > self.hi:
                delta = -delta
            for lvl in self.bids:
                lvl[0] += delta
            for lvl in self.asks:
                lvl[0] += delta
        self._fix(rng)
        return trade

    def rescale(self, n: int) -> None:
        """Move the book onto a grid of ``n`` ticks per 1.0 (a power-of-ten multiple or divisor
        of the current one). On a coarser grid bids round down and asks up, so no level crosses;
        levels that land on one price add up, and a level pushed to 0 or 1 lands on the edge.
        No draw from the RNG: a tick change must not shift the walk that follows. ValueError
        (book unchanged) when a side would be left empty."""
        old = self.n
        if n == old:
            return

        def move(levels: list[list[int]], down: bool) -> list[list[int]]:
            out: dict[int, int] = {}
            for p, s in levels:
                q = p * n // old if (n > old or down) else -(-p * n // old)
                q = min(max(q, 1), n - 1)
                out[q] = out.get(q, 0) + s
            return [[q, out[q]] for q in sorted(out, reverse=down)]

        b, a = move(self.bids, True), move(self.asks, False)
        while b and a and b[0][0] >= a[0][0]:  # only levels clamped onto one edge can meet
            if len(b) >= len(a):
                del b[0]
            else:
                del a[0]
        if not b or not a:
            raise ValueError("the book has no room on that grid")
        self.bids, self.asks = b, a
        self.n = n
        self.gmax = 3 if n <= 100 else 8
        self.lo = max(6, n // 20)
        self.hi = n - self.lo

    def _fix(self, rng: random.Random) -> None:
        n = self.n
        bids = {p: s for p, s in reversed(self.bids) if 0 < p < n}
        asks = {p: s for p, s in reversed(self.asks) if 0 < p < n}
        b = [[p, bids[p]] for p in sorted(bids, reverse=True)]
        a = [[p, asks[p]] for p in sorted(asks)]
        while b and a and b[0][0] >= a[0][0]:
            if len(b) >= len(a):
                del b[0]
            else:
                del a[0]
        del b[30:]
        del a[30:]
        if b and a:
            self._fill(rng, b, -1, 5)
            self._fill(rng, a, +1, 5)
        if len(b) < 5 or len(a) < 5 or b[0][0] < 1 or a[0][0] >= n:
            mid = (b[0][0] if b else n // 2) + (a[0][0] if a else n // 2)
            mid = min(max(mid // 2, int(n * 0.12)), int(n * 0.88))
            self._build(rng, mid)
            return
        self.bids, self.asks = b, a

    def mid_ticks(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2.0
