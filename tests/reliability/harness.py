"""Running the real collector against the simulator for the reliability cases.

Builds on tests/helpers.py (``sim_env``, ``poller_thread``, ``start_poll_process``...): a case
starts its own simulator, runs discovery once (real snapshots), runs the poller in a thread or as
``python -m collector poll``, injects its fault, then scans the data with
:mod:`tests.reliability.schema`. ``Marks`` records wall-clock moments (fault on, fault off...) so
coverage can be computed per period.

Knobs (environment, so a longer run needs no code change):

* ``RELIABILITY_DOWN_S``: how long a venue stays down in the fast suite (default 20 s); the
  soak-marked variant uses ``RELIABILITY_LONG_DOWN_S`` (default 180 s).
* ``RELIABILITY_SLACK``: multiplies every timing allowance (default 1; raise it on a slow box).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.config.settings import Settings
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from tests import helpers as h
from tests.reliability import schema

POLY, LIM, KAL = "polymarket", "limitless", "kalshi"
DOWN_S = float(os.environ.get("RELIABILITY_DOWN_S", "20"))
LONG_DOWN_S = float(os.environ.get("RELIABILITY_LONG_DOWN_S", "180"))
SLACK = float(os.environ.get("RELIABILITY_SLACK", "1"))

# Tunables for fast cases: stats every second, short backoff and cooldowns (the production
# defaults are 60 s / 15 s / 30 s; the soak-marked cases run with them).
FAST = {
    "POLLER__STATS_INTERVAL_S": "1",
    "POLLER__BACKOFF_BASE_S": "0.5",
    "POLLER__BACKOFF_CAP_S": "2",
    "POLLER__FAILURE_COOLDOWN_S": "3",
    "POLYMARKET__COOLDOWN_429_S": "2",
    "LIMITLESS__COOLDOWN_429_S": "2",
    "KALSHI__COOLDOWN_429_S": "2",
}


def prepare(sim, data: Path, monkeypatch, **extra: Any) -> Settings:
    """``tests.helpers.prepare`` with ``FAST`` under ``extra``."""
    return h.prepare(sim, data, monkeypatch, **{**FAST, **extra})


def env_for(sim, data: Path, **extra: Any) -> dict[str, str]:
    """The COLLECTOR_* environment of a child ``collector poll`` (same settings as ``prepare``)."""
    return h.sim_env(sim, data, **{**FAST, **extra})


def instrument_ids(data: Path, venue: str, sim=None) -> list[str]:
    """The snapshot's instruments; with ``sim``, only those the venue has a book for (the
    simulator, like Polymarket, lists a few open markets whose book does not exist yet: they
    404 forever and have no place in a coverage figure)."""
    ids = [i.instrument_id for i in read_snapshot(snapshot_path(data, venue)).instruments]
    if sim is None:
        return ids
    if venue == POLY:
        live = {f"{POLY}:{t}" for t in sim.live_tokens()}
    elif venue == KAL:
        live = {f"{KAL}:{t}" for t in sim.live_tickers()}
    else:
        live = {f"{LIM}:{s}" for s in sim.live_slugs(listed_only=False)}
    return [i for i in ids if i in live]


@dataclass
class Marks:
    """Named wall-clock moments (epoch seconds) of a run."""

    t: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str) -> float:
        self.t[name] = time.time()
        return self.t[name]

    def ms(self, name: str) -> int:
        return int(self.t[name] * 1000)

    def __getitem__(self, name: str) -> float:
        return self.t[name]


def cov(ds: schema.Dataset, venue: str, ids: Iterable[str], lo_s: float, hi_s: float, fresh_ms: int = 2000):
    """Coverage of ``ids`` over the wall-clock window ``[lo_s, hi_s)``."""
    return schema.coverage(ds.books(venue), schema.window(ids, lo_s * 1000, hi_s * 1000), fresh_ms)


def check_totals(ds: schema.Dataset, venue: str, exact: bool = True) -> int:
    """Books on disk against the poller's own count (poll_stats ``books_written``, which includes
    the final record written at close): equal after a clean stop."""
    on_disk = len(ds.books(venue))
    counted = sum(r["books_written"] for r in ds.stats(venue))
    if exact:
        assert on_disk == counted, f"{venue}: {on_disk} books on disk, poll_stats counted {counted}"
    else:
        assert on_disk <= counted, f"{venue}: {on_disk} books on disk > {counted} counted"
    return on_disk


def check_gaps(ds: schema.Dataset, venue: str) -> None:
    """Every instrument gap is bracketed by real books of that instrument: ``to_ts_ms`` is the
    capture time of a book on disk and ``from_ts_ms`` (when set) of an earlier one."""
    times: dict[str, set[int]] = {}
    for b in ds.books(venue):
        times.setdefault(b["instrument_id"], set()).add(b["ts_ms"])
    for g in ds.gaps(venue):
        iid = g["instrument_id"]
        if iid is None:
            assert g["reason"].startswith("cooldown:") and g["from_ts_ms"] <= g["to_ts_ms"], g
            continue
        have = times.get(iid, set())
        assert g["to_ts_ms"] in have, f"gap closed by a book that is not on disk: {g}"
        if g["from_ts_ms"] is not None:
            assert g["from_ts_ms"] in have, f"gap opened after a book that is not on disk: {g}"


def first_book_after(ds: schema.Dataset, venue: str, ids: Iterable[str], t_s: float) -> dict[str, float | None]:
    """Seconds from ``t_s`` to each instrument's first book at or after it (None: never)."""
    out: dict[str, float | None] = {i: None for i in ids}
    t_ms = t_s * 1000
    for b in ds.books(venue):
        iid = b["instrument_id"]
        if iid in out and b["ts_ms"] >= t_ms:
            d = (b["ts_ms"] - t_ms) / 1000
            if out[iid] is None or d < out[iid]:
                out[iid] = d
    return out


def report(name: str, **figures: Any) -> None:
    """One greppable line of figures per case (shown with ``pytest -s`` or on failure)."""
    parts = []
    for k, v in figures.items():
        if isinstance(v, schema.Coverage):
            v = round(v.ratio, 4)
        elif isinstance(v, float):
            v = round(v, 3)
        parts.append(f"{k}={v}")
    print(f"[reliability] {name}: " + " ".join(parts), flush=True)


def books_between(books: Iterable[Mapping[str, Any]], lo_ms: float, hi_ms: float) -> list[Mapping[str, Any]]:
    return [b for b in books if lo_ms <= b["ts_ms"] < hi_ms]
