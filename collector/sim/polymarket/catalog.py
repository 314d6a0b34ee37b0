"""The Polymarket catalogue the simulator starts with and opens later: crypto up-or-down
series, yes/no questions, sports games and neg-risk groups, each drawn from one seeded RNG."""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
import zlib

from collector.sim.names import (
    COUNTRIES,
    FED_OPTIONS,
    MONTHS,
    PEOPLE,
    TEAMS,
    fill,
    hex32,
    slugify,
    token_id,
)
from collector.sim.polymarket.market import PolyMarket

CRYPTO = (
    ("btc", "Bitcoin", 104_000),
    ("eth", "Ethereum", 3_600),
    ("sol", "Solana", 180),
    ("xrp", "XRP", 2.4),
)
RECURRENCES = (("15m", 900, 4), ("hourly", 3600, 3), ("daily", 86400, 1))

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


class PolyFactory:
    """Makes markets; ``next_id`` only grows (ids are sparse, as on Gamma)."""

    def __init__(self, seed: int, epoch: float) -> None:
        self.seed = seed
        self.epoch = epoch
        self.next_id = 0

    def _new_id(self, rng: random.Random) -> int:
        self.next_id += rng.randint(1, 37)
        return self.next_id

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

    def build(self, n: int) -> list[PolyMarket]:
        """The start-up catalogue of (about) ``n`` markets, in registration order."""
        rng = random.Random(f"{self.seed}:poly:catalog")
        self.next_id = 500_000 + rng.randint(0, 99_999)
        out: list[PolyMarket] = []
        slots = self._crypto_slots()
        n_crypto = min(len(slots), max(2, round(n * 0.3)))
        for s in slots[:n_crypto]:
            out.append(self.make_crypto(rng, *s[:6]))
        made = n_crypto
        while made < n:
            kind = rng.random()
            if kind < 0.15 and n - made >= 3:
                ms = self.make_negrisk(rng, min(n - made, rng.randint(3, 5)))
            elif kind < 0.35:
                ms = [self.make_sports(rng)]
            else:
                ms = [self.make_yesno(rng)]
            for m in ms:
                self._apply_mix(rng, m)
                out.append(m)
            made += len(ms)
        return out

    def _base(self, rng: random.Random, kind: str, question: str, slug: str, outcomes: list[str],
                   start_ts: float, end_ts: float, tick_n: int, event: dict, vol24: float) -> PolyMarket:
        m = PolyMarket()
        m.id = self._new_id(rng)
        m.kind = kind
        m.question = question
        m.slug = slug
        m.condition_id = hex32(self.seed, f"cond:{m.id}")
        m.question_id = hex32(self.seed, f"qid:{m.id}")
        m.tokens = [token_id(self.seed, f"{m.id}:{i}") for i in range(2)]
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

    def make_crypto(self, rng: random.Random, asset: str, name: str, px: float, rec: str, secs: int,
                     start: float) -> PolyMarket:
        slug = f"{asset}-up-or-down-{rec}-{int(start)}"
        t0 = _dt.datetime.fromtimestamp(start, _dt.UTC)
        t1 = _dt.datetime.fromtimestamp(start + secs, _dt.UTC)
        title = f"{name} Up or Down - {t0:%B} {t0.day}, {t0:%H:%M}-{t1:%H:%M} UTC"
        series_slug = f"{asset}-up-or-down-{rec}"
        event = {
            "id": str(30_000 + self.next_id % 100_000),
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
        m = self._base(rng, "crypto", title, slug, ["Up", "Down"], start - 86400, start + secs, 100, event, vol)
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

    def make_yesno(self, rng: random.Random) -> PolyMarket:
        tpl, tag, label = rng.choice(YESNO)
        q = fill(rng, self.epoch, tpl)
        slug = f"{slugify(q)}-{self.next_id % 997}"
        start, end = self._end(rng)
        ev = self._event(rng, slug, q, [(tag, label)])
        return self._base(rng, "yesno", q, slug, ["Yes", "No"], start, end,
                          rng.choice((100, 100, 1000)), ev, self._vol24(rng))

    def make_sports(self, rng: random.Random) -> PolyMarket:
        league, teams = rng.choice(TEAMS)
        a, b = rng.sample(teams, 2)
        start, _ = self._end(rng)
        game = self.epoch + rng.uniform(1, 72) * 3600
        d = _dt.datetime.fromtimestamp(game, _dt.UTC)
        slug = f"{league.lower()}-{a.lower()}-{b.lower()}-{d:%Y-%m-%d}-{self.next_id % 97}"
        q = f"{a} vs. {b}"
        ev = self._event(rng, slug, q, [("sports", "Sports"), (league.lower(), league)])
        return self._base(rng, "sports", q, slug, [a, b], start, game + 3 * 3600, 100, ev, self._vol24(rng))

    def make_negrisk(self, rng: random.Random, k: int) -> list[PolyMarket]:
        etpl, mtpl, tag, label = rng.choice(NEGRISK)
        league, teams = rng.choice(TEAMS)
        month = rng.choice(MONTHS)
        country = rng.choice(COUNTRIES)
        title = fill(rng, self.epoch, etpl, league=league, month=month, country=country, year=2027)
        if tag == "politics":
            opts = rng.sample(PEOPLE, k)
        elif tag == "sports":
            opts = rng.sample(teams, k)
        else:
            opts = (FED_OPTIONS * 2)[:k]
        eslug = f"{slugify(title)}-{self.next_id % 991}"
        ev = self._event(rng, eslug, title, [(tag, label)])
        nrid = hex32(self.seed, f"nrm:{eslug}")[:64] + "00"
        start, end = self._end(rng)
        out = []
        for x in opts:
            q = fill(rng, self.epoch, mtpl, x=x, league=league, month=month, country=country, year=2027)
            m = self._base(rng, "negrisk", q, slugify(q), ["Yes", "No"], start, end, 1000, ev, self._vol24(rng))
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
            self.hydrating(m, rng.random() < 0.75)
        elif u < 0.19:
            m.has_book = False  # listed and tradable, but the CLOB has no book yet

    @staticmethod
    def hydrating(m: PolyMarket, empty: bool) -> None:
        m.tokens = []
        m.clob_field = "" if empty else "[]"
        m.fresh = True
