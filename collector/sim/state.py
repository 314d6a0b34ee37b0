"""Simulated markets and order books for both venues.

Everything random is drawn from ``random.Random`` instances seeded from ``--seed`` plus a
stable key, so the same seed gives the same catalogue and the same book paths.

Books follow a random walk that is advanced lazily: each book changes at tick boundaries
(``tick_s``, plus a per-book phase) with probability ``change_prob`` per tick. The number of
ticks to the next change is drawn from a geometric distribution, so a request only pays for
the changes that happened since the book was last looked at. The wire bytes of every book
are cached and rebuilt only after the book changed.
"""

from __future__ import annotations

import base64
import bisect
import datetime as _dt
import hashlib
import json
import math
import random
import re
import time
import zlib
from typing import Any

import orjson

from collector.model.clock import now_ms
from collector.sim import limitless_catalog as lcat

INF_MS = 1 << 62
GAMMA_SCHEMA = "https://gamma-api.polymarket.com/schemas/MarketsKeysetPage.json"
USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


# ---------------------------------------------------------------------------------------
# small helpers


def _iso(ts: float, ms: bool = False) -> str:
    d = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    if ms:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d")


def _slugify(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _token_id(seed: int, key: str) -> str:
    h = int.from_bytes(hashlib.sha256(f"{seed}:tok:{key}".encode()).digest(), "big")
    return str(h % (9 * 10**76) + 10**76)  # 77 decimal digits, like real uint256 ids


def _hex32(seed: int, key: str) -> str:
    return "0x" + hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def _geom(rng: random.Random, p: float) -> int:
    """Ticks until the next change, >= 1."""
    if p >= 1.0:
        return 1
    if p <= 0.0:
        return 1 << 40
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


_PRICE_STR: dict[int, list[str]] = {}


def _price_strs(n: int) -> list[str]:
    t = _PRICE_STR.get(n)
    if t is None:
        dec = len(str(n)) - 1
        t = []
        for p in range(n + 1):
            s = f"{p / n:.{dec}f}"
            if "." in s:
                s = s.rstrip("0").rstrip(".")
            t.append(s)
        _PRICE_STR[n] = t
    return t


def _size_str(cents: int) -> str:
    q, r = divmod(cents, 100)
    if r == 0:
        return str(q)
    return f"{q}.{r:02d}".rstrip("0")


def _rand_size(rng: random.Random) -> int:
    """A level size in 1/100 shares (>= 5 shares)."""
    cents = int(rng.lognormvariate(9.9, 1.3))
    if rng.random() < 0.5:
        cents = (cents // 100) * 100
    return max(500, min(cents, 500_000_000))


# ---------------------------------------------------------------------------------------
# the random walk of one book


class Walk:
    """Levels in integer ticks; ``n`` ticks make 1.0. bids best-first (descending), asks best-first."""

    __slots__ = ("n", "bids", "asks", "last", "gmax", "lo", "hi")

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

    def mutate(self, rng: random.Random) -> None:
        r = rng.random()
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        if r < 0.4:  # resize a few levels, mostly near the touch
            for _ in range(rng.randint(1, 3)):
                i = min(len(side) - 1, int(rng.expovariate(0.3)))
                side[i][1] = _rand_size(rng)
        elif r < 0.6:  # a trade takes liquidity at the touch
            lvl = side[0]
            self.last = lvl[0]
            take = rng.randint(1, lvl[1])
            if take >= lvl[1] - 100 or rng.random() < 0.3:
                del side[0]
            else:
                lvl[1] -= take
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


class _Book:
    """Lazy walk + change schedule. Subclasses render the wire bytes."""

    __slots__ = ("rng", "walk", "ts_ms", "next_ms", "tick_ms", "p", "dirty", "frozen")

    def __init__(self, sim: SimState, key: str, n: int) -> None:
        rng = random.Random(f"{sim.seed}:book:{key}")
        self.rng = rng
        self.walk = Walk(rng, n)
        self.tick_ms = sim.tick_ms
        self.p = sim.change_prob
        phase = rng.randrange(max(1, sim.tick_ms))
        self.ts_ms = sim.t0_ms - rng.randint(1_000, 900_000)
        self.next_ms = sim.t0_ms + phase + sim.tick_ms * _geom(rng, self.p)
        self.dirty = True
        self.frozen = False

    def advance(self, now: int) -> None:
        if now < self.next_ms:
            return
        rng, walk, p, tick = self.rng, self.walk, self.p, self.tick_ms
        nxt = self.next_ms
        while nxt <= now:
            walk.mutate(rng)
            self.ts_ms = nxt
            nxt += tick * _geom(rng, p)
        self.next_ms = nxt
        self.dirty = True

    def freeze(self, now: int) -> None:
        self.advance(now)
        self.next_ms = INF_MS
        self.frozen = True


class PolyBooks(_Book):
    """The YES book of a market plus its mirror image for the NO token (they change together)."""

    __slots__ = ("market", "cache")

    def __init__(self, sim: SimState, market: PolyMarket) -> None:
        super().__init__(sim, f"poly:{market.id}", market.tick_n)
        self.market = market
        self.cache: list[bytes] = [b"", b""]

    def get(self, side: int, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            self._render()
        return self.cache[side]

    def _render(self) -> None:
        m, w = self.market, self.walk
        n = w.n
        ps = _price_strs(n)
        yes_bids = [{"price": ps[p], "size": _size_str(s)} for p, s in reversed(w.bids)]
        yes_asks = [{"price": ps[p], "size": _size_str(s)} for p, s in reversed(w.asks)]
        no_bids = [{"price": ps[n - p], "size": _size_str(s)} for p, s in reversed(w.asks)]
        no_asks = [{"price": ps[n - p], "size": _size_str(s)} for p, s in reversed(w.bids)]
        last = w.last
        ts = str(self.ts_ms)
        for side, (bids, asks, ltp) in enumerate(
            (
                (yes_bids, yes_asks, "" if last is None else ps[last]),
                (no_bids, no_asks, "" if last is None else ps[n - last]),
            )
        ):
            d = {
                "market": m.condition_id,
                "asset_id": m.tokens[side],
                "timestamp": ts,
                "hash": "",
                "bids": bids,
                "asks": asks,
                "min_order_size": m.min_size_s,
                "tick_size": m.tick_s,
                "neg_risk": m.neg_risk,
                "last_trade_price": ltp,
            }
            self.cache[side] = poly_book_bytes(d)
        self.dirty = False


def poly_book_bytes(d: dict[str, Any]) -> bytes:
    """A Polymarket book body as the venue serves it: compact JSON in ``d``'s key order whose
    ``hash`` is the SHA-1 of these very bytes with ``hash`` = "" (``d["hash"]`` must be "")."""
    blank = orjson.dumps(d)
    h = hashlib.sha1(blank).hexdigest().encode()
    # The first '"hash":""' is the key itself: every value before it is hex or digits.
    return blank.replace(b'"hash":""', b'"hash":"' + h + b'"', 1)


class LimBook(_Book):
    __slots__ = ("market", "cache")

    def __init__(self, sim: SimState, market: LimMarket) -> None:
        super().__init__(sim, f"lim:{market.slug}", 1000)
        self.market = market
        self.cache = b""

    def get(self, now: int) -> bytes:
        if now >= self.next_ms:
            self.advance(now)
        if self.dirty:
            self._render()
        return self.cache

    def _render(self) -> None:
        m, w = self.market, self.walk
        mid = round(w.mid_ticks() / 1000.0, 4)
        last = w.last if w.last is not None else w.bids[0][0]
        d = {
            "bids": [{"price": p / 1000.0, "size": s * 10_000, "side": "BUY"} for p, s in w.bids],
            "asks": [{"price": p / 1000.0, "size": s * 10_000, "side": "SELL"} for p, s in w.asks],
            "tokenId": m.tokens["yes"],
            "adjustedMidpoint": mid,
            "midpoint": mid,
            "maxSpread": m.max_spread,
            "minSize": m.min_size,
            "lastTradePrice": last / 1000.0,
        }
        self.cache = orjson.dumps(d)
        self.dirty = False


# ---------------------------------------------------------------------------------------
# Polymarket catalogue

CRYPTO = (
    ("btc", "Bitcoin", 104_000),
    ("eth", "Ethereum", 3_600),
    ("sol", "Solana", 180),
    ("xrp", "XRP", 2.4),
)
RECURRENCES = (("15m", 900, 4), ("hourly", 3600, 3), ("daily", 86400, 1))

PEOPLE = ["Alex Rivera", "Jordan Blake", "Sam Okafor", "Taylor Nguyen", "Morgan Ruiz", "Casey Lind",
          "Riley Chen", "Jamie Park", "Avery Stone", "Quinn Adler", "Drew Patel", "Robin Moss"]
TEAMS = [("NBA", ["Lakers", "Celtics", "Knicks", "Bulls", "Heat", "Suns", "Nuggets", "Warriors"]),
         ("NFL", ["Chiefs", "Eagles", "Bills", "Lions", "Ravens", "49ers", "Cowboys", "Packers"]),
         ("MLB", ["Nationals", "Mets", "Yankees", "Dodgers", "Cubs", "Astros", "Braves", "Padres"]),
         ("EPL", ["Arsenal", "Chelsea", "Liverpool", "Everton", "Spurs", "Brighton", "Fulham", "Villa"])]
COUNTRIES = ["France", "Brazil", "Japan", "Canada", "Kenya", "Chile", "Poland", "India"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
YESNO = [
    ("Will the Fed cut rates at the {month} {year} meeting?", "economy", "Economy"),
    ("Will {person} be the nominee for governor in {year}?", "politics", "Politics"),
    ("Will {country} hold a snap election before {month} {year}?", "politics", "Politics"),
    ("Will US CPI exceed {pct}% in {month} {year}?", "economy", "Economy"),
    ("Will {company} announce layoffs before {month} {year}?", "business", "Business"),
    ("Will {company} stock close above ${n} on {month} 30?", "business", "Business"),
    ("Will {person} post more than {n} tweets this week?", "culture", "Culture"),
    ("Will a {country} film win Best Picture in {year}?", "culture", "Culture"),
    ("Will Bitcoin reach ${k}k before {month} {year}?", "crypto", "Crypto"),
    ("Will Ethereum flip ${k}00 by {month} 1?", "crypto", "Crypto"),
]
NEGRISK = [
    ("Who will win the {year} {country} presidential election?", "Will {x} win the {year} {country} presidential election?", "politics", "Politics"),
    ("{league} Champion {year}", "Will the {x} win the {year} {league} championship?", "sports", "Sports"),
    ("Fed decision in {month}?", "Will the Fed {x} in {month}?", "economy", "Economy"),
]
FED_OPTIONS = ["cut 50+ bps", "cut 25 bps", "hold rates", "hike 25+ bps"]


class PolyMarket:
    __slots__ = (
        "id", "question", "slug", "condition_id", "question_id", "tokens", "clob_field", "outcomes",
        "outcome_prices", "start_ts", "end_ts", "tick_n", "tick_s", "tick_f", "min_size_s", "neg_risk",
        "neg_risk_market_id", "volume", "volume24hr", "liquidity", "event", "closed", "closed_ts",
        "accepting", "enable_ob", "has_book", "kind", "group_item_title", "fresh", "book", "_bytes",
        "expired", "series", "asset",
    )

    def __init__(self) -> None:
        self.book: PolyBooks | None = None
        self._bytes: bytes | None = None
        self.closed = False
        self.closed_ts: float | None = None
        self.accepting = True
        self.enable_ob = True
        self.has_book = True
        self.fresh = False
        self.neg_risk = False
        self.neg_risk_market_id = ""
        self.group_item_title = ""
        self.expired = False
        self.series: dict | None = None
        self.asset = ""

    @property
    def live(self) -> bool:
        """Has a book that /book and /books serve."""
        return (not self.closed) and self.enable_ob and self.has_book and bool(self.tokens)

    def touch(self) -> None:
        self._bytes = None

    def gamma_bytes(self) -> bytes:
        b = self._bytes
        if b is None:
            b = self._bytes = orjson.dumps(self.gamma_dict())
        return b

    def gamma_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": str(self.id),
            "question": self.question,
            "conditionId": self.condition_id,
            "slug": self.slug,
            "resolutionSource": "",
            "endDate": _iso(self.end_ts),
            "startDate": _iso(self.start_ts, ms=True),
            "description": f"This market resolves according to the rules for: {self.question}",
            "outcomes": json.dumps(self.outcomes),
            "outcomePrices": json.dumps(self.outcome_prices),
            "active": True,
            "closed": self.closed,
            "archived": False,
            "new": self.fresh,
            "featured": False,
            "restricted": True,
            "questionID": self.question_id,
            "enableOrderBook": self.enable_ob,
            "orderPriceMinTickSize": self.tick_f,
            "orderMinSize": int(self.min_size_s),
            "endDateIso": _date(self.end_ts),
            "startDateIso": _date(self.start_ts),
            "createdAt": _iso(self.start_ts - 600, ms=True),
            "updatedAt": _iso(max(self.start_ts, (self.closed_ts or self.start_ts)), ms=True),
            "clobTokenIds": self.clob_field,
            "umaResolutionStatuses": "[]",
            "acceptingOrders": self.accepting,
            "negRisk": self.neg_risk,
            "events": [self.event],
        }
        if self.group_item_title:
            d["groupItemTitle"] = self.group_item_title
        if self.neg_risk:
            d["negRiskMarketID"] = self.neg_risk_market_id
            d["negRiskOther"] = False
        if self.accepting:
            d["acceptingOrdersTimestamp"] = _iso(self.start_ts + 120)
        if self.closed and self.closed_ts is not None:
            d["closedTime"] = _dt.datetime.fromtimestamp(self.closed_ts, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
        if not self.fresh:  # numeric snapshot fields are absent on fresh markets
            d["volume"] = f"{self.volume:.6f}"
            d["volumeNum"] = self.volume
            d["volume24hr"] = self.volume24hr
            d["volume1wk"] = round(self.volume24hr * 5.3, 4)
            d["liquidity"] = f"{self.liquidity:.5f}"
            d["liquidityNum"] = self.liquidity
            yes = float(self.outcome_prices[0]) if self.outcome_prices else 0.5
            bb = max(0.0, round(yes - self.tick_f, 4))
            ba = min(1.0, round(yes + self.tick_f, 4))
            d["bestBid"] = bb
            d["bestAsk"] = ba
            d["spread"] = round(ba - bb, 4)
            d["lastTradePrice"] = yes
            d["feesEnabled"] = self.kind == "crypto"
            # Fee fields as on real Gamma markets (gamma_market_objects_nautilus.json).
            d["feeType"] = "crypto_fees" if self.kind == "crypto" else None
            if self.kind == "crypto":
                d["makerBaseFee"] = d["takerBaseFee"] = 1000
                d["feeSchedule"] = {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2}
        if self.closed:
            d["umaResolutionStatus"] = "resolved"
        return d

    def info(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "event_slug": self.event["slug"],
            "kind": self.kind,
            "condition_id": self.condition_id,
            "tokens": list(self.tokens),
            "outcomes": list(self.outcomes),
            "closed": self.closed,
            "expired": self.expired,
            "accepting_orders": self.accepting,
            "enable_order_book": self.enable_ob,
            "hydrating": not self.tokens,
            "has_book": self.live,
            "end_ts": self.end_ts,
            "tick_size": self.tick_s,
            "neg_risk": self.neg_risk,
            "volume24hr": self.volume24hr,
        }


# ---------------------------------------------------------------------------------------
# Limitless catalogue

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


class LimMarket:
    __slots__ = (
        "id", "id_str", "slug", "title", "kind", "children", "parent", "tokens", "status", "expired",
        "exp_ms", "exp_str", "dec_str", "prices", "volume", "created_ms", "condition_id", "categories",
        "tags", "active", "book", "max_spread", "min_size", "address", "order_in_group", "liquidity",
        "neg_risk_market_id", "recurring", "asset", "family", "extra", "settings",
    )

    def __init__(self) -> None:
        self.children: list[LimMarket] = []
        self.parent: LimMarket | None = None
        self.tokens: dict[str, str] | None = None
        self.status = "FUNDED"
        self.expired = False
        self.active = True
        self.book: LimBook | None = None
        self.id_str = False
        self.exp_str = False
        self.dec_str = False
        self.address = None
        self.order_in_group = 0
        self.liquidity = 0
        self.neg_risk_market_id = None
        self.recurring = False
        self.asset = ""
        self.family = ""  # crypto: "above" or "up_or_down" (collector.sim.limitless_catalog)
        self.extra: dict[str, Any] = {}  # real-shaped venue keys (metadata, stableSlug, oracle...)
        self.settings: dict[str, Any] | None = None  # reward settings; None: the generic ones

    @property
    def listed(self) -> bool:
        if not self.active:
            return False
        if self.kind == "group":
            return any(c.active for c in self.children)
        return True

    @property
    def live(self) -> bool:
        if self.kind != "clob" or not self.active:
            return False
        return self.parent is None or self.parent.active

    def _common(self) -> dict[str, Any]:
        dt = _dt.datetime.fromtimestamp(self.exp_ms / 1000, _dt.UTC)
        return {
            "id": str(self.id) if self.id_str else self.id,
            "slug": self.slug,
            "title": self.title,
            "proxyTitle": None,
            "description": f"<p>{self.title}</p>",
            "status": self.status,
            "expired": self.expired,
            "expirationDate": dt.strftime("%b %-d, %Y"),
            "expirationTimestamp": str(self.exp_ms) if self.exp_str else self.exp_ms,
            "createdAt": _iso(self.created_ms / 1000, ms=True),
            "collateralToken": {"address": USDC, "decimals": "6" if self.dec_str else 6, "symbol": "USDC"},
            "categories": list(self.categories),
            "tags": list(self.tags),
        }

    def to_dict(self) -> dict[str, Any]:
        d = self._common()
        if self.kind == "group":
            d["marketType"] = "group"
            d["negRiskMarketId"] = self.neg_risk_market_id
            d["outcomeTokens"] = ["Yes", "No"]
            d["dailyReward"] = "5"
            d["markets"] = [c.to_dict() for c in self.children if c.active]
            return d
        d["tradeType"] = self.kind
        d["marketType"] = "single"
        d["prices"] = list(self.prices)
        d["volume"] = str(self.volume)
        d["volumeFormatted"] = f"{self.volume / 1e6:.6f}"
        d["winningOutcomeIndex"] = (0 if self.status == "RESOLVED" else None)
        if self.kind == "amm":
            d["address"] = self.address
            d["liquidity"] = str(self.liquidity)
            d["liquidityFormatted"] = f"{self.liquidity / 1e6:.6f}"
            d["positionIds"] = [_token_id(0, self.slug + ":y"), _token_id(0, self.slug + ":n")]
            d.update(self.extra)
            return d
        d["address"] = None
        d["conditionId"] = self.condition_id
        d["negRiskRequestId"] = _hex32(0, "nrr:" + self.slug) if self.parent else None
        d["tokens"] = dict(self.tokens or {})
        d["positionIds"] = [self.tokens["yes"], self.tokens["no"]] if self.tokens else []
        yes = self.prices[0]
        d["tradePrices"] = {
            "buy": {"market": [round(min(yes + 0.01, 0.999), 3), round(min(1 - yes + 0.01, 0.999), 3)],
                    "limit": [round(yes, 3), round(1 - yes, 3)]},
            "sell": {"market": [round(max(yes - 0.01, 0.001), 3), round(max(1 - yes - 0.01, 0.001), 3)],
                     "limit": [round(yes, 3), round(1 - yes, 3)]},
        }
        d["venue"] = {"exchange": "0x05c748E2f4DcDe0ec9Fa8DDc40DE6b867f923fa5", "adapter": None}
        d["settings"] = dict(self.settings) if self.settings is not None else {
            "minSize": str(self.min_size), "maxSpread": str(self.max_spread), "dailyReward": "5",
            "rewardsEpoch": "0.0034", "c": "3", "rebateRate": "0"}
        d["metadata"] = {"fee": True}
        d.update(self.extra)
        if self.parent is not None:
            d["orderInGroup"] = self.order_in_group
        return d

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "kind": self.kind,
            "group": self.parent.slug if self.parent else None,
            "children": [c.slug for c in self.children],
            "tokens": dict(self.tokens) if self.tokens else None,
            "status": self.status,
            "expired": self.expired,
            "active": self.active,
            "listed": self.listed if self.parent is None else (self.active and self.parent.listed),
            "has_book": self.live,
            "exp_ms": self.exp_ms,
        }


# ---------------------------------------------------------------------------------------
# the whole simulated world


class SimError(ValueError):
    pass


class SimState:
    def __init__(
        self,
        seed: int = 1,
        markets: int = 50,
        epoch: float | None = None,
        tick_s: float = 1.0,
        change_prob: float = 0.3,
        t0: float | None = None,
    ) -> None:
        self.seed = seed
        self.n_markets = max(1, markets)
        self.epoch = float(epoch) if epoch is not None else time.time()
        self.t0_ms = int((t0 if t0 is not None else time.time()) * 1000)
        self.tick_ms = max(1, int(tick_s * 1000))
        self.change_prob = change_prob
        self.life_rng = random.Random(f"{seed}:life")
        # Polymarket
        self.poly: dict[int, PolyMarket] = {}
        self.poly_ids: list[int] = []
        self.tokens: dict[str, tuple[PolyMarket, int]] = {}
        self.shuffle_key: dict[str, int] = {}
        self._next_poly_id = 0
        self._poly_events: dict[str, dict] = {}
        # Limitless
        self.lim_items: list[LimMarket] = []
        self.lim_slugs: dict[str, LimMarket] = {}
        self._next_lim_id = 0
        self._build_poly()
        self._build_lim()

    # ---------------- Polymarket generation

    def _new_poly_id(self, rng: random.Random) -> int:
        self._next_poly_id += rng.randint(1, 37)
        return self._next_poly_id

    def _register_poly(self, m: PolyMarket) -> None:
        self.poly[m.id] = m
        bisect.insort(self.poly_ids, m.id)
        for i, t in enumerate(m.tokens):
            self.tokens[t] = (m, i)
            self.shuffle_key[t] = int(hashlib.md5(f"{self.seed}:{t}".encode()).hexdigest()[:12], 16)

    def _crypto_slots(self) -> list[tuple[str, str, float, str, int, float, int]]:
        slots = []
        for k in range(4):
            for rec, secs, nslots in RECURRENCES:
                if k >= nslots:
                    continue
                for asset, name, px in CRYPTO:
                    start = math.floor(self.epoch / secs) * secs + k * secs
                    slots.append((asset, name, px, rec, secs, start, k))
        # BTC/ETH first, current slots first
        recs = [r[0] for r in RECURRENCES]
        slots.sort(key=lambda s: (s[6], s[0] not in ("btc", "eth"), recs.index(s[3]), s[0]))
        return slots

    def _build_poly(self) -> None:
        rng = random.Random(f"{self.seed}:poly:catalog")
        self._next_poly_id = 500_000 + rng.randint(0, 99_999)
        n = self.n_markets
        slots = self._crypto_slots()
        n_crypto = min(len(slots), max(2, round(n * 0.3)))
        for s in slots[:n_crypto]:
            self._register_poly(self._make_crypto(rng, *s[:6]))
        made = n_crypto
        while made < n:
            kind = rng.random()
            if kind < 0.15 and n - made >= 3:
                ms = self._make_negrisk(rng, min(n - made, rng.randint(3, 5)))
            elif kind < 0.35:
                ms = [self._make_sports(rng)]
            else:
                ms = [self._make_yesno(rng)]
            for m in ms:
                self._apply_mix(rng, m)
                self._register_poly(m)
            made += len(ms)

    def _fill(self, rng: random.Random, tpl: str, **kw: Any) -> str:
        year = _dt.datetime.fromtimestamp(self.epoch, _dt.UTC).year
        vals = dict(
            month=rng.choice(MONTHS), year=year + rng.randint(0, 1), person=rng.choice(PEOPLE),
            country=rng.choice(COUNTRIES), company=rng.choice(COMPANIES), pct=rng.choice(["2.5", "3", "3.2", "4"]),
            n=rng.randint(10, 900), k=rng.randint(90, 250),
        )
        vals.update(kw)
        return tpl.format(**vals)

    def _base_poly(self, rng: random.Random, kind: str, question: str, slug: str, outcomes: list[str],
                   start_ts: float, end_ts: float, tick_n: int, event: dict, vol24: float) -> PolyMarket:
        m = PolyMarket()
        m.id = self._new_poly_id(rng)
        m.kind = kind
        m.question = question
        m.slug = slug
        m.condition_id = _hex32(self.seed, f"cond:{m.id}")
        m.question_id = _hex32(self.seed, f"qid:{m.id}")
        m.tokens = [_token_id(self.seed, f"{m.id}:{i}") for i in range(2)]
        m.clob_field = json.dumps(m.tokens)
        m.outcomes = outcomes
        yes = round(rng.uniform(0.03, 0.97), 3 if tick_n == 1000 else 2)
        m.outcome_prices = [f"{yes:g}", f"{round(1 - yes, 4):g}"]
        m.start_ts = start_ts
        m.end_ts = end_ts
        m.tick_n = tick_n
        m.tick_s = "0.01" if tick_n == 100 else "0.001"
        m.tick_f = 0.01 if tick_n == 100 else 0.001
        m.min_size_s = "5" if rng.random() < 0.85 else "1"
        m.volume24hr = round(vol24, 4)
        m.volume = round(vol24 * rng.uniform(1.0, 40.0) + rng.uniform(0, 5000), 6)
        m.liquidity = round(rng.lognormvariate(9.0, 1.3), 5)
        m.event = event
        return m

    def _make_crypto(self, rng: random.Random, asset: str, name: str, px: float, rec: str, secs: int,
                     start: float) -> PolyMarket:
        slug = f"{asset}-up-or-down-{rec}-{int(start)}"
        t0 = _dt.datetime.fromtimestamp(start, _dt.UTC)
        t1 = _dt.datetime.fromtimestamp(start + secs, _dt.UTC)
        title = f"{name} Up or Down - {t0:%B} {t0.day}, {t0:%H:%M}-{t1:%H:%M} UTC"
        series_slug = f"{asset}-up-or-down-{rec}"
        event = {
            "id": str(30_000 + self._next_poly_id % 100_000),
            "slug": slug,
            "title": title,
            "seriesSlug": series_slug,
            "series": [{"id": str(10_000 + CRYPTO.index((asset, name, px)) * 10 + [r[0] for r in RECURRENCES].index(rec)),
                        "slug": series_slug, "title": f"{name} Up or Down {rec}", "recurrence": rec}],
            "tags": [{"id": "21", "slug": "crypto", "label": "Crypto"},
                     {"id": str(100 + CRYPTO.index((asset, name, px))), "slug": name.lower(), "label": name},
                     {"id": "102127", "slug": "up-or-down", "label": "Up or Down"},
                     {"id": "102467", "slug": rec, "label": rec.upper() if rec == "15m" else rec.capitalize()}],
        }
        vol = rng.lognormvariate(10.5 if asset in ("btc", "eth") else 9.0, 0.8)
        m = self._base_poly(rng, "crypto", title, slug, ["Up", "Down"], start - 86400, start + secs, 100, event, vol)
        m.series = {"asset": asset, "rec": rec, "secs": secs, "start": start}
        m.asset = asset
        return m

    def _event(self, rng: random.Random, slug: str, title: str, tags: list[tuple[str, str]]) -> dict:
        return {
            "id": str(rng.randint(20_000, 99_999)),
            "slug": slug,
            "title": title,
            "tags": [{"id": str(1000 + zlib.crc32(s.encode()) % 9000), "slug": s, "label": lab} for s, lab in tags],
        }

    def _end(self, rng: random.Random) -> tuple[float, float]:
        start = self.epoch - rng.uniform(3600, 90 * 86400)
        end = self.epoch + rng.choice((rng.uniform(2, 48) * 3600, rng.uniform(2, 60) * 86400, rng.uniform(60, 400) * 86400))
        return start, math.floor(end / 3600) * 3600

    def _vol24(self, rng: random.Random) -> float:
        r = rng.random()
        if r < 0.1:
            return 0.0
        if r < 0.3:
            return rng.uniform(1, 500)
        return rng.lognormvariate(8.5, 1.8)

    def _make_yesno(self, rng: random.Random) -> PolyMarket:
        tpl, tag, label = rng.choice(YESNO)
        q = self._fill(rng, tpl)
        slug = f"{_slugify(q)}-{self._next_poly_id % 997}"
        start, end = self._end(rng)
        ev = self._event(rng, slug, q, [(tag, label)])
        return self._base_poly(rng, "yesno", q, slug, ["Yes", "No"], start, end,
                               rng.choice((100, 100, 1000)), ev, self._vol24(rng))

    def _make_sports(self, rng: random.Random) -> PolyMarket:
        league, teams = rng.choice(TEAMS)
        a, b = rng.sample(teams, 2)
        start, _ = self._end(rng)
        game = self.epoch + rng.uniform(1, 72) * 3600
        d = _dt.datetime.fromtimestamp(game, _dt.UTC)
        slug = f"{league.lower()}-{a.lower()}-{b.lower()}-{d:%Y-%m-%d}-{self._next_poly_id % 97}"
        q = f"{a} vs. {b}"
        ev = self._event(rng, slug, q, [("sports", "Sports"), (league.lower(), league)])
        return self._base_poly(rng, "sports", q, slug, [a, b], start, game + 3 * 3600, 100, ev, self._vol24(rng))

    def _make_negrisk(self, rng: random.Random, k: int) -> list[PolyMarket]:
        etpl, mtpl, tag, label = rng.choice(NEGRISK)
        league, teams = rng.choice(TEAMS)
        month = rng.choice(MONTHS)
        country = rng.choice(COUNTRIES)
        title = self._fill(rng, etpl, league=league, month=month, country=country, year=2027)
        if tag == "politics":
            opts = rng.sample(PEOPLE, k)
        elif tag == "sports":
            opts = rng.sample(teams, k)
        else:
            opts = (FED_OPTIONS * 2)[:k]
        eslug = f"{_slugify(title)}-{self._next_poly_id % 991}"
        ev = self._event(rng, eslug, title, [(tag, label)])
        nrid = _hex32(self.seed, f"nrm:{eslug}")[:64] + "00"
        start, end = self._end(rng)
        out = []
        for x in opts:
            q = self._fill(rng, mtpl, x=x, league=league, month=month, country=country, year=2027)
            m = self._base_poly(rng, "negrisk", q, _slugify(q), ["Yes", "No"], start, end, 1000, ev, self._vol24(rng))
            m.neg_risk = True
            m.neg_risk_market_id = nrid
            m.group_item_title = x
            out.append(m)
        return out

    def _apply_mix(self, rng: random.Random, m: PolyMarket) -> None:
        u = rng.random()
        if u < 0.05:
            m.closed = True
            m.accepting = False
            m.closed_ts = min(m.end_ts, self.epoch - rng.uniform(60, 86400))
            m.outcome_prices = ["1", "0"] if rng.random() < 0.5 else ["0", "1"]
        elif u < 0.09:
            m.accepting = False
        elif u < 0.13:
            m.enable_ob = False
        elif u < 0.17:
            self._hydrating(m, rng.random() < 0.75)
        elif u < 0.19:
            m.has_book = False  # listed and tradable, but the CLOB has no book yet

    @staticmethod
    def _hydrating(m: PolyMarket, empty: bool) -> None:
        m.tokens = []
        m.clob_field = "" if empty else "[]"
        m.fresh = True

    # ---------------- Limitless generation

    def _new_lim_id(self, rng: random.Random) -> int:
        self._next_lim_id += rng.randint(1, 9)
        return self._next_lim_id

    def _register_lim(self, m: LimMarket, front: bool = False) -> None:
        if front:
            self.lim_items.insert(0, m)
        else:
            self.lim_items.append(m)
        self.lim_slugs[m.slug] = m
        for c in m.children:
            self.lim_slugs[c.slug] = c

    def _build_lim(self) -> None:
        rng = random.Random(f"{self.seed}:lim:catalog")
        self._next_lim_id = 30_000 + rng.randint(0, 9_999)
        n = self.n_markets
        n_crypto = max(2, round(n * 0.3))
        for i in range(min(n, n_crypto)):
            asset = LIM_CRYPTO[i % len(LIM_CRYPTO)] if i >= 2 else LIM_CRYPTO[i]
            # Both real families; an ETH AMM "above" market as in the capture.
            family = "up_or_down" if i % 4 == 3 else "above"
            self._register_lim(self._make_lim_crypto(rng, asset, amm=(i == 4), family=family))
        for _ in range(n - min(n, n_crypto)):
            u = rng.random()
            if u < 0.22:
                m = self._make_lim_amm(rng)
            elif u < 0.42:
                m = self._make_lim_group(rng)
            else:
                m = self._make_lim_single(rng)
            self._register_lim(m)

    def _lim_base(self, rng: random.Random, kind: str, title: str, slug_base: str, exp_ms: int,
                  categories: list[str], tags: list[str]) -> LimMarket:
        m = LimMarket()
        m.id = self._new_lim_id(rng)
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
        m.condition_id = _hex32(self.seed, f"lcond:{m.slug}")
        m.volume = int(rng.lognormvariate(20.5, 2.0))
        yes = round(rng.uniform(0.05, 0.95), 3)
        if kind == "amm":
            m.prices = [round(yes * 100, 1), round(100 - yes * 100, 1)]
            m.address = "0x" + hashlib.sha1(m.slug.encode()).hexdigest()
            m.liquidity = int(rng.lognormvariate(17.5, 1.0))
        else:
            m.prices = [yes, round(1 - yes, 3)]
            m.tokens = {"yes": _token_id(self.seed, f"lim:{m.slug}:yes"), "no": _token_id(self.seed, f"lim:{m.slug}:no")}
        m.max_spread = rng.choice((0.035, 0.05, 0.025))
        m.min_size = rng.choice((100_000_000, 50_000_000, 10_000_000))
        return m

    def _make_lim_crypto(self, rng: random.Random, asset: tuple[str, str, float], amm: bool = False,
                         hours: float | None = None, family: str = "above") -> LimMarket:
        sym, ticker, px = asset
        m = self._lim_base(rng, "amm" if amm else "clob", "", sym, 0, [], [])
        if family == "up_or_down":
            start = math.floor(self.epoch / lcat.UP_OR_DOWN_S) * lcat.UP_OR_DOWN_S
            shape = lcat.up_or_down(rng, ticker, LIM_NAMES[sym], px, start,
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
            shape = lcat.above(rng, ticker, px, exp, amm=amm, daily=daily,
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

    def _make_lim_single(self, rng: random.Random) -> LimMarket:
        tpl, cat, tags = rng.choice(LIM_OTHER)
        league, teams = rng.choice(TEAMS)
        title = self._fill(rng, tpl, league=league)
        exp = self.epoch + rng.uniform(6, 90 * 24) * 3600
        return self._lim_base(rng, "clob", title, _slugify(title)[:60], int(exp // 60 * 60_000), [cat], list(tags))

    def _make_lim_amm(self, rng: random.Random) -> LimMarket:
        sym = rng.choice(("doge", "pepe", "link", "avax"))
        px = rng.uniform(0.05, 30)
        exp = math.floor((self.epoch + rng.uniform(2, 240) * 3600) / 3600) * 3600
        m = self._lim_base(rng, "amm", "", sym, 0, [], [])
        shape = lcat.above(rng, sym.upper(), px, exp, amm=True, daily=True, min_size=m.min_size,
                           max_spread=m.max_spread)
        m.title, m.slug, m.exp_ms = shape.title, f"{shape.slug_base}-{m.created_ms}", shape.exp_ms
        m.categories, m.tags, m.extra = shape.categories, shape.tags, shape.extra
        m.status = "FUNDED"
        return m

    def _make_lim_group(self, rng: random.Random, k: int | None = None) -> LimMarket:
        tpl, opts, cat = rng.choice(LIM_GROUPS)
        league, teams = rng.choice(TEAMS)
        title = self._fill(rng, tpl, league=league)
        k = k or rng.randint(2, 4)
        if opts is None:
            names = rng.sample(teams, k)
        elif opts == "PEOPLE":
            names = rng.sample(PEOPLE, k)
        else:
            names = opts[:k]
        exp = int((self.epoch + rng.uniform(24, 120 * 24) * 3600) // 3600 * 3_600_000)
        g = LimMarket()
        g.id = self._new_lim_id(rng)
        g.kind = "group"
        g.title = title
        g.slug = _slugify(title)[:60] + f"-{g.id}"
        g.created_ms = int(self.epoch * 1000) - rng.randint(60_000, 30 * 86_400_000)
        g.exp_ms = exp
        g.exp_str = rng.random() < 0.3
        g.dec_str = rng.random() < 0.25
        g.categories = [cat]
        g.tags = ["NegRisk"]
        g.neg_risk_market_id = _hex32(self.seed, f"lnrm:{g.slug}")
        g.prices = []
        g.volume = 0
        for i, name in enumerate(names):
            c = self._lim_base(rng, "clob", name, _slugify(f"{name} {title}")[:60], exp, [cat], ["NegRisk"])
            c.status = "FUNDED"
            c.expired = False
            c.parent = g
            c.order_in_group = i
            g.children.append(c)
        return g

    # ---------------- Polymarket reads

    def gamma_page(self, after_id: int | None, limit: int, closed: bool | None) -> tuple[list[bytes], int | None]:
        ids = self.poly_ids
        i = 0 if after_id is None else bisect.bisect_right(ids, after_id)
        out: list[bytes] = []
        last = None
        poly = self.poly
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
        b = m.book
        if b is None:
            b = m.book = PolyBooks(self, m)
        return b.get(side, now)

    # ---------------- Limitless reads

    def lim_active(self, trade_type: str | None) -> list[LimMarket]:
        out = []
        for m in self.lim_items:
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

    def lim_book(self, m: LimMarket, now: int) -> bytes:
        b = m.book
        if b is None:
            b = m.book = LimBook(self, m)
        return b.get(now)

    # ---------------- lifecycle

    def poly_info(self) -> list[dict[str, Any]]:
        return [self.poly[i].info() for i in self.poly_ids]

    def lim_info(self) -> list[dict[str, Any]]:
        out = []
        for m in self.lim_items:
            out.append(m.info())
            out.extend(c.info() for c in m.children)
        return out

    def add(self, venue: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        count = int(spec.get("count", 1))
        if not 1 <= count <= 1000:
            raise SimError("count must be 1..1000")
        out: list[dict[str, Any]] = []
        for _ in range(count):
            if venue == "polymarket":
                out.extend(m.info() for m in self._add_poly(spec))
            else:
                m = self._add_lim(spec)
                out.append(m.info())
                out.extend(c.info() for c in m.children)
        return out

    def _add_poly(self, spec: dict[str, Any]) -> list[PolyMarket]:
        rng = self.life_rng
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
                for x in self.poly.values():
                    if x.series and not x.closed and x.series["asset"] == asset and x.series["rec"] == rec:
                        start = max(start, x.series["start"] + r[1])
            ms = [self._make_crypto(rng, *a, rec, r[1], start)]
        elif kind == "sports":
            ms = [self._make_sports(rng)]
        elif kind == "negrisk":
            ms = self._make_negrisk(rng, int(spec.get("outcomes", 3)))
        elif kind == "yesno":
            ms = [self._make_yesno(rng)]
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
            if "volume24hr" in spec:
                m.volume24hr = float(spec["volume24hr"])
            if spec.get("hydrating"):
                self._hydrating(m, True)
            if "accepting_orders" in spec:
                m.accepting = bool(spec["accepting_orders"])
            if "enable_order_book" in spec:
                m.enable_ob = bool(spec["enable_order_book"])
            if "has_book" in spec:
                m.has_book = bool(spec["has_book"])
            self._register_poly(m)
        return ms

    def _add_lim(self, spec: dict[str, Any]) -> LimMarket:
        rng = self.life_rng
        kind = spec.get("kind", "clob")
        now = time.time()
        saved_epoch = self.epoch
        self.epoch = now
        try:
            if kind == "crypto":
                a = next((c for c in LIM_CRYPTO if c[0] == spec.get("asset", "btc")), None)
                if a is None:
                    raise SimError("unknown asset")
                fam = str(spec.get("family", "above"))
                if fam not in ("above", "up_or_down"):
                    raise SimError("family must be above or up_or_down")
                m = self._make_lim_crypto(rng, a, hours=float(spec.get("end_in_s", 3600)) / 3600, family=fam)
            elif kind == "clob":
                m = self._make_lim_single(rng)
            elif kind == "amm":
                m = self._make_lim_amm(rng)
            elif kind == "group":
                m = self._make_lim_group(rng, int(spec.get("outcomes", 3)))
            else:
                raise SimError("kind must be one of crypto, clob, amm, group")
        finally:
            self.epoch = saved_epoch
        m.created_ms = int(now * 1000)
        if spec.get("slug") and not m.children:
            m.slug = str(spec["slug"])
        m.status = "FUNDED"
        m.expired = False
        if "end_in_s" in spec:
            m.exp_ms = int((now + float(spec["end_in_s"])) * 1000)
            for c in m.children:
                c.exp_ms = m.exp_ms
        self._register_lim(m, front=True)  # the active list shows newest first
        return m

    def select(self, venue: str, spec: dict[str, Any]) -> list[Any]:
        if venue == "polymarket":
            if "id" in spec:
                m = self.poly.get(int(spec["id"]))
                return [m] if m else []
            if "slug" in spec:
                return [m for m in self.poly.values() if m.slug == spec["slug"]]
            if "token_id" in spec:
                e = self.tokens.get(str(spec["token_id"]))
                return [e[0]] if e else []
            pool = [self.poly[i] for i in self.poly_ids if not self.poly[i].closed]
            if "kind" in spec:
                pool = [m for m in pool if m.kind == spec["kind"]]
        else:
            if "slug" in spec:
                m = self.lim_slugs.get(str(spec["slug"]))
                return [m] if m else []
            if "id" in spec:
                return [m for m in self.lim_slugs.values() if str(m.id) == str(spec["id"])]
            if "token_id" in spec:
                return [m for m in self.lim_slugs.values() if m.tokens and spec["token_id"] in m.tokens.values()]
            pool = [m for m in self.lim_items if m.listed]
            if "kind" in spec:
                pool = [m for m in pool if m.kind == spec["kind"]]
        count = int(spec.get("count", 1))
        if count >= len(pool):
            return pool
        return self.life_rng.sample(pool, count)

    def close(self, venue: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for m in self.select(venue, spec):
            if venue == "polymarket":
                if not m.closed:
                    m.closed = True
                    m.accepting = False
                    m.closed_ts = now
                    m.outcome_prices = ["1", "0"]
                    m.book = None
                    m.touch()
            else:
                m.active = False
                m.status = "RESOLVED"
                m.book = None
                for c in m.children:
                    c.active = False
                    c.status = "RESOLVED"
                    c.book = None
            out.append(m.info())
        return out

    def expire(self, venue: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        t_ms = now_ms()
        out = []
        for m in self.select(venue, spec):
            if venue == "polymarket":
                m.end_ts = min(m.end_ts, now)
                m.accepting = False
                m.expired = True
                if m.live:
                    if m.book is None:
                        m.book = PolyBooks(self, m)
                    m.book.freeze(t_ms)
                m.touch()
            else:
                targets = [m, *m.children]
                for x in targets:
                    x.exp_ms = min(x.exp_ms, int(now * 1000))
                    x.expired = True
                    if x.status in ("FUNDED", "FUNDED_FLAGGED"):
                        x.status = "LOCKED"
                    if x.live:
                        self.lim_book(x, t_ms)
                        x.book.freeze(t_ms)
            out.append(m.info())
        return out

    def update(self, venue: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in self.select(venue, spec):
            if venue == "polymarket":
                if "accepting_orders" in spec:
                    m.accepting = bool(spec["accepting_orders"])
                if "enable_order_book" in spec:
                    m.enable_ob = bool(spec["enable_order_book"])
                if "has_book" in spec:
                    m.has_book = bool(spec["has_book"])
                if "volume24hr" in spec:
                    m.volume24hr = float(spec["volume24hr"])
                if "hydrating" in spec:
                    if spec["hydrating"]:
                        for t in m.tokens:
                            self.tokens.pop(t, None)
                        self._hydrating(m, True)
                    elif not m.tokens:
                        m.tokens = [_token_id(self.seed, f"{m.id}:{i}") for i in range(2)]
                        m.clob_field = json.dumps(m.tokens)
                        m.fresh = False
                        for i, t in enumerate(m.tokens):
                            self.tokens[t] = (m, i)
                            self.shuffle_key[t] = int(hashlib.md5(f"{self.seed}:{t}".encode()).hexdigest()[:12], 16)
                m.touch()
            else:
                if "status" in spec:
                    m.status = str(spec["status"])
            out.append(m.info())
        return out

    def churn_step(self) -> dict[str, list]:
        """One churn tick: retire markets past their end (rolling recurring series forward),
        close one random open market and open one new market on each venue."""
        now = time.time()
        rng = self.life_rng
        closed: list = []
        added: list = []
        # Polymarket: roll finished recurring slots, close one random market, add one.
        for m in [self.poly[i] for i in self.poly_ids]:
            if m.closed or m.end_ts > now:
                continue
            closed += self.close("polymarket", {"id": m.id})
            if m.series:
                s = m.series
                nxt = s["start"] + s["secs"]
                while nxt + s["secs"] <= now:
                    nxt += s["secs"]
                later = any(
                    x.series and not x.closed and x.series["asset"] == s["asset"] and x.series["rec"] == s["rec"]
                    and x.series["start"] >= nxt for x in self.poly.values()
                )
                if not later:
                    added += self.add("polymarket", {"kind": "crypto", "asset": s["asset"], "recurrence": s["rec"], "start_ts": nxt})
        closed += self.close("polymarket", {"count": 1})
        added += self.add("polymarket", {"kind": rng.choice(("yesno", "yesno", "sports", "crypto"))})
        # Limitless
        now_ms_ = int(now * 1000)
        for m in list(self.lim_items):
            if m.active and m.exp_ms <= now_ms_:
                closed += self.close("limitless", {"slug": m.slug})
                if m.recurring:
                    spec = {"kind": "crypto", "asset": m.asset, "family": m.family}
                    if m.family == "above":
                        spec["end_in_s"] = 3600
                    added += self.add("limitless", spec)
        closed += self.close("limitless", {"count": 1})
        added += self.add("limitless", {"kind": rng.choice(("clob", "clob", "crypto", "amm", "group"))})
        return {"closed": closed, "added": added}
