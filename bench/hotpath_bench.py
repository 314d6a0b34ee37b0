"""The REST hot path replayed on one thread: CPU per book without HTTP or thread noise (``make bench-hotpath``).

``make bench`` measures the whole poller process, whose CPU per book moves by 10-15 % between
runs on a shared 2-core machine (the simulator, the fetch threads and the OS share it). To tell a
2 µs change from noise this bench takes the part that is ours and repeatable:

1. capture: the simulator (same options as ``make bench``) is polled for BENCH_ROUNDS rounds at
   1 Hz with ``POST /books`` over HTTP, and every token's reply item is kept, round by round;
2. replay: a real :class:`PolymarketClient` (its HTTP call swapped for the captured bytes) and a
   real :class:`Lane` writing to a temp data dir run the rounds on this thread, with the poller's
   garbage-collector settings: ``submit_due`` -> ``fetch_books`` (reply split, repeats, hash
   check) -> ``complete`` (markers, normalization, JSON, the writer) -> ``writers.tick()``.

It prints CPU µs per book (process time) for the fetch part and the loop part, over the rounds
after the first two (which write every book in full), best and median of BENCH_REPEATS replays,
and the share of unchanged polls. HTTP itself (urllib3, sockets) is not in these figures; the
full process figure is ``make bench``'s.

Environment: BENCH_INSTRUMENTS=5000, BENCH_ROUNDS=12, BENCH_REPEATS=5, BENCH_CHANGE_MIX=""
(the simulator's --change-mix), BENCH_CAPTURE=path (keep the captured replies there and replay
them on later runs, to compare two versions of the code on the same input), BENCH_PROFILE=1 (cProfile of one replay, top 25 by own time).
"""

from __future__ import annotations

import cProfile
import gc
import os
import pickle
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import orjson
import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from poller_bench import env_num, markets_for, pick_instruments  # noqa: E402

from collector.config.settings import PolymarketSettings, load_settings  # noqa: E402
from collector.model.clock import now_ms  # noqa: E402
from collector.poller.lane import Done, Lane  # noqa: E402
from collector.poller.loop import quiet_gc  # noqa: E402
from collector.sim.testing import run_sim  # noqa: E402
from collector.store.writer_set import WriterSet  # noqa: E402
from collector.venues import polymarket_reply as reply  # noqa: E402
from collector.venues.polymarket import PolymarketClient  # noqa: E402

WARM_ROUNDS = 2
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def capture(clob_url: str, keys: list[str], rounds: int, batch: int) -> list[dict[str, bytes]]:
    """Every token's ``/books`` item, one dict per 1 s round."""
    http = urllib3.PoolManager()
    out: list[dict[str, bytes]] = []
    t0 = time.monotonic()
    for r in range(rounds):
        got: dict[str, bytes] = {}
        for i in range(0, len(keys), batch):
            body = orjson.dumps([{"token_id": k} for k in keys[i:i + batch]])
            resp = http.request("POST", f"{clob_url}/books", body=body, headers={"Content-Type": "application/json"})
            for item in _ITEMS.decode(resp.data):
                raw = bytes(item)
                got[reply.head(raw).asset_id] = raw
        out.append(got)
        time.sleep(max(0.0, t0 + r + 1 - time.monotonic()))
    return out


class _Replayed:
    """Stands in for the client's HTTP pool: answers ``POST /books`` from the current round."""

    def __init__(self, rounds: list[dict[str, bytes]]):
        self.rounds, self.r = rounds, 0

    def request(self, method: str, url: str, *, body: bytes | None = None, params=None) -> tuple[bytes, int, float]:
        got = self.rounds[self.r]
        keys = [t["token_id"] for t in orjson.loads(body)]
        return b"[" + b",".join(got[k] for k in keys if k in got) + b"]", now_ms(), 50.0


class _Inline:
    """A fetch pool that runs the job at once, on this thread, and times it."""

    def __init__(self) -> None:
        self.fetch_s = 0.0

    def submit(self, fn, *args) -> None:
        t0 = time.process_time()
        fn(*args)
        self.fetch_s += time.process_time() - t0


