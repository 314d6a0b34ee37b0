"""The trade capture's bookkeeping on real files: every trade once, across re-reads, feed outages,
restarts (clean and killed), failing and truncated fetches; gaps that say what was backfilled.

The venue is a tape in memory behind the TradesSource protocol (the HTTP parsers have their own
tests against real payloads, and the end-to-end tests run the simulator)."""

from __future__ import annotations

import queue
import time

import orjson
import pytest

from collector.config.trades import VenueTradesSettings
from collector.model.errors import ServerError
from collector.model.records import Instrument
from collector.model.trade_records import TradeRecord
from collector.store.files import file_lines, jsonl_files
from collector.store.writer_set import WriterSet
from collector.trades.lane import _GAP_TRIES, TradesLane
from collector.venues.trades import TradeFetch

VENUE = "polymarket"


class Tape:
    """A venue trades endpoint: trades by scope, newest first, ``limit`` per fetch."""

    def __init__(self, per_market: bool, limit: int = 10_000) -> None:
        self.per_market = per_market
        self.trades: list[tuple[str, int, str]] = []  # (scope, venue ms, key)
        self.limit = limit
        self.fail = 0  # the next N fetches fail
        self.calls: list[tuple[str, int]] = []

    def scope_of(self, inst: Instrument) -> str:
        return inst.market_id if self.per_market else ""

    def trade(self, scope: str, when: int, key: str) -> TradeRecord:
        self.trades.append((scope, when, key))
        return _rec(scope, when, key, "ws")

    def fetch(self, scope, insts, since_ms):
        self.calls.append((scope, since_ms))
        if self.fail:
            self.fail -= 1
            return TradeFetch([], None, error=ServerError("HTTP 503", venue=VENUE))
        mine = sorted((t for t in self.trades if (t[0] == scope or not self.per_market) and t[1] >= since_ms),
                      key=lambda t: -t[1])
        page = mine[: self.limit]
        covered = since_ms if len(mine) <= self.limit else page[-1][1]
        return TradeFetch([_rec(s, w, k, "rest") for s, w, k in page], covered, pages=1)


def _rec(scope: str, when: int, key: str, source: str) -> TradeRecord:
    return TradeRecord(VENUE, f"{VENUE}:tok-{scope}", int(time.time() * 1000), when, key, "0.5", "1", "buy", source=source)


def _inst(scope: str) -> Instrument:
    return Instrument(venue=VENUE, poll_key=f"tok-{scope}", market_id=scope)


