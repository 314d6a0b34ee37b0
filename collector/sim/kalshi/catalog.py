"""The Kalshi catalogue the simulator starts with and opens later, drawn from one seeded RNG:
hourly crypto "above/below" events (``KXBTCD-26DEC0117`` with strikes ``-T104249.99``) and
ranges (``KXBTC-...-B104125``), other events (Fed decision, weather, games, long-dated), and
multivariate combos (``KXMVE...``, served only by ``/events/multivariate``)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import random

from collector.sim.kalshi.market import KalEvent, KalMarket
from collector.sim.names import FED_OPTIONS, TEAMS

# series, asset name, reference price, strike step, kind
KAL_CRYPTO = (
    ("KXBTCD", "Bitcoin", 104_000, 250, "above"),
    ("KXETHD", "Ethereum", 3_600, 20, "above"),
    ("KXBTC", "Bitcoin", 104_000, 250, "range"),
    ("KXETH", "Ethereum", 3_600, 20, "range"),
)
_MON = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_ET = _dt.timezone(_dt.timedelta(hours=-5), "EST")  # event tickers and titles speak Eastern time


def hour_code(ts: float) -> tuple[str, str]:
    """Ticker date code ``26DEC0117`` and title phrase ``Dec 1, 2026 at 5pm EST`` of an hour."""
    d = _dt.datetime.fromtimestamp(ts, _ET)
    h12 = d.hour % 12 or 12
    return (f"{d.year % 100:02d}{_MON[d.month - 1]}{d.day:02d}{d.hour:02d}",
            f"{d.strftime('%b')} {d.day}, {d.year} at {h12}{'am' if d.hour < 12 else 'pm'} EST")


class KalFactory:
    """Makes events around ``epoch`` (moved to "now" while opening one later)."""

    def __init__(self, seed: int, epoch: float) -> None:
        self.seed = seed
        self.epoch = epoch
        self.n = 0  # serial for unique tickers of non-recurring events

    def build(self, n: int) -> list[KalEvent]:
        """About ``n`` markets: half in crypto hourly events, the rest in other events and combos."""
        rng = random.Random(f"{self.seed}:kal:catalog")
        out: list[KalEvent] = []
        hour = math.floor(self.epoch / 3600) * 3600
        count, h = 0, 1
        while count < max(4, n // 2):
            for spec in KAL_CRYPTO:
                ev = self.make_crypto(rng, spec, hour + h * 3600)
                out.append(ev)
                count += len(ev.markets)
            h += 1
        kinds = (self.make_fed, self.make_game, self.make_weather, self.make_longdated, self.make_combo)
        i = 0
        while count < n:
            ev = kinds[i % len(kinds)](rng)
            out.append(ev)
            count += len(ev.markets)
            i += 1
        return out

    def _market(self, rng: random.Random, ev: KalEvent, suffix: str, title: str, yes_sub: str, close_ms: int,
                grid: str = "linear_cent", no_sub: str | None = None) -> KalMarket:
        m = KalMarket(f"{ev.ticker}-{suffix}", ev, title, yes_sub, yes_sub if no_sub is None else no_sub,
                      int(self.epoch * 1000) - rng.randint(600_000, 86_400_000), close_ms, grid)
        m.volume = int(rng.lognormvariate(11, 2.0)) * 100 + rng.randint(0, 99)
        m.volume_24h = min(m.volume, int(rng.lognormvariate(9, 2.0)) * 100 + rng.randint(0, 99))
        m.open_interest = m.volume // 3
        m.illiquid = rng.random() < 0.08
        ev.markets.append(m)
        return m

    def make_crypto(self, rng: random.Random, spec: tuple, close_s: float) -> KalEvent:
        series, name, px, step, kind = spec
        code, when = hour_code(close_s)
        ev = KalEvent(f"{series}-{code}", series, f"{name} price {'on' if kind == 'above' else 'range on'} {when}?",
                      when, "Crypto", exclusive=(kind == "range"))
        ev.recurring, ev.asset, ev.created_ms = True, series, int(close_s * 1000) - 3_600_000
        centre = round(px * rng.uniform(0.98, 1.02) / step) * step
        k = rng.randint(4, 8)
        for j in range(-k, k + 1):
            strike = centre + j * step
            if kind == "above":
                m = self._market(rng, ev, f"T{strike - 0.01:.2f}", ev.title, f"${strike:,} or above", int(close_s * 1000))
                m.strike = {"strike_type": "greater", "floor_strike": strike - 0.01}
            else:
                lo, hi = strike - step / 2, strike + step / 2 - 0.01
                m = self._market(rng, ev, f"B{strike}", ev.title, f"${lo:,.0f} to ${hi:,.2f}", int(close_s * 1000))
                m.strike = {"strike_type": "between", "floor_strike": lo, "cap_strike": hi}
            m.rules = f"If the {name} price is {m.yes_sub} at {when}, then the market resolves to Yes."
        if close_s - self.epoch > 3 * 3600:  # listed ahead of trading
            for m in ev.markets:
                m.status = "initialized"
        return ev

    def _ev(self, series: str, code: str, title: str, sub: str, category: str, exclusive: bool = True) -> KalEvent:
        self.n += 1
        ev = KalEvent(f"{series}-{code}", series, title, sub, category, exclusive)
        ev.created_ms = int(self.epoch * 1000) - 86_400_000
        return ev

    def make_fed(self, rng: random.Random) -> KalEvent:
        d = _dt.datetime.fromtimestamp(self.epoch + (30 + self.n) * 86400, _dt.UTC)
        ev = self._ev("KXFEDDECISION", f"{d.year % 100:02d}{_MON[d.month - 1]}{self.n:02d}",
                      f"Fed decision in {d.strftime('%B %Y')}?", d.strftime("%b %Y"), "Economics")
        for code, label in zip(("C26", "C25", "H0", "H25"), FED_OPTIONS):
            self._market(rng, ev, code, ev.title, label.capitalize(), int(d.timestamp() * 1000), "tapered_deci_cent")
        return ev

    def make_game(self, rng: random.Random) -> KalEvent:
        league, teams = TEAMS[self.n % len(TEAMS)]
        a, b = rng.sample(teams, 2)
        d = _dt.datetime.fromtimestamp(self.epoch + rng.uniform(2, 48) * 3600, _ET)
        code = f"{d.year % 100:02d}{_MON[d.month - 1]}{d.day:02d}{a[:3].upper()}{b[:3].upper()}{self.n}"
        ev = self._ev(f"KX{league}GAME", code, f"{a} vs {b} Winner?", f"{a} at {b}", "Sports")
        for t in (a, b):
            m = self._market(rng, ev, t[:3].upper(), f"{a} vs {b} Winner?", t, int(d.timestamp() * 1000))
            if rng.random() < 0.3:
                m.status = "inactive"  # paused: listed under status=open, never polled
        return ev

    def make_weather(self, rng: random.Random) -> KalEvent:
        d = _dt.datetime.fromtimestamp(self.epoch + 86400, _ET)
        ev = self._ev("KXHIGHNY", f"{d.year % 100:02d}{_MON[d.month - 1]}{d.day:02d}{self.n}",
                      f"Highest temperature in NYC on {d.strftime('%b')} {d.day}?", d.strftime("%b %d"), "Climate and Weather")
        base = rng.randint(30, 80)
        for j in range(4):
            t = base + 2 * j
            self._market(rng, ev, f"B{t}.5", ev.title, f"{t}° to {t + 1}°", int(d.timestamp() * 1000), "deci_cent")
        ev.markets[0].status = "closed"  # one strike already decided
        return ev

    def make_longdated(self, rng: random.Random) -> KalEvent:
        ev = self._ev("KXELONMARS", f"{99 - self.n}", "Will Elon Musk visit Mars in his lifetime?", "Before 2099",
                      "World", exclusive=False)
        self._market(rng, ev, "YES", "Will Elon Musk visit Mars before Aug 1, 2099?", "Mars",
                     int(_dt.datetime(2099, 8, 1, 4, 59, tzinfo=_dt.UTC).timestamp() * 1000))
        return ev

    def make_combo(self, rng: random.Random) -> KalEvent:
        h = hashlib.sha1(f"{self.seed}:combo:{self.n}".encode()).hexdigest().upper()
        series = "KXMVESPORTSMULTIGAMEEXTENDED"
        ev = self._ev(series, f"S2026{h[:11]}", "Multi-game parlay", "", "Sports", exclusive=False)
        ev.combo = True
        league, teams = TEAMS[0]
        legs = [{"event_ticker": f"KX{league}GAME-{t[:3].upper()}", "market_ticker": f"KX{league}GAME-{t[:3].upper()}-W",
                 "side": "yes"} for t in rng.sample(teams, 2)]
        m = self._market(rng, ev, h[11:22], ",".join(f"yes {x['market_ticker']}" for x in legs), "", 
                         int((self.epoch + 3 * 86400) * 1000), "deci_cent", no_sub="")
        m.legs = legs
        return ev
