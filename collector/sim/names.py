"""Words, ids and timestamps the venue catalogues share: the made-up people, teams and
companies questions are written about, and the id / date formats both venues use."""

from __future__ import annotations

import datetime as _dt
import hashlib
import random
import re
from typing import Any

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
FED_OPTIONS = ["cut 50+ bps", "cut 25 bps", "hold rates", "hike 25+ bps"]


def fill(rng: random.Random, epoch: float, tpl: str, **kw: Any) -> str:
    """``tpl`` with its {month}, {year}, {person}... drawn from ``rng`` (always all of them, in
    this order, so a template's fields never shift the draws that follow)."""
    year = _dt.datetime.fromtimestamp(epoch, _dt.UTC).year
    vals = dict(
        month=rng.choice(MONTHS), year=year + rng.randint(0, 1), person=rng.choice(PEOPLE),
        country=rng.choice(COUNTRIES), company=rng.choice(COMPANIES), pct=rng.choice(["2.5", "3", "3.2", "4"]),
        n=rng.randint(10, 900), k=rng.randint(90, 250),
    )
    vals.update(kw)
    return tpl.format(**vals)


def iso(ts: float, ms: bool = False) -> str:
    d = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    if ms:
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def date(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%d")


def slugify(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def token_id(seed: int, key: str) -> str:
    h = int.from_bytes(hashlib.sha256(f"{seed}:tok:{key}".encode()).digest(), "big")
    return str(h % (9 * 10**76) + 10**76)  # 77 decimal digits, like real uint256 ids


def hex32(seed: int, key: str) -> str:
    return "0x" + hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
