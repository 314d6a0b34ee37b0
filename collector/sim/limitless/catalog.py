"""The Limitless catalogue the simulator starts with and opens later: recurring crypto
markets (shapes from ``collector.sim.limitless.shapes``), single CLOB questions, AMM markets
and neg-risk groups, each drawn from one seeded RNG."""

from __future__ import annotations

import hashlib
import math
import random

from collector.sim.limitless import shapes
from collector.sim.limitless.market import LimMarket
from collector.sim.names import (
    FED_OPTIONS,
    PEOPLE,
    TEAMS,
    fill,
    hex32,
    slugify,
    token_id,
)

LIM_CRYPTO = (("btc", "BTC", 104_000), ("eth", "ETH", 3_600), ("sol", "SOL", 180))
LIM_NAMES = {"btc": "Bitcoin", "eth": "Ethereum", "sol": "Solana"}
LIM_OTHER = [
    ("Will {country} win the {year} World Cup?", "Sports", ["Football"]),
    ("Will the Fed cut rates in {month}?", "Economy", ["Macro"]),
    ("Will {company} release a new product by {month} 30?", "Tech", ["Companies"]),
    ("Will {person} win the {year} election?", "Politics", ["Elections"]),
    ("Will gold close above ${n}0 on {month} 28?", "Commodities", ["Daily"]),
]
LIM_GROUPS = [
    ("Fed decision in {month} {year}", FED_OPTIONS, "Economy"),
    ("{league} Champion {year}", None, "Sports"),
    ("Who will win the {year} {country} election?", "PEOPLE", "Politics"),
]


