"""Realistic synthetic recordings, written with the real writer (used by the tests and the bench).

:func:`generate` simulates discovery + polling of both venues over a time span (by default
23:00 -> 01:00 UTC, so two ``date=`` partitions) and writes exactly what the collector would:

* ``orderbooks/`` through :class:`collector.store.writer.WriterSet` with an injected clock: books made by
  :class:`collector.model.records.BookRecord` (exact decimal text, Yes/No books complementary), 3-15
  levels a side; capture times jittered so lines are slightly out of ``ts_ms`` order inside a file
  and a few land in the file of the next period; rotation every ``rotate_minutes``;
* instrument gaps (failure streaks, with ``poll_errors``) and one venue-wide cooldown gap;
* ``poll_stats`` every ``stats_interval_s`` per venue;
* one simulated crash per venue: the open files are left without ``close`` (two files then share
  a period), a torn half line is appended to the open ``orderbooks`` file, which a "later job"
  compresses, and a crash during compression is simulated (``X.jsonl`` and ``X.jsonl.zst`` both
  present, same content);
* ``markets/`` records (``collector.discovery.markets_log.market_record``) for every discovery run that
  changes the active set, and the final ``state/`` snapshot.

Everything written is also returned (:class:`Generated`) as ground truth: the orderbook-stream
lines per venue, the market lifecycles and the simulated truth of book times.
"""

from __future__ import annotations

import calendar
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from collector.config.settings import WriterSettings
from collector.discovery.markets_log import (
    append_market_records,
    market_record,
    market_records_path,
)
from collector.model.records import SCHEMA_VERSION, BookRecord, DecText, Instrument
from collector.store.book_log import BookLog
from collector.store.compress import compress_file
from collector.store.layout import snapshot_path
from collector.store.snapshot import Snapshot, write_snapshot
from collector.store.writer_set import WriterSet

DEFAULT_START_MS = calendar.timegm((2026, 1, 10, 23, 0, 0)) * 1000


@dataclass
class Generated:
    data_dir: Path
    start_ms: int
    end_ms: int
    venues: list[str]
    books: dict[str, list[bytes]] = field(default_factory=dict)  # orderbook lines, write order
    gaps: dict[str, list[bytes]] = field(default_factory=dict)  # gap lines, write order
    stats: dict[str, list[dict]] = field(default_factory=dict)  # poll_stats records
    instruments: dict[str, list[Instrument]] = field(default_factory=dict)  # every instrument ever
    # instrument_id -> (added_ms, removed_ms or None): discovery's view
    lifecycle: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    torn_lines: int = 0
    duplicate_pairs: int = 0  # X.jsonl + X.jsonl.zst left by a "crash during compression"

    def book_dicts(self, venue: str) -> list[dict]:
        return [orjson.loads(x) for x in self.books[venue]]

    def sorted_books(self, venue: str) -> list[dict]:
        """Ground truth in the reader's order: by ts_ms, stable."""
        return sorted(self.book_dicts(venue), key=lambda r: r["ts_ms"])

    @property
    def n_books(self) -> int:
        return sum(len(v) for v in self.books.values())


@dataclass
class _Market:
    venue: str
    instruments: list[Instrument]
    listed_ms: int
    expires_ms: int
    mid: float  # YES mid, random walk
    tick: str


@dataclass
class _InstState:
    failures: int = 0
    fail_left: int = 0
    last_ok_ms: int | None = None
    last: BookRecord | None = None


def _token_id(rng: random.Random) -> str:
    return str(rng.randrange(10**76, 10**77))


