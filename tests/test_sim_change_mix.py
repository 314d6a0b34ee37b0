"""``collector sim --change-mix``: per-book change probabilities, chosen per book from its seed
and key; without the option every book draws exactly what it drew before."""

from __future__ import annotations

import random

import pytest

from collector.cli.main import build_parser
from collector.sim.clock import LazyBook, SimClock, _geom, parse_change_mix
from collector.sim.server import build
from collector.sim.walk import Walk

T0 = 1_790_000_000.0
TICK_MS = 1000


def _books(clock: SimClock, n: int) -> list[LazyBook]:
    return [LazyBook(clock, f"poly:{i}", 1000) for i in range(n)]


def _changes_per_tick(book: LazyBook, ticks: int) -> float:
    seen = [0]

    def count(*_a: object) -> None:
        seen[0] += 1

    book.listener = count  # reports every real change (a no-op draw is not one)
    book.advance(book.next_ms + ticks * TICK_MS)
    return seen[0] / ticks


def test_parse_change_mix():
    assert parse_change_mix(None) is None and parse_change_mix(" ") is None
    assert parse_change_mix("0.05:1.0, 0.95:0.02") == ((0.05, 1.0), (0.95, 0.02))
    for bad in ("0.5:1", "0.5:1,0.4:0.1", "1:1.5", "0:1,1:1", "a:b", "1"):
        with pytest.raises(ValueError):
            parse_change_mix(bad)


def test_mix_shares_and_rates():
    clock = SimClock(7, T0, 1.0, 0.3, T0, parse_change_mix("0.05:1.0,0.95:0.02"))
    books = _books(clock, 4000)
    busy = [b for b in books if b.p == 1.0]
    quiet = [b for b in books if b.p == 0.02]
    assert len(busy) + len(quiet) == len(books)
    assert 0.04 <= len(busy) / len(books) <= 0.06, len(busy)
    ticks = 600
    busy_rate = sum(_changes_per_tick(b, ticks) for b in busy[:40]) / 40
    quiet_rate = sum(_changes_per_tick(b, ticks) for b in quiet[:400]) / 400
    assert busy_rate > 0.8, busy_rate  # a change every tick, less the draws that move nothing
    assert 0.014 <= quiet_rate <= 0.026, quiet_rate
    # deterministic: the same seed and keys give the same classes, another seed others
    again = _books(SimClock(7, T0, 1.0, 0.3, T0, parse_change_mix("0.05:1.0,0.95:0.02")), 4000)
    assert [b.p for b in again] == [b.p for b in books]
    other = _books(SimClock(8, T0, 1.0, 0.3, T0, parse_change_mix("0.05:1.0,0.95:0.02")), 4000)
    assert [b.p for b in other] != [b.p for b in books]


def test_default_draws_are_unchanged():
    """Without a mix a book's RNG makes the draws it always made (existing seeds reproduce)."""
    clock = SimClock(3, T0, 1.0, 0.3, T0)
    book = LazyBook(clock, "lim:abc", 1000)
    rng = random.Random("3:book:lim:abc")
    walk = Walk(rng, 1000)
    phase = rng.randrange(TICK_MS)
    ts = clock.t0_ms - rng.randint(1_000, 900_000)
    nxt = clock.t0_ms + phase + TICK_MS * _geom(rng, 0.3)
    assert (book.p, book.ts_ms, book.next_ms, book.walk.bids, book.walk.asks) == (0.3, ts, nxt, walk.bids, walk.asks)
    assert book.rng.getstate() == rng.getstate()
    # a mix whose every class has the default's probability moves every book the same way
    mixed = LazyBook(SimClock(3, T0, 1.0, 0.3, T0, parse_change_mix("0.5:0.3,0.5:0.3")), "lim:abc", 1000)
    later = clock.t0_ms + 300 * TICK_MS
    book.advance(later)
    mixed.advance(later)
    assert (mixed.ts_ms, mixed.next_ms, mixed.walk.bids) == (book.ts_ms, book.next_ms, book.walk.bids)


def test_cli_flag_reaches_the_books():
    p = build_parser()
    sim = build(p.parse_args(["sim", "--change-mix", "0.1:1,0.9:0"]))
    assert sim.state.clock.change_mix == ((0.1, 1.0), (0.9, 0.0))
    assert build(p.parse_args(["sim"])).state.clock.change_mix is None
    with pytest.raises(SystemExit):
        p.parse_args(["sim", "--change-mix", "0.1:1"])