class Run:
    """One recorder run: a lane on a data directory, driven like the poller's loop drives it."""

    def __init__(self, tmp, tape: Tape, feed: bool = False, **settings) -> None:
        self.ws = WriterSet(tmp, background_sync=False)
        self.out: queue.SimpleQueue = queue.SimpleQueue()
        ts = VenueTradesSettings(**{"overlap_s": 1.0, "poll_interval_s": 0.05, **settings})
        self.lane = TradesLane(VENUE, ts, tape, self.ws, self.out, tmp, "0of1", safety_s=0.5, feed=feed)
        self.lane.save_every_s = 0.2

    def start(self, scopes: list[str]) -> Run:
        self.lane.set_instruments([_inst(s) for s in scopes], time.monotonic())
        return self

    def pump(self, seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.lane.tick(time.monotonic())
            try:
                ev = self.out.get(timeout=0.02)
            except queue.Empty:
                continue
            ev.target.on_event(ev, time.monotonic())
        self.ws.tick()

    def close(self) -> None:
        self.lane.stop()
        self.lane.join()
        while not self.out.empty():
            ev = self.out.get()
            ev.target.on_event(ev, time.monotonic())
        self.lane.close()
        self.ws.close()

    def kill(self) -> None:
        """A kill -9: what the writer handed to the OS stays, nothing else runs."""
        self.lane.stop()
        for w in self.ws._writers.values():
            w.flush()


def records(tmp) -> list[dict]:
    out = []
    for part in sorted((tmp / VENUE / "trades").glob("date=*")):
        for f in jsonl_files(part):
            out += [orjson.loads(line) for line in file_lines(f)]
    return out


def trades(tmp) -> list[str]:
    return [r["key"] for r in records(tmp) if r["record_type"] == "trade"]


def gaps(tmp) -> list[dict]:
    return [r for r in records(tmp) if r["record_type"] == "gap"]


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_polled_tape_records_every_trade_once_although_every_poll_re_reads_the_overlap(tmp_path):
    tape = Tape(per_market=False)
    run = Run(tmp_path, tape, rest_poll=True).start(["a", "b"])
    for i in range(30):
        tape.trade("", now_ms() - 200, f"k{i}")
        run.pump(0.03)
    run.pump(0.3)
    run.close()
    assert sorted(trades(tmp_path)) == sorted(f"k{i}" for i in range(30))
    assert len(tape.calls) > 5 and gaps(tmp_path) == []
    assert run.lane.tape.duplicates > 0  # the overlap was read again, and dropped


@pytest.mark.parametrize("stop", ["close", "kill"])
def test_a_restart_backfills_the_downtime_as_a_gap_and_repeats_nothing(tmp_path, stop):
    tape = Tape(per_market=True)
    run = Run(tmp_path, tape, rest_poll=False).start(["m1", "m2"])
    for i in range(5):  # the feed brings these
        run.lane.feed_trade(tape.trade("m1", now_ms() - 50, f"live{i}"))
    run.pump(0.5)  # state saves
    getattr(run, stop)()
    down_from = now_ms()  # it was not alive after this
    for i in range(4):  # while nothing runs
        tape.trade("m1" if i % 2 else "m2", now_ms(), f"missed{i}")
        time.sleep(0.01)
    run2 = Run(tmp_path, tape, rest_poll=False).start(["m1", "m2"])
    run2.pump(0.5)
    run2.close()
    keys = trades(tmp_path)
    assert sorted(keys) == sorted([f"live{i}" for i in range(5)] + [f"missed{i}" for i in range(4)])
    g = gaps(tmp_path)
    assert {x["instrument_id"] for x in g} == {f"{VENUE}:tok-m1", f"{VENUE}:tok-m2"}
    assert all(x["reason"] == "restart" and x["backfilled"] is True for x in g)
    # the gap starts no later than the first run stopped, and ends after it
    assert all(x["from_ts_ms"] <= down_from and x["to_ts_ms"] >= down_from for x in g)


def test_a_feed_outage_is_a_gap_filled_from_the_tape_with_the_duplicates_dropped(tmp_path):
    tape = Tape(per_market=True)
    run = Run(tmp_path, tape, rest_poll=False).start(["m1"])
    iid = f"{VENUE}:tok-m1"
    run.lane.feed_trade(tape.trade("m1", now_ms(), "before"))
    down = now_ms()
    run.lane.feed_down(iid, down)
    tape.trade("m1", now_ms() + 1, "during1")
    tape.trade("m1", now_ms() + 2, "during2")
    time.sleep(0.02)
    run.lane.feed_up(iid, now_ms(), time.monotonic())
    run.lane.feed_trade(_rec("m1", tape.trades[-1][1], "during2", "ws"))  # the feed replays one
    run.pump(0.3)
    run.close()
    assert sorted(trades(tmp_path)) == ["before", "during1", "during2"]
    (g,) = gaps(tmp_path)
    assert g["reason"] == "feed_down" and g["backfilled"] is True and g["from_ts_ms"] == down


class FedTape(Tape):
    from_feed = True  # the venue's feed carries its trades (Polymarket)


def test_a_fed_instrument_is_owed_its_trades_from_the_start_to_its_first_snapshot(tmp_path):
    """The feed carries an instrument's trades only once it is subscribed: what traded between the
    recorder starting and that first book snapshot is fetched, and said in a feed_start gap."""
    tape = FedTape(per_market=True)
    run = Run(tmp_path, tape, feed=True, rest_poll=False).start(["m1", "m2"])
    start = run.lane.start_ms
    tape.trade("m1", now_ms(), "before-subscribed")  # the feed never brings it
    time.sleep(0.02)
    snap = now_ms()
    for m in ("m1", "m2"):
        run.lane.feed_up(f"{VENUE}:tok-{m}", snap, time.monotonic())
    run.lane.feed_trade(tape.trade("m1", now_ms(), "live"))
    run.pump(0.4)
    run.lane.feed_up(f"{VENUE}:tok-m1", now_ms(), time.monotonic())  # a later snapshot owes nothing
    run.pump(0.2)
    run.close()
    assert sorted(trades(tmp_path)) == ["before-subscribed", "live"]
    g = gaps(tmp_path)
    assert sorted((x["instrument_id"], x["reason"], x["from_ts_ms"], x["to_ts_ms"], x["backfilled"]) for x in g) == [
        (f"{VENUE}:tok-{m}", "feed_start", start, snap, True) for m in ("m1", "m2")]
    assert [s["feeds_down"] for s in [run.lane.stats(time.monotonic())]] == [0]


def test_a_fed_restart_is_owed_from_the_last_run_to_the_first_snapshot(tmp_path):
    tape = FedTape(per_market=True)
    run = Run(tmp_path, tape, feed=True, rest_poll=False).start(["m1"])
    iid = f"{VENUE}:tok-m1"
    run.lane.feed_up(iid, now_ms(), time.monotonic())
    run.pump(0.5)  # state saves
    run.close()
    stopped = now_ms()
    tape.calls.clear()
    tape.trade("m1", now_ms(), "while-down")
    run2 = Run(tmp_path, tape, feed=True, rest_poll=False).start(["m1"])
    run2.pump(0.2)
    assert tape.calls == []  # nothing fetched before the feed is up: the fetch then covers up to it
    tape.trade("m1", now_ms(), "before-subscribed")
    snap = now_ms()
    run2.lane.feed_up(iid, snap, time.monotonic())
    run2.pump(0.4)
    run2.close()
    assert sorted(trades(tmp_path)) == ["before-subscribed", "while-down"]
    first, g = gaps(tmp_path)
    assert first["reason"] == "feed_start"  # the first run's own start
    assert g["reason"] == "restart" and g["backfilled"] is True and g["from_ts_ms"] <= stopped and g["to_ts_ms"] == snap
    assert len(tape.calls) == 1


def test_a_fed_instrument_whose_feed_never_came_up_is_owed_by_the_next_start(tmp_path):
    tape = FedTape(per_market=True)
    run = Run(tmp_path, tape, feed=True, rest_poll=False).start(["m1"])
    start = run.lane.start_ms
    run.pump(0.3)
    assert run.lane.stats(time.monotonic())["feeds_down"] == 1
    run.close()
    tape.trade("m1", start + 1, "never-seen")
    run2 = Run(tmp_path, tape, feed=True, rest_poll=False).start(["m1"])
    run2.lane.feed_up(f"{VENUE}:tok-m1", now_ms(), time.monotonic())
    run2.pump(0.4)
    run2.close()
    assert trades(tmp_path) == ["never-seen"]
    (g,) = gaps(tmp_path)
    assert g["reason"] == "restart" and g["from_ts_ms"] <= start and g["backfilled"] is True


def test_a_fetch_that_keeps_failing_leaves_a_gap_that_says_not_backfilled(tmp_path):
    tape = Tape(per_market=True)
    tape.fail = 100
    run = Run(tmp_path, tape, rest_poll=False, poll_interval_s=0.01).start(["m1"])
    iid = f"{VENUE}:tok-m1"
    run.lane.feed_down(iid, now_ms())
    run.lane.feed_up(iid, now_ms() + 5, time.monotonic())
    run.pump(1.5)
    run.close()
    assert len(tape.calls) == _GAP_TRIES
    (g,) = gaps(tmp_path)
    assert g["reason"] == "feed_down" and g["backfilled"] is False


def test_a_failure_then_success_backfills(tmp_path):
    tape = Tape(per_market=True)
    tape.fail = 1
    run = Run(tmp_path, tape, rest_poll=False, poll_interval_s=0.01).start(["m1"])
    iid = f"{VENUE}:tok-m1"
    run.lane.feed_down(iid, now_ms())
    tape.trade("m1", now_ms() + 1, "during")
    run.lane.feed_up(iid, now_ms() + 5, time.monotonic())
    run.pump(0.5)
    run.close()
    assert trades(tmp_path) == ["during"]
    (g,) = gaps(tmp_path)
    assert g["backfilled"] is True


def test_more_trades_than_a_fetch_pages_through_leave_a_backlog_gap(tmp_path):
    tape = Tape(per_market=False, limit=3)
    t0 = now_ms()
    for i in range(10):
        tape.trade("", t0 + i, f"k{i}")
    run = Run(tmp_path, tape, rest_poll=True, first_lookback_s=5.0, poll_interval_s=5.0).start(["a"])
    run.pump(0.3)
    run.close()
    assert sorted(trades(tmp_path)) == ["k7", "k8", "k9"]  # the newest page
    (g,) = gaps(tmp_path)
    assert g["reason"] == "trades_backlog" and g["backfilled"] is False and g["instrument_id"] is None
    assert g["to_ts_ms"] == t0 + 7 and g["from_ts_ms"] < t0


def test_trades_the_writer_dropped_are_fetched_again_once_it_writes(tmp_path):
    """A full disk: the writer refuses, the trades of those turns are not taken as recorded."""
    tape = Tape(per_market=True)
    run = Run(tmp_path, tape, rest_poll=False).start(["m1"])
    run.lane.feed_trade(tape.trade("m1", now_ms(), "ok1"))
    run.pump(0.1)
    w = run.lane.tape.records
    real = w._append
    w._append = lambda line: (setattr(w.stats, "records_dropped", w.stats.records_dropped + 1),
                              setattr(w.stats, "failing", True))[0] or False  # ENOSPC, as the writer counts it
    run.lane.feed_trade(tape.trade("m1", now_ms(), "lost1"))
    run.pump(0.1)
    w._append = real
    w.stats.failing = False
    run.lane.feed_trade(tape.trade("m1", now_ms(), "ok2"))
    run.pump(0.5)
    run.close()
    assert sorted(set(trades(tmp_path))) == ["lost1", "ok1", "ok2"]
    (g,) = gaps(tmp_path)
    assert g["reason"] == "write_failed" and g["backfilled"] is True


def test_a_downtime_longer_than_the_look_back_is_a_gap_that_says_not_backfilled(tmp_path):
    tape = Tape(per_market=False)
    run = Run(tmp_path, tape, rest_poll=True).start(["a"])
    run.pump(0.2)
    run.close()
    state = next((tmp_path / VENUE / "state").glob("trades.*.json"))
    old = now_ms() - 7_200_000  # the last run was alive two hours ago
    state.write_bytes(orjson.dumps({"alive_ms": old, "marks": {"": old}}))
    tape.trade("", now_ms() - 1000, "recent")
    run2 = Run(tmp_path, tape, rest_poll=True, max_backfill_s=60).start(["a"])
    run2.pump(0.3)
    run2.close()
    assert trades(tmp_path) == ["recent"]
    (g,) = gaps(tmp_path)
    assert (g["reason"], g["backfilled"], g["from_ts_ms"], g["instrument_id"]) == ("restart", False, old, None)
    assert min(since for _, since in tape.calls[1:]) >= now_ms() - 61_000 - 2_000  # never asked beyond the look-back


def test_a_feed_venue_polls_its_tape_only_when_asked(tmp_path):
    """Polymarket's trades come from its feed; with the stream off, rest_poll makes the data API the source."""
    tape = Tape(per_market=True)
    tape.from_feed = True
    run = Run(tmp_path, tape, rest_poll=True).start(["m1"])  # no feed (the stream is off)
    tape.trade("m1", now_ms(), "t1")
    run.pump(0.3)
    run.close()
    assert trades(tmp_path) == ["t1"] and len(tape.calls) >= 2
    fed = TradesLane(VENUE, VenueTradesSettings(), tape, WriterSet(tmp_path / "b"), queue.SimpleQueue(),
                     tmp_path / "b", "0of1", 0.5, feed=False)
    assert fed.polled is False  # not asked: it only backfills (and warns that nothing arrives)
