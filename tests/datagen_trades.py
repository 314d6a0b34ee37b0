"""Synthetic trades, written with the real writer next to a :mod:`tests.datagen` recording.

:func:`add_trades` writes ``<venue>/trades/`` for a few instruments of each venue over the
recording's span (23:00 -> 01:00 UTC by default, so two days), as the capture side would:

* Polymarket: feed trades (``source`` "ws", key built from the transaction hash, token, price and
  size), received 30-800 ms after their venue time; a few written again by a later REST copy
  (same key). A feed outage across midnight: the trades of its last part come back in a backfill
  (``rest``) written after the trades received live since the reconnect, with an overlap that
  repeats trades already written (some on the day before); the first part is never fetched
  (a venue-wide ``gap`` record, ``backfilled`` false), the rest is (a ``backfilled`` gap).
* Limitless: a paced REST poll (``rest``, the venue's trade id as key), received up to a minute
  late, every tenth or so trade polled twice (the poll's overlap).
* Fractional sizes (up to six decimals), both aggressor sides, fees on some.

The ground truth (:class:`TradesTruth`) is what was written, in write order, and the expected
reader answer (:meth:`TradesTruth.unique`).
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from collector.config.settings import WriterSettings
from collector.model.decimals import fmt
from collector.model.records import GapRecord
from collector.model.trade_records import TradeRecord, trade_key
from collector.store.writer_set import WriterSet

MIDNIGHT_MS = calendar.timegm((2026, 1, 11, 0, 0, 0)) * 1000
OUTAGE = (MIDNIGHT_MS - 150_000, MIDNIGHT_MS + 125_000)  # Polymarket feed down (venue time)
LOST = (OUTAGE[0], MIDNIGHT_MS - 90_000)  # the part of it the backfill could not fetch (the gap)
BACKFILL_AT = OUTAGE[1] + 8_000  # when the backfill is written (after live trades since the reconnect)
OVERLAP_MS = 30_000  # the backfill re-reads this much before the outage (repeats, some from the day before)


@dataclass
class TradesTruth:
    data_dir: Path
    written: dict[str, list[TradeRecord]] = field(default_factory=dict)  # write order, duplicates included
    gaps: dict[str, list[GapRecord]] = field(default_factory=dict)
    instruments: dict[str, list[str]] = field(default_factory=dict)

    def unique(self, venue: str) -> list[TradeRecord]:
        """What the reader returns: the first received of each key, by (venue time, key)."""
        first: dict[str, TradeRecord] = {}
        for _i, r in sorted(enumerate(self.written[venue]), key=lambda x: (x[1].ts_ms, x[0])):
            first.setdefault(r.key, r)
        return sorted(first.values(), key=lambda r: (_t(r), r.key))

    def duplicates(self, venue: str) -> int:
        return len(self.written[venue]) - len(self.unique(venue))


def _t(r: TradeRecord) -> int:
    return r.ts_ms if r.ob_ts_ms is None else r.ob_ts_ms


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _price(rng: random.Random, mid: float, tick: int) -> str:
    return fmt(Decimal(round(min(0.99, max(0.01, mid + rng.gauss(0, 0.02))) * tick)) / tick)


def _size(rng: random.Random, decimals: int) -> str:
    return fmt(Decimal(rng.randrange(1, 5_000 * 10**decimals)) / 10**decimals)


def add_trades(
    data_dir: str | Path,
    instruments: dict[str, list[str]],
    *,
    start_ms: int = MIDNIGHT_MS - 3_600_000,
    duration_s: float = 7200.0,
    mean_gap_s: float = 25.0,
    seed: int = 23,
) -> TradesTruth:
    """Write trades of ``instruments`` (``{venue: [instrument_id, ...]}``); see the module doc."""
    data_dir = Path(data_dir)
    rng = random.Random(seed)
    end_ms = start_ms + int(duration_s * 1000)
    truth = TradesTruth(data_dir, instruments={v: list(i) for v, i in instruments.items()})
    events: list[tuple[int, int, str, bytes]] = []  # (write_ms, order, venue, line)

    def put(v: str, at: int, rec: TradeRecord | GapRecord) -> None:
        events.append((at, len(events), v, rec))

    for v, ids in instruments.items():
        truth.written[v], truth.gaps[v] = [], []
        n = 0
        for iid in ids:
            mid = rng.uniform(0.3, 0.7)
            t = start_ms + int(rng.expovariate(1 / mean_gap_s) * 1000)
            while t < end_ms:
                n += 1
                price = _price(rng, mid, 100 if v == "polymarket" else 1000)
                size = _size(rng, 2 if v == "polymarket" else 6)
                side = rng.choice(["buy", "sell"])
                fee = (str(rng.choice([0, 10, 200])), None) if v == "polymarket" else (None, fmt(Decimal(size) / 1000))
                if v == "polymarket":
                    tx = f"0x{rng.getrandbits(256):064x}"
                    key = trade_key(None, tx, iid.partition(":")[2], price, size)
                    rec = TradeRecord(v, iid, t + rng.randint(30, 800), t, key, price, size, side, None, tx, fee[0], None, "ws")
                    if OUTAGE[0] <= t < OUTAGE[1]:
                        if t >= LOST[1]:
                            rec.ts_ms, rec.source = BACKFILL_AT + n % 50, "rest"
                            put(v, rec.ts_ms, rec)
                    else:
                        put(v, rec.ts_ms, rec)
                        if OUTAGE[0] - OVERLAP_MS <= t < BACKFILL_AT:  # in the backfill's overlap: fetched again
                            later = BACKFILL_AT + n % 50
                        elif rng.random() < 0.05:  # a later REST copy
                            later = rec.ts_ms + rng.randint(2_000, 30_000)
                        else:
                            later = None
                        if later is not None:
                            put(v, later, TradeRecord(v, iid, later, t, key, price, size, side, None, tx, fee[0], None, "rest"))
                else:
                    tid = f"lt-{iid.partition(':')[2][:12]}-{n}"
                    rec = TradeRecord(v, iid, t + rng.randint(1_000, 60_000), t, tid, price, size, side, tid, None,
                                      None, fee[1], "rest")
                    put(v, rec.ts_ms, rec)
                    if rng.random() < 0.1:
                        again = rec.ts_ms + rng.randint(1_000, 20_000)
                        put(v, again, TradeRecord(v, iid, again, t, tid, price, size, side, tid, None, None, fee[1], "rest"))
                mid = min(0.9, max(0.1, mid + rng.gauss(0, 0.01)))
                t += max(1, int(rng.expovariate(1 / mean_gap_s) * 1000))
        if v == "polymarket":
            # the outage: its first part could not be fetched, the rest was backfilled
            put(v, BACKFILL_AT, GapRecord(v, None, LOST[0], LOST[1], "trades_backlog", backfilled=False))
            put(v, BACKFILL_AT, GapRecord(v, None, LOST[1], OUTAGE[1], "feed_down", backfilled=True))

    clock, mono = _Clock(start_ms / 1000), _Clock(0.0)
    writers = {v: WriterSet(data_dir, WriterSettings(rotate_minutes=10, fsync_interval_s=1e6,
                                                     compress_closed=(v == "polymarket")),
                            clock=clock, mono=mono, buffer_bytes=1 << 16) for v in instruments}
    for at, _o, v, rec in sorted(events, key=lambda e: (e[0], e[1])):
        clock.t = max(clock.t, at / 1000)
        mono.t = clock.t - start_ms / 1000
        writers[v].tick()
        writers[v].write(v, "trades", rec.to_json())
        (truth.gaps if type(rec) is GapRecord else truth.written)[v].append(rec)
    clock.t = max(clock.t, end_ms / 1000 + 120)
    for ws in writers.values():
        ws.close()
    return truth


def long_lived(gen, venue: str, n: int) -> list[str]:
    """Ids of ``n`` instruments of a :mod:`tests.datagen` recording polled over its whole span."""
    return [i.instrument_id for i in gen.instruments[venue] if i.expires_at_ms > gen.end_ms][:n]