def _make_markets(venue: str, rng: random.Random, start_ms: int, end_ms: int, n: int) -> list[_Market]:
    span = end_ms - start_ms
    out: list[_Market] = []
    for k in range(n):
        if k < max(1, n // 4):  # long-lived (daily) markets, listed before the start
            listed = start_ms - 3_600_000
            expires = end_ms + 6 * 3_600_000
            recurrence = "daily"
        else:  # intraday markets staggered through the span, some expiring inside it
            listed = start_ms + int(span * (k - n // 4) / max(1, n - n // 4)) - span // 6
            expires = listed + rng.choice([15, 30, 60]) * 60_000 + span // 4
            recurrence = rng.choice(["15m", "hourly"])
        asset = rng.choice(["btc", "eth"])
        slug = f"{asset}-up-or-down-{recurrence}-{listed // 1000}-{k}"
        title = f"{'Bitcoin' if asset == 'btc' else 'Ethereum'} Up or Down #{k}"
        tick = rng.choice(["0.01", "0.001"]) if venue == "polymarket" else "0.001"
        common = dict(
            venue=venue,
            title=title,
            slug=slug,
            expires_at_ms=expires,
            tick_size=tick,
            event_slug=slug,
            recurrence=recurrence if venue == "polymarket" else None,
            series_slug=f"{asset}-up-or-down-{recurrence}" if venue == "polymarket" else None,
            tags=("Crypto", "Bitcoin" if asset == "btc" else "Ethereum"),
            volume_24h=round(rng.uniform(1e3, 1e6), 2),
            liquidity=round(rng.uniform(1e3, 1e5), 2),
        )
        if venue == "polymarket":
            mid = f"0x{rng.getrandbits(256):064x}"
            insts = [
                Instrument(poll_key=_token_id(rng), market_id=mid, outcome=o, **common) for o in ("Up", "Down")
            ]
        else:
            insts = [Instrument(poll_key=slug, market_id=slug, outcome="YES", size_decimals=6, **common)]
        out.append(_Market(venue, insts, listed, expires, rng.uniform(0.2, 0.8), tick))
    return out


def _q(x: float, tick: str) -> str:
    """x rounded to the tick, as canonical text (no trailing zeros)."""
    nd = len(tick.split(".")[1])
    t = f"{x:.{nd}f}".rstrip("0").rstrip(".")
    return t or "0"


_PRICE_TEXT: dict[str, list[str]] = {}
_SIZE_POOL: dict[str, list[str]] = {}


def _prices(tick: str) -> list[str]:
    """Canonical text of every price k * tick in [0, 1]."""
    if tick not in _PRICE_TEXT:
        nd = len(tick.split(".")[1])
        n = 10**nd
        _PRICE_TEXT[tick] = [_q(k / n, tick) for k in range(n + 1)]
    return _PRICE_TEXT[tick]


def _sizes(venue: str) -> list[str]:
    """A pool of realistic size texts (Limitless: shares with up to 6 decimals)."""
    if venue not in _SIZE_POOL:
        r = random.Random(99)
        pool = []
        for _ in range(4096):
            if venue == "limitless":  # integers in 1e-6 units, written in shares
                whole, frac = divmod(r.randrange(1_000_000, 50_000_000_000), 1_000_000)
                pool.append(f"{whole}.{frac:06d}".rstrip("0").rstrip("."))
            elif r.random() < 0.5:
                pool.append(str(r.randrange(5, 20000)))
            else:
                pool.append(_q(r.uniform(5, 20000), "0.01"))
        _SIZE_POOL[venue] = pool
    return _SIZE_POOL[venue]


def _book(m: _Market, inst: Instrument, rng: random.Random, ts_ms: int, latency: float) -> BookRecord:
    texts = _prices(m.tick)
    top = len(texts) - 1  # ticks in 1.0
    sizes = _sizes(m.venue)
    rnd = rng.random
    yes = inst is m.instruments[0]
    mid_t = int((m.mid if yes else 1 - m.mid) * top)
    spread = 1 + int(rnd() * 4)
    bids, asks = [], []
    p = mid_t - spread // 2
    for _ in range(3 + int(rnd() * 13)):
        if p <= 0:
            break
        bids.append((texts[p], sizes[int(rnd() * 4096)]))
        p -= 1 + int(rnd() * 3)
    p = mid_t - spread // 2 + spread
    for _ in range(3 + int(rnd() * 13)):
        if p >= top:
            break
        asks.append((texts[p], sizes[int(rnd() * 4096)]))
        p += 1 + int(rnd() * 3)
    if rnd() < 0.01:  # an empty side now and then
        asks = []
    if m.venue == "polymarket":
        extra = {"last_trade_price": DecText(texts[mid_t]), "min_order_size": DecText("5"), "neg_risk": False}
        ob_ts = ts_ms - 5 - int(rnd() * 900)
        h = f"{rng.getrandbits(160):040x}"
    else:
        extra = {"size_decimals": 6, "last_trade_price": DecText(texts[mid_t])}
        ob_ts, h = None, None
    return BookRecord(
        venue=m.venue,
        instrument_id=inst.instrument_id,
        poll_key=inst.poll_key,
        market_id=inst.market_id,
        outcome=inst.outcome,
        ts_ms=ts_ms,
        bids=bids,
        asks=asks,
        latency_ms=latency,
        ob_ts_ms=ob_ts,
        hash=h,
        tick_size=m.tick,
        extra=extra,
    )


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def generate(
    data_dir: str | os.PathLike[str],
    *,
    start_ms: int = DEFAULT_START_MS,
    duration_s: float = 7200.0,
    venues: tuple[str, ...] = ("polymarket", "limitless"),
    markets: dict[str, int] | None = None,
    interval_s: dict[str, float] | None = None,
    rotate_minutes: int = 10,
    stats_interval_s: float = 10.0,
    discovery_interval_s: float = 60.0,
    fail_prob: float = 0.004,
    crash: bool = True,
    seed: int = 7,
    record: str = "every_poll",
    repeat_prob: float = 0.0,
) -> Generated:
    """Write a recording under ``data_dir``; return what was written. Deterministic for a seed.

    ``markets``: markets per venue (Polymarket markets have two instruments);
    ``interval_s``: poll interval per venue. Polymarket files are compressed on rotation
    (``compress_closed``), Limitless ones are not (but the crashed file is compressed later).
    ``repeat_prob``: chance that a poll finds the instrument's previous book unchanged (new
    capture and venue times, new hash); ``record``: the writer's ``record`` setting ("changes"
    writes those polls as ``unchanged`` records). The same seed polls the same books either way:
    ``Generated.books`` always holds the full records (what every_poll writes).
    """
    data_dir = Path(data_dir)
    rng = random.Random(seed)
    markets = markets or {"polymarket": 10, "limitless": 6}
    interval_s = interval_s or {"polymarket": 2.0, "limitless": 3.0}
    end_ms = start_ms + int(duration_s * 1000)
    gen = Generated(data_dir, start_ms, end_ms, list(venues))
    for v in venues:
        gen.books[v], gen.gaps[v], gen.stats[v] = [], [], []

    clock = _Clock(start_ms / 1000)
    mono = _Clock(0.0)

    def new_writers(venue: str) -> WriterSet:
        ws = WriterSettings(
            rotate_minutes=rotate_minutes, fsync_interval_s=1e6, compress_closed=(venue == "polymarket")
        )
        return WriterSet(data_dir, ws, clock=clock, mono=mono, buffer_bytes=1 << 16)

    writers = {v: new_writers(v) for v in venues}

    def new_log(v: str) -> BookLog:
        return BookLog(writers[v].get(v, "orderbooks"), v, every_poll=record == "every_poll")

    logs = {v: new_log(v) for v in venues}
    all_markets = {v: _make_markets(v, rng, start_ms, end_ms, markets.get(v, 4)) for v in venues}
    for v in venues:
        gen.instruments[v] = [i for m in all_markets[v] for i in m.instruments]
    by_iid = {i.instrument_id: (m, i) for v in venues for m in all_markets[v] for i in m.instruments}

    # Discovery runs: compute the active set at each run and log the changes.
    active: dict[str, set[str]] = {v: set() for v in venues}
    removed_at: dict[str, int] = {}
    fake_pid = {v: 4000 + k for k, v in enumerate(venues)}

    def discovery_run(now: int) -> None:
        for v in venues:
            cur = {i.instrument_id for m in all_markets[v] if m.listed_ms <= now < m.expires_ms for i in m.instruments}
            added = sorted(cur - active[v])
            gone = sorted(active[v] - cur)
            if not added and not gone and active[v]:
                continue
            recs = [market_record(by_iid[i][1], "added", "rule:btc-eth", now) for i in added]
            recs += [market_record(by_iid[i][1], "removed", "expired", now) for i in gone]
            if recs:
                append_market_records(market_records_path(data_dir, v, now, pid=fake_pid[v]), recs)
            for i in added:
                gen.lifecycle[i] = (now, None)
            for i in gone:
                gen.lifecycle[i] = (gen.lifecycle[i][0], now)
                removed_at[i] = now
            active[v] = cur
            snap = Snapshot(
                venue=v,
                asof_ms=now,
                counts={"instruments": len(cur)},
                instruments=[by_iid[i][1] for i in sorted(cur)],
            )
            write_snapshot(snapshot_path(data_dir, v), snap)

    states: dict[str, _InstState] = {}
    counters = {v: {"ok": 0, "failed": 0, "books_written": 0, "gaps": 0, "requests": 0, "errors": {}} for v in venues}
    cooldown = {venues[0]: (start_ms + int(duration_s * 1000 * 0.42), 25_000)} if venues else {}
    crash_at = {v: start_ms + int(duration_s * 1000 * (0.35 + 0.2 * k)) for k, v in enumerate(venues)} if crash else {}
    crashed: set[str] = set()
    cooled: set[str] = set()
    # off the second grid, so answers captured just before a rotation are written just after it
    next_due = {v: start_ms + 1700 + 300 * k for k, v in enumerate(venues)}
    next_stats = {v: start_ms + int(stats_interval_s * 1000) for v in venues}
    next_disc = start_ms
    pending_compress: list = []

    def write(v: str, stream: str, line: bytes, at_ms: int) -> None:
        clock.t = max(clock.t, at_ms / 1000)
        writers[v].write(v, stream, line)

    t = start_ms
    step = 250  # simulation step, ms
    while t < end_ms:
        if t >= next_disc:
            discovery_run(t)
            next_disc += int(discovery_interval_s * 1000)
        for v in venues:
            events: list[tuple[int, int, str, bytes]] = []  # (write_ms, capture_ms, stream, line)
            cd = cooldown.get(v)
            in_cooldown = cd is not None and cd[0] <= t < cd[0] + cd[1]
            if cd is not None and t >= cd[0] + cd[1] and v not in cooled:
                cooled.add(v)
                gap = {
                    "record_type": "gap", "schema_version": SCHEMA_VERSION, "venue": v, "instrument_id": None,
                    "ts_ms": t, "from_ts_ms": cd[0], "to_ts_ms": t, "reason": "cooldown:rate_limited",
                }
                events.append((t, t, "orderbooks", orjson.dumps(gap)))
            if t >= next_due[v] and not in_cooldown:
                next_due[v] += int(interval_s[v] * 1000)
                if next_due[v] <= t:  # after a cooldown: back on the grid, no burst
                    next_due[v] = t + int(interval_s[v] * 1000)
                for m in all_markets[v]:
                    m.mid = min(0.97, max(0.03, m.mid + rng.gauss(0, 0.004)))
                polled = [
                    iid for iid in sorted(active[v]) if by_iid[iid][0].expires_ms > t
                ]
                counters[v]["requests"] += max(1, len(polled) // 5)
                for iid in polled:
                    m, inst = by_iid[iid]
                    st = states.setdefault(iid, _InstState())
                    cap = t + rng.randint(0, 400)  # answers arrive out of order within a step
                    lat = round(rng.uniform(20, 400), 3)
                    if st.fail_left == 0 and rng.random() < fail_prob:
                        st.fail_left = rng.randint(1, 4)
                    if st.fail_left:
                        st.fail_left -= 1
                        st.failures += 1
                        counters[v]["failed"] += 1
                        kind = rng.choice(["timeout", "server_error"])
                        counters[v]["errors"][kind] = counters[v]["errors"].get(kind, 0) + 1
                        if st.failures == 1:
                            err = {
                                "record_type": "poll_error", "schema_version": SCHEMA_VERSION, "ts_ms": cap,
                                "venue": v, "market_id": inst.market_id, "slug": inst.slug,
                                "instrument_id": iid, "http_status": 503 if kind == "server_error" else None,
                                "latency_ms": lat, "error_type": kind, "consecutive_failures": st.failures,
                                "message": f"simulated {kind}",
                            }
                            events.append((cap + 1, cap, "poll_errors", orjson.dumps(err)))
                        continue
                    if st.failures:
                        gap = {
                            "record_type": "gap", "schema_version": SCHEMA_VERSION, "venue": v,
                            "instrument_id": iid, "ts_ms": cap, "from_ts_ms": st.last_ok_ms, "to_ts_ms": cap,
                            "reason": "timeout", "failures": st.failures,
                        }
                        events.append((cap + 1, cap, "orderbooks", orjson.dumps(gap)))
                        counters[v]["gaps"] += 1
                        st.failures = 0
                    rec = _book(m, inst, rng, cap, lat)
                    if repeat_prob and st.last is not None and rng.random() < repeat_prob:
                        rec.bids, rec.asks, rec.extra = st.last.bids, st.last.asks, st.last.extra
                    st.last = rec
                    events.append((cap + rng.randint(1, 60), cap, "orderbooks", rec))
                    st.last_ok_ms = cap
                    counters[v]["ok"] += 1
                    counters[v]["books_written"] += 1
            if t >= next_stats[v]:
                next_stats[v] += int(stats_interval_s * 1000)
                c = counters[v]
                n_act = len(active[v])
                stats = {
                    "record_type": "poll_stats", "schema_version": SCHEMA_VERSION, "ts_ms": t, "venue": v,
                    "active_instruments": n_act, "requests": c["requests"], "requests_ok": c["requests"],
                    "requests_failed": 0, "submitted": c["ok"] + c["failed"], "ok": c["ok"],
                    "failed": c["failed"], "books_written": c["books_written"], "gaps": c["gaps"],
                    "http_4xx": 0, "http_5xx": c["errors"].get("server_error", 0), "http_429": 0,
                    "timeouts": c["errors"].get("timeout", 0), "errors": dict(c["errors"]),
                    "latency_p50_ms": round(rng.uniform(50, 120), 3), "latency_p95_ms": round(rng.uniform(200, 400), 3),
                    "latency_p99_ms": round(rng.uniform(400, 900), 3),
                    "cooldown_remaining_s": round((cd[0] + cd[1] - t) / 1000, 3) if in_cooldown else 0.0,
                    "cooldown_reason": "rate_limited" if in_cooldown else None,
                    "workers": 16, "inflight_cap": 4, "inflight": 1, "target_interval_s": interval_s[v],
                    "achieved_interval_mean_s": round(interval_s[v] * rng.uniform(1.0, 1.05), 3),
                    "achieved_interval_p50_s": interval_s[v], "achieved_interval_p99_s": round(interval_s[v] * 1.4, 3),
                    "book_age_p50_s": round(interval_s[v] / 2, 3), "book_age_p99_s": round(interval_s[v] * 1.2, 3),
                    "stale_instruments": 0, "expired_dropped": 0, "hash_mismatch": 0, "snapshot_error": None, "writer_error": None,
                    "records_dropped": 0,
                }
                events.append((t, t, "poll_stats", orjson.dumps(stats)))
                gen.stats[v].append(stats)
                counters[v] = {"ok": 0, "failed": 0, "books_written": 0, "gaps": 0, "requests": 0, "errors": {}}
            events.sort(key=lambda e: e[0])
            for w_ms, _cap, stream, line in events:
                if type(line) is BookRecord:
                    clock.t = max(clock.t, w_ms / 1000)
                    logs[v].book(line, None)
                    gen.books[v].append(line.to_json())
                    continue
                write(v, stream, line, w_ms)
                if stream == "orderbooks":
                    gen.gaps[v].append(line)
            if v in crash_at and v not in crashed and t >= crash_at[v]:
                crashed.add(v)
                ws = writers[v]
                ws.flush(fsync=False)  # what the OS had when the process died
                f = ws.get(v, "orderbooks").path
                if f is not None:
                    with open(f, "ab") as fh:
                        fh.write(b'{"record_type":"orderbook","schema_version":1,"venue":"' + v.encode() + b'","instr')
                    gen.torn_lines += 1
                    pending_compress.append(f)
                writers[v] = new_writers(v)  # the old set is abandoned, never closed
                logs[v] = new_log(v)
        clock.t = max(clock.t, t / 1000)
        mono.t += step / 1000
        for ws in writers.values():
            ws.tick()
        t += step

    clock.t = end_ms / 1000
    for ws in writers.values():
        ws.close()
    for f in pending_compress:  # "a later job" compresses the crashed file (torn line inside)
        if f.exists():
            compress_file(f)
    # A crash during compression: X.jsonl.zst complete, X.jsonl not yet removed.
    for v in venues:
        zs = sorted((data_dir / v / "orderbooks").rglob("*.jsonl.zst"))
        if zs:
            import zstandard

            z = zs[len(zs) // 2]
            raw = zstandard.ZstdDecompressor().stream_reader(open(z, "rb")).read()
            z.with_name(z.name[: -len(".zst")]).write_bytes(raw)
            gen.duplicate_pairs += 1
    return gen


def iso(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000)) + f".{ts_ms % 1000:03d}Z"


_SHARED: dict[str, Generated] = {}


def shared(tmp_path_factory, name: str = "default", **kwargs) -> Generated:
    """One recording per pytest session (and ``name``), generated on first use. Read-only:
    tests that modify data must copy it (:func:`copy_of`)."""
    if name not in _SHARED:
        # as the poller writes by default: changes, most polls finding the book as it was
        kwargs = {"record": "changes", "repeat_prob": 0.5, **kwargs}
        _SHARED[name] = generate(tmp_path_factory.mktemp(f"gen-{name}"), **kwargs)
    return _SHARED[name]


def copy_of(gen: Generated, dst: Path) -> Generated:
    """A copy of a recording under ``dst`` (same ground truth)."""
    import dataclasses
    import shutil

    shutil.copytree(gen.data_dir, dst, dirs_exist_ok=True)
    return dataclasses.replace(gen, data_dir=Path(dst))
