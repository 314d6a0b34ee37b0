"""CPU per book of the Polymarket hash check (issue 12, item 6), in-process, no network.

Books: the simulator's own bodies (SimState, as served) and, when ../shared/real-payloads is
next to the project, the captured real REST books. For each set it prints CPU microseconds per
book (time.process_time, best of BENCH_REPEAT runs) of:

  parse            orjson.loads of the served bytes (the fetch path without the check)
  parse+check      the same plus polyhash.check (what the fetch thread now does)
  check            polyhash.check alone (the added cost, paid on the fetch thread)
  normalize        PolymarketClient.normalize of a CheckedBook (the loop thread; unchanged work)

    .venv/bin/python bench/hash_bench.py          BENCH_BOOKS=2000 BENCH_REPEAT=5
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config.settings import PolymarketSettings  # noqa: E402
from collector.model.clock import now_ms  # noqa: E402
from collector.model.records import Instrument  # noqa: E402
from collector.sim.state import SimState  # noqa: E402
from collector.venues import polyhash  # noqa: E402
from collector.venues.polyhash import CheckedBook  # noqa: E402
from collector.venues.polymarket import PolymarketClient  # noqa: E402

N = int(os.environ.get("BENCH_BOOKS", "2000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def sim_books(n: int) -> list[bytes]:
    st = SimState(seed=3, markets=max(50, n // 2), epoch=None, tick_s=1.0, change_prob=0.3)
    now = now_ms()
    poly = st.polymarket
    out = [b for t in poly.tokens if (b := poly.book_bytes(t, now)) is not None]
    return out[:n]


def real_books() -> list[bytes]:
    d = ROOT.parent / "shared" / "real-payloads" / "polymarket"
    names = ("book_metamask_spurs.json", "book_nautilus_empty_ask.json", "book_polypy_2024_six_fields.json")
    if not all((d / n).is_file() for n in names):
        return []
    return [orjson.dumps(orjson.loads((d / n).read_bytes())) for n in names]  # compact, as served


def cpu_us_per(fn, items: list, repeat: int = REPEAT) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for x in items:
            fn(x)
        best = min(best, time.process_time() - t0)
    return best / len(items) * 1e6


def run(name: str, raws: list[bytes]) -> None:
    if not raws:
        print(f"{name}: no books")
        return
    reps = max(1, 2000 // len(raws))
    raws = raws * reps  # small sets: enough calls for a stable timer
    bodies = [orjson.loads(r) for r in raws]
    assert all(polyhash.check(b) for b in bodies), "every book must verify"
    client = PolymarketClient(PolymarketSettings())
    insts = [Instrument(venue="polymarket", poll_key=b["asset_id"], market_id=b["market"], outcome="Yes") for b in bodies]
    checked = [CheckedBook(b, True) for b in bodies]
    pairs = list(zip(insts, checked))
    levels = sum(len(b["bids"]) + len(b["asks"]) for b in bodies) / len(bodies)
    size = sum(map(len, raws)) / len(raws)
    parse = cpu_us_per(orjson.loads, raws)
    parse_check = cpu_us_per(lambda r: polyhash.check(orjson.loads(r)), raws)
    check = cpu_us_per(polyhash.check, bodies)
    norm = cpu_us_per(lambda p: client.normalize(p[0], p[1], 1, 1.0), pairs)
    print(f"{name}: {len(set(raws))} books, {levels:.1f} levels/book, {size:.0f} bytes/book")
    print(f"  parse          {parse:7.2f} us/book   (fetch thread, without the check)")
    print(f"  parse+check    {parse_check:7.2f} us/book   (fetch thread, with the check)")
    print(f"  check          {check:7.2f} us/book   (added per book)")
    print(f"  normalize      {norm:7.2f} us/book   (loop thread, unchanged)")
    client.close()


def main() -> int:
    run("sim", sim_books(N))
    run("real", real_books())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