def replay(rounds: list[dict[str, bytes]], insts, data_dir: Path, profile: cProfile.Profile | None = None):
    """(fetch µs/book, loop µs/book, unchanged share) over the rounds after the warm ones."""
    settings = load_settings(data_dir=str(data_dir), venues=["polymarket"])
    vs = settings.venue("polymarket").model_copy(update={"rate_requests": 1_000_000, "max_workers": 10_000,
                                                          "inflight_start": 10_000, "inflight_ceiling": 10_000})
    client = PolymarketClient(PolymarketSettings(clob_url="http://127.0.0.1:9"))
    client._books.close()
    client._books = source = _Replayed(rounds)
    pool = _Inline()
    writers = WriterSet(data_dir, settings.writer)
    lane = Lane("polymarket", client, vs, settings.poller, pool, writers)
    lane.set_instruments(insts, now_ms(), 0.0)
    done: list[Done] = []

    def fetch(ln: Lane, keys) -> None:
        done.append(Done(ln, keys, ln.client.fetch_books(keys), None, now))

    quiet_gc(settings.poller.gc_threshold)
    loop_s = fetch_s = 0.0
    books = unchanged = 0
    for r in range(len(rounds)):
        source.r = r
        now = r * 1.0 + 0.5
        measured = r >= WARM_ROUNDS
        if measured and profile is not None:
            profile.enable()
        pool.fetch_s = 0.0
        t0 = time.process_time()
        lane.submit_due(now, fetch)
        while done:
            lane.complete(done.pop(0), now)
            lane.submit_due(now, fetch)
        writers.tick()
        t = time.process_time() - t0
        if profile is not None:
            profile.disable()
        changed, full, unch = lane.log.counts()
        if measured:
            fetch_s += pool.fetch_s
            loop_s += t - pool.fetch_s
            books += full + unch
            unchanged += unch
    writers.close()
    gc.unfreeze()
    return fetch_s / books * 1e6, loop_s / books * 1e6, unchanged / books


def main() -> int:
    n = int(env_num("BENCH_INSTRUMENTS", 5000))
    n_rounds = int(env_num("BENCH_ROUNDS", 12))
    repeats = int(env_num("BENCH_REPEATS", 5))
    mix = ["--change-mix", os.environ["BENCH_CHANGE_MIX"]] if os.environ.get("BENCH_CHANGE_MIX") else []
    batch = PolymarketSettings().books_batch_size
    kept = Path(os.environ["BENCH_CAPTURE"]) if os.environ.get("BENCH_CAPTURE") else None
    if kept is not None and kept.exists():  # the same replies again: A/B runs of two versions of the code
        insts, rounds = pickle.loads(kept.read_bytes())
    else:
        with run_sim("--markets", str(markets_for(n)), "--latency-ms", "0", "--no-rate-limit", "--seed", "1",
                     "--log-size", "1000", *mix) as sim:
            insts = pick_instruments(sim, n, now_ms() + 3_600_000)
            rounds = capture(sim.clob_url, [i.poll_key for i in insts], n_rounds, batch)
        if kept is not None:
            kept.write_bytes(pickle.dumps((insts, rounds)))
    print(f"hot-path bench: {len(insts)} polymarket instruments, {len(rounds)} rounds of POST /books "
          f"({batch} per request), {repeats} replays", file=sys.stderr, flush=True)
    figures = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="hotpath-") as d:
            figures.append(replay(rounds, insts, Path(d)))
    if os.environ.get("BENCH_PROFILE") == "1":
        prof = cProfile.Profile()
        with tempfile.TemporaryDirectory(prefix="hotpath-") as d:
            replay(rounds, insts, Path(d), prof)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    fetch = [f for f, _, _ in figures]
    loop = [lp for _, lp, _ in figures]
    both = [f + lp for f, lp, _ in figures]
    print(f"{'us/book':<10}{'best':>8}{'median':>8}")
    for name, xs in (("fetch", fetch), ("loop", loop), ("total", both)):
        print(f"{name:<10}{min(xs):8.2f}{statistics.median(xs):8.2f}")
    print(f"unchanged_share {figures[0][2]:.3f}")
    print(orjson.dumps({"fetch_us_per_book": round(min(fetch), 2), "loop_us_per_book": round(min(loop), 2),
                        "total_us_per_book": round(min(both), 2), "unchanged_share": round(figures[0][2], 3),
                        "instruments": len(insts), "rounds": len(rounds)}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
