"""The trade tape of each book: every trade its walk made, in order, bounded in memory.

``collector.sim.clock.LazyBook`` appends to its book's tape on both advance paths (the fast
one and the reporting one), so REST, the feeds and the ground truth (``/_sim/trades``) read
the same trades whoever made the book catch up. An entry is one packed int (about 50 bytes
with its deque slot instead of ~180 for a tuple), decoded into a ``Trade`` on the way out.

Bounds: a tape keeps at most ``per_book`` trades, and all tapes together about ``budget``:
with many tapes each keeps ``budget // tapes`` (never fewer than ``MIN_KEEP``), the oldest
going first. Ids (transaction hash, trade id, event id) are digests of seed, book key and the
trade's sequence number, so a seed reproduces them and nothing is drawn from an RNG.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

MIN_KEEP = 50
DEFAULT_PER_BOOK = 2000
DEFAULT_BUDGET = 500_000

# Packed layout, low bits first: at_bid (1), size in cents (30), grid n (15), price ticks (15),
# due ms (43), then the sequence number in the remaining high bits.
_S_SIZE, _S_N, _S_P, _S_TS, _S_SEQ = 1, 31, 46, 61, 104
_M15, _M30, _M43 = (1 << 15) - 1, (1 << 30) - 1, (1 << 43) - 1


class Trade(NamedTuple):
    """One walk trade. ``price`` in ticks of a grid of ``n`` per 1.0 (the YES side); ``cents``
    the size taken in 1/100 shares; ``at_bid``: the taker sold into the bid (else bought the ask)."""

    seq: int
    ts_ms: int
    price: int
    n: int
    cents: int
    at_bid: bool


def pack(seq: int, ts_ms: int, price: int, n: int, cents: int, at_bid: bool) -> int:
    return (seq << _S_SEQ) | (ts_ms << _S_TS) | (price << _S_P) | (n << _S_N) | (cents << _S_SIZE) | int(at_bid)


def unpack(v: int) -> Trade:
    return Trade(v >> _S_SEQ, (v >> _S_TS) & _M43, (v >> _S_P) & _M15, (v >> _S_N) & _M15, (v >> _S_SIZE) & _M30,
                 bool(v & 1))


class TapeBudget:
    """The bounds every tape of one simulator shares, and how many tapes exist."""

    def __init__(self, seed: int, per_book: int = DEFAULT_PER_BOOK, budget: int = DEFAULT_BUDGET) -> None:
        self.seed = seed
        self.per_book = max(1, per_book)
        self.budget = max(1, budget)
        self.tapes = 0

    def keep(self) -> int:
        """How many trades one tape may hold now."""
        return min(self.per_book, max(MIN_KEEP, self.budget // max(1, self.tapes)))


class Tape:
    __slots__ = ("key", "entries", "seq", "budget")

    def __init__(self, key: str, budget: TapeBudget) -> None:
        self.key = key
        self.entries: deque[int] = deque()
        self.seq = 0  # trades ever made (the last one's sequence number)
        self.budget = budget
        budget.tapes += 1

    def __del__(self) -> None:  # a closed market's book goes, and its share of the budget with it
        self.budget.tapes -= 1

    def add(self, ts_ms: int, price: int, n: int, cents: int, at_bid: bool) -> None:
        self.seq += 1
        e = self.entries
        e.append(pack(self.seq, ts_ms, price, n, cents, at_bid))
        keep = self.budget.keep()
        while len(e) > keep:
            e.popleft()

    def trades(self) -> list[Trade]:
        """Oldest first."""
        return [unpack(v) for v in self.entries]

    def newest(self) -> Iterator[Trade]:
        """Newest first, decoded as it goes (a page needs only its first few). The tape must not
        change while this runs: callers consume it before the event loop runs again."""
        for v in reversed(self.entries):
            yield unpack(v)

    def last(self) -> Trade | None:
        return unpack(self.entries[-1]) if self.entries else None

    def digest(self, seq: int, what: str = "") -> bytes:
        """32 bytes standing for trade ``seq`` of this book (``what`` tells uses apart)."""
        return hashlib.sha256(f"{self.budget.seed}:{self.key}:{seq}:{what}".encode()).digest()


def tx_hash(tape: Tape, seq: int) -> str:
    """A Polymarket / Limitless transaction hash: 0x and 64 hex digits."""
    return "0x" + tape.digest(seq).hex()


def uuid_text(tape: Tape, seq: int) -> str:
    """A Kalshi ``trade_id``: UUID-shaped hex (8-4-4-4-12), no version bits, as the captured ones."""
    h = tape.digest(seq).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def wallet(tape: Tape, seq: int, what: str = "taker") -> str:
    return "0x" + tape.digest(seq, what).hex()[:40]


def bit(tape: Tape, seq: int, what: str) -> int:
    """A stable 0..255 draw for trade ``seq`` (which token printed it, sub-ms time, ...)."""
    return tape.digest(seq, what)[0]
