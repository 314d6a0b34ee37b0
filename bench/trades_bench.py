"""Trade capture cost: trades/s and CPU per trade on the loop thread, for the three ways a trade
arrives: a Polymarket feed event, a Kalshi REST tape page (1,000 per page), and a duplicate (a
backfill or overlap re-read that is dropped). Real files, the real writer (fsync every second).

    make bench-trades          (BENCH_TRADES=200000 to change the count)
"""

from __future__ import annotations

import os
import queue
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.config.trades import KalshiTradesSettings, PolymarketTradesSettings  # noqa: E402
from collector.model.records import Instrument  # noqa: E402
from collector.store.writer_set import WriterSet  # noqa: E402
from collector.trades.lane import TradesLane  # noqa: E402
from collector.venues.kalshi_trades import KalshiTrades, parse_trade  # noqa: E402
from collector.venues.polymarket_trades import PolymarketTrades, parse_ws_trade  # noqa: E402

N = int(os.environ.get("BENCH_TRADES", "200000"))
TOKENS = 500


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def lane(tmp: Path, venue: str, ts, source) -> tuple[TradesLane, WriterSet]:
    ws = WriterSet(tmp, background_sync=True)
    return TradesLane(venue, ts, source, ws, queue.SimpleQueue(), tmp, "0of1", 6.0), ws


def report(name: str, n: int, wall: float, cpu_s: float, path: Path) -> None:
    size = sum(f.stat().st_size for f in path.rglob("*.jsonl"))
    print(f"{name:<34} {n:>8,} trades  {n / wall:>10,.0f} trades/s  {cpu_s / n * 1e6:>6.1f} µs CPU/trade"
          f"  {size / n:>5.0f} B/trade on disk")


def polymarket_feed(tmp: Path) -> list[dict]:
    tokens = [str(10**76 + i) for i in range(TOKENS)]
    insts = {t: Instrument(venue="polymarket", poll_key=t, market_id=f"0x{i:064x}") for i, t in enumerate(tokens)}
    ln, ws = lane(tmp, "polymarket", PolymarketTradesSettings(), PolymarketTrades(lambda *a: [], "http://x", 500, 1))
    ln.set_instruments(list(insts.values()), time.monotonic())
    ln.stop()
    t0 = int(time.time() * 1000)
    raw = [orjson.dumps({"market": insts[tokens[i % TOKENS]].market_id, "asset_id": tokens[i % TOKENS],
                         "price": f"0.{100 + i % 800}", "size": f"{1 + i % 997}.{i % 100:02d}", "fee_rate_bps": "0",
                         "side": "BUY" if i % 3 else "SELL", "timestamp": str(t0 + i), "event_type": "last_trade_price",
                         "transaction_hash": f"0x{uuid.uuid4().hex}{uuid.uuid4().hex}"}) for i in range(N)]
    msgs = [orjson.loads(r) for r in raw]  # the connection thread parses; the loop thread does the rest
    w0, c0 = time.perf_counter(), cpu()
    for m in msgs:
        rec = parse_ws_trade(m, insts[m["asset_id"]], t0)
        ln.feed_trade(rec)
    ws.tick()
    wall, c = time.perf_counter() - w0, cpu() - c0
    report("polymarket feed (new trades)", N, wall, c, tmp / "polymarket")
    w0, c0 = time.perf_counter(), cpu()
    for m in msgs:
        ln.feed_trade(parse_ws_trade(m, insts[m["asset_id"]], t0))
    wall, c = time.perf_counter() - w0, cpu() - c0
    assert ln.tape.duplicates == N
    print(f"{'  the same again (all duplicates)':<34} {N:>8,} trades  {N / wall:>10,.0f} trades/s  {c / N * 1e6:>6.1f} µs CPU/trade")
    ws.close()
    return msgs


def kalshi_tape(tmp: Path) -> None:
    tickers = [f"KXBTCD-26DEC0117-T{100000 + i * 250}" for i in range(TOKENS)]
    insts = {t: Instrument(venue="kalshi", poll_key=t, market_id=t) for t in tickers}
    ln, ws = lane(tmp, "kalshi", KalshiTradesSettings(), KalshiTrades(lambda *a: {}, 1000, 1))
    ln.set_instruments(list(insts.values()), time.monotonic())
    ln.stop()
    pages = []
    for p in range(N // 1000):
        items = [{"count_fp": f"{1 + j % 50}.{j % 100:02d}", "created_time": f"2026-12-01T10:{p % 60:02d}:{j % 60:02d}.{j:06d}Z",
                  "is_block_trade": False, "no_price_dollars": "0.4400", "taker_book_side": "bid",
                  "taker_outcome_side": "yes" if j % 2 else "no", "taker_side": "yes", "ticker": tickers[j % TOKENS],
                  "trade_id": str(uuid.uuid4()), "yes_price_dollars": "0.5600"} for j in range(1000)]
        pages.append(orjson.dumps({"cursor": "", "trades": items}))
    n = len(pages) * 1000
    w0, c0 = time.perf_counter(), cpu()
    for body in pages:
        for item in orjson.loads(body)["trades"]:
            rec = parse_trade(item, insts, 1)
            ln.tape.add(rec)
    ws.tick()
    wall, c = time.perf_counter() - w0, cpu() - c0
    report("kalshi REST tape (1,000 per page)", n, wall, c, tmp / "kalshi")
    ws.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        polymarket_feed(Path(d))
        kalshi_tape(Path(d))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (the inputs held in memory included)")


if __name__ == "__main__":
    main()