class LimFactory:
    """Makes markets around ``epoch`` (moved to "now" while opening one later); ids only grow."""

    def __init__(self, seed: int, epoch: float) -> None:
        self.seed = seed
        self.epoch = epoch
        self.next_id = 0

    def _new_id(self, rng: random.Random) -> int:
        self.next_id += rng.randint(1, 9)
        return self.next_id

    def build(self, n: int) -> list[LimMarket]:
        """The start-up catalogue of ``n`` items (groups count once), in list order."""
        rng = random.Random(f"{self.seed}:lim:catalog")
        self.next_id = 30_000 + rng.randint(0, 9_999)
        out: list[LimMarket] = []
        n_crypto = max(2, round(n * 0.3))
        for i in range(min(n, n_crypto)):
            asset = LIM_CRYPTO[i % len(LIM_CRYPTO)] if i >= 2 else LIM_CRYPTO[i]
            # Both real families; an ETH AMM "above" market as in the capture.
            family = "up_or_down" if i % 4 == 3 else "above"
            out.append(self.make_crypto(rng, asset, amm=(i == 4), family=family))
        for _ in range(n - min(n, n_crypto)):
            u = rng.random()
            if u < 0.22:
                m = self.make_amm(rng)
            elif u < 0.42:
                m = self.make_group(rng)
            else:
                m = self.make_single(rng)
            out.append(m)
        return out

    def _base(self, rng: random.Random, kind: str, title: str, slug_base: str, exp_ms: int,
                  categories: list[str], tags: list[str]) -> LimMarket:
        m = LimMarket()
        m.id = self._new_id(rng)
        m.kind = kind
        m.title = title
        m.created_ms = int(self.epoch * 1000) - rng.randint(60_000, 30 * 86_400_000)
        m.slug = f"{slug_base}-{m.created_ms}"
        m.exp_ms = exp_ms
        m.id_str = rng.random() < 0.1
        m.exp_str = rng.random() < 0.3
        m.dec_str = rng.random() < 0.25
        r = rng.random()
        m.status = "FUNDED" if r < 0.85 else ("FUNDED_FLAGGED" if r < 0.9 else "LOCKED")
        m.expired = rng.random() < 0.03
        m.categories = categories
        m.tags = tags
        m.condition_id = hex32(self.seed, f"lcond:{m.slug}")
        m.volume = int(rng.lognormvariate(20.5, 2.0))
        yes = round(rng.uniform(0.05, 0.95), 3)
        if kind == "amm":
            m.prices = [round(yes * 100, 1), round(100 - yes * 100, 1)]
            m.address = "0x" + hashlib.sha1(m.slug.encode()).hexdigest()
            m.liquidity = int(rng.lognormvariate(17.5, 1.0))
        else:
            m.prices = [yes, round(1 - yes, 3)]
            m.tokens = {"yes": token_id(self.seed, f"lim:{m.slug}:yes"), "no": token_id(self.seed, f"lim:{m.slug}:no")}
        m.max_spread = rng.choice((0.035, 0.05, 0.025))
        m.min_size = rng.choice((100_000_000, 50_000_000, 10_000_000))
        return m

    def make_crypto(self, rng: random.Random, asset: tuple[str, str, float], amm: bool = False,
                         hours: float | None = None, family: str = "above") -> LimMarket:
        sym, ticker, px = asset
        m = self._base(rng, "amm" if amm else "clob", "", sym, 0, [], [])
        if family == "up_or_down":
            start = math.floor(self.epoch / shapes.UP_OR_DOWN_S) * shapes.UP_OR_DOWN_S
            shape = shapes.up_or_down(rng, ticker, LIM_NAMES[sym], px, start,
                                    min_size=m.min_size, max_spread=m.max_spread)
            m.created_ms = int(start * 1000) - rng.randint(1_000, 120_000)
        else:
            family = "above"
            daily = rng.random() >= 0.6 if hours is None else hours > 1
            if hours is None:
                step = 86400 if daily else 3600
                exp = (math.floor(self.epoch / step) + 1) * step
            else:
                exp = self.epoch + hours * 3600
            shape = shapes.above(rng, ticker, px, exp, amm=amm, daily=daily,
                               min_size=m.min_size, max_spread=m.max_spread)
        m.title = shape.title
        m.slug = f"{shape.slug_base}-{m.created_ms}"
        m.exp_ms = shape.exp_ms
        m.categories, m.tags = shape.categories, shape.tags
        m.extra, m.settings = shape.extra, shape.settings
        m.asset, m.family = sym, family
        m.recurring = True
        if amm:
            m.status = "FUNDED"
        return m

    def make_single(self, rng: random.Random) -> LimMarket:
        tpl, cat, tags = rng.choice(LIM_OTHER)
        league, teams = rng.choice(TEAMS)
        title = fill(rng, self.epoch, tpl, league=league)
        exp = self.epoch + rng.uniform(6, 90 * 24) * 3600
        return self._base(rng, "clob", title, slugify(title)[:60], int(exp // 60 * 60_000), [cat], list(tags))

    def make_amm(self, rng: random.Random) -> LimMarket:
        sym = rng.choice(("doge", "pepe", "link", "avax"))
        px = rng.uniform(0.05, 30)
        exp = math.floor((self.epoch + rng.uniform(2, 240) * 3600) / 3600) * 3600
        m = self._base(rng, "amm", "", sym, 0, [], [])
        shape = shapes.above(rng, sym.upper(), px, exp, amm=True, daily=True, min_size=m.min_size,
                           max_spread=m.max_spread)
        m.title, m.slug, m.exp_ms = shape.title, f"{shape.slug_base}-{m.created_ms}", shape.exp_ms
        m.categories, m.tags, m.extra = shape.categories, shape.tags, shape.extra
        m.status = "FUNDED"
        return m

    def make_group(self, rng: random.Random, k: int | None = None) -> LimMarket:
        tpl, opts, cat = rng.choice(LIM_GROUPS)
        league, teams = rng.choice(TEAMS)
        title = fill(rng, self.epoch, tpl, league=league)
        k = k or rng.randint(2, 4)
        if opts is None:
            names = rng.sample(teams, k)
        elif opts == "PEOPLE":
            names = rng.sample(PEOPLE, k)
        else:
            names = opts[:k]
        exp = int((self.epoch + rng.uniform(24, 120 * 24) * 3600) // 3600 * 3_600_000)
        g = LimMarket()
        g.id = self._new_id(rng)
        g.kind = "group"
        g.title = title
        g.slug = slugify(title)[:60] + f"-{g.id}"
        g.created_ms = int(self.epoch * 1000) - rng.randint(60_000, 30 * 86_400_000)
        g.exp_ms = exp
        g.exp_str = rng.random() < 0.3
        g.dec_str = rng.random() < 0.25
        g.categories = [cat]
        g.tags = ["NegRisk"]
        g.neg_risk_market_id = hex32(self.seed, f"lnrm:{g.slug}")
        g.prices = []
        g.volume = 0
        for i, name in enumerate(names):
            c = self._base(rng, "clob", name, slugify(f"{name} {title}")[:60], exp, [cat], ["NegRisk"])
            c.status = "FUNDED"
            c.expired = False
            c.parent = g
            c.order_in_group = i
            g.children.append(c)
        return g
