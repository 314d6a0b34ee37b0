"""The hot path: poll every active book about once per interval and write it.

One loop thread owns all state (schedule, backoff, cooldown, normalization, writes). Only the
blocking HTTP fetch runs on per-venue thread pools, and the venues' feed connections on their
own threads (collector.stream); finished fetches and feed messages come back through one
queue. Time for scheduling is monotonic; wall clock is only stamped onto records.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from collector.config.settings import Settings
from collector.model.clock import now_ms
from collector.model.errors import RateLimited
from collector.poller.fetch import FetchPool
from collector.poller.lane import Done, Lane
from collector.poller.restart import RestartLedger
from collector.poller.shard import in_shard, shard_budget, shard_slug
from collector.store.layout import poller_state_path, snapshot_path
from collector.store.snapshot import SnapshotWatcher
from collector.store.writer_set import WriterSet
from collector.stream import StreamLane, make_stream
from collector.trades import TradesLane, make_trades
from collector.venues import VenueClient, make_client

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt option
_DRAIN_MAX = 1000  # queue items handled per loop turn ...
_DRAIN_MAX_S = 0.01  # ... and at most about this long: records reach the OS at the next writer tick


def quiet_gc(threshold: int) -> None:
    """Shorter garbage collections. With Python's defaults every full collection scans all that
    exists since start (imports, Prefect, settings, instruments) and its pauses, hundreds of ms on
    a busy feed, hold back every record behind them. That is frozen out of the scans, and young
    collections run every ``threshold`` allocations (measured at 25k changes/s: receive-to-disk p99
    429 ms -> 10 ms; larger thresholds let cyclic garbage pile up between collections, 3 MB/s on
    the REST path at 50,000). 0 keeps Python's defaults."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(threshold, g1, g2)


def cap_malloc_arenas(n: int) -> bool:
    """At most ``n`` glibc malloc arenas from now on (threads started later share them); False
    when not on glibc or ``n`` is 0. Cuts RSS, not speed: the fetch threads allocate little
    under the GIL, so they barely contend for an arena."""
    if n <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, n))
    except (OSError, AttributeError):  # musl, macOS: no mallopt / no such option
        return False


class Poller:
    """Multi-venue poller. ``run()`` blocks until ``stop()`` (or an exception in the caller)."""

    def __init__(
        self,
        settings: Settings,
        clients: dict[str, VenueClient] | None = None,
        on_heartbeat: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """``clock`` (epoch seconds) decides file rotation and names; tests inject a fake one."""
        self.settings = settings
        self.on_heartbeat = on_heartbeat
        cap_malloc_arenas(settings.poller.malloc_arenas)  # before the fetch and sync threads start
        self._stop = threading.Event()
        self._closed = False
        # Finished fetches (Done), feed events (collector.stream.events) and stop()'s None.
        self._done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Periodic fsyncs off the loop thread: a slow fsync must not hold back records or requests.
        self.writers = WriterSet(Path(settings.data_dir), settings.writer, clock=clock, background_sync=True)
        self.lanes: dict[str, Lane] = {}
        shard = settings.poller.shard
        for name in settings.venues:
            client = (clients or {}).get(name) or make_client(name, settings)
            vs = shard_budget(settings.venue(name), shard)  # n shards share the venue's budget
            pool = FetchPool(vs.max_workers, f"fetch-{name}")
            self.lanes[name] = Lane(name, client, vs, settings.poller, pool, self.writers)
        self.streams: dict[str, StreamLane] = {}
        self.trades: dict[str, TradesLane] = {}
        for name, lane in self.lanes.items():
            stream = make_stream(name, settings, lane, self.writers, self._done)
            if stream is not None:
                lane.stream = self.streams[name] = stream
            trades = make_trades(name, settings, lane.client, self.writers, self._done, shard_slug(shard),
                                 feed=stream is not None)
            if trades is not None:
                lane.trades = self.trades[name] = trades
                if stream is not None:
                    stream.trades = trades
        self.watchers = {
            name: SnapshotWatcher(snapshot_path(Path(settings.data_dir), name)) for name in self.lanes
        }
        # Only lanes with a previous unclean run owe gaps; the check in _drain costs nothing otherwise.
        self.ledgers = {
            name: RestartLedger(lane, self.writers, poller_state_path(settings.data_dir, name, shard_slug(shard)), shard)
            for name, lane in self.lanes.items()
        }

    def stop(self) -> None:
        self._stop.set()
        # Wake the loop: on CPython 3.11 a signal landing in SimpleQueue.get(timeout) after the
        # deadline can leave it waiting forever, so a stop must also put something in the queue.
        self._done.put(None)

    # -- the loop -------------------------------------------------------------------------
    def run(self, duration_s: float | None = None) -> None:
        p = self.settings.poller
        quiet_gc(p.gc_threshold)
        mono = time.monotonic
        start = mono()
        deadline = start + duration_s if duration_s is not None else float("inf")
        next_snapshot = next_stats = next_heartbeat = start
        clean = False
        try:
            while not self._stop.is_set() and mono() < deadline:
                now = mono()
                if now >= next_snapshot:
                    self._reload_snapshots()
                    next_snapshot = now + p.snapshot_check_s
                for lane in self.lanes.values():
                    lane.submit_due(now, self._fetch)
                self._drain(timeout=self._wait_time(now))
                now = mono()
                for stream in self.streams.values():
                    stream.tick(now)
                for trades in self.trades.values():
                    trades.tick(now)
                self.writers.tick()
                if now >= next_stats:
                    stats = [lane.write_stats(now) for lane in self.lanes.values()]
                    for ledger in self.ledgers.values():  # after writers.tick(): the books it lists are on disk
                        ledger.mark()
                    next_stats = now + p.stats_interval_s
                    if now >= next_heartbeat and self.on_heartbeat is not None:
                        self._heartbeat(stats)
                        next_heartbeat = now + p.heartbeat_interval_s
            clean = True
        except BaseException as e:
            # stop requests (SIGTERM, Ctrl-C, Prefect's cancel) end cleanly; an error does not
            clean = not isinstance(e, Exception)
            raise
        finally:
            self.close(clean=clean)

    def _wait_time(self, now: float) -> float:
        wake = min((lane.next_wake(now) for lane in self.lanes.values()), default=now + 0.1)
        return min(0.1, max(0.0005, wake - now))

    def _drain(self, timeout: float) -> int:
        """Handle what the threads handed back, at most ``_DRAIN_MAX`` items or ``_DRAIN_MAX_S``, so
        a flooding feed cannot starve the rest of the loop (REST submits, writer ticks, stats, the
        stop check) nor hold records back from the OS (receive-to-disk latency).
        An item is only taken off the queue to be handled: the order of each thread's items holds."""
        try:
            done = self._done.get(timeout=timeout)
        except queue.Empty:
            return 0
        get = self._done.get_nowait
        mono = time.monotonic
        end = mono() + _DRAIN_MAX_S
        n = 0
        while True:
            if type(done) is Done:
                lane = done.lane
                lane.complete(done, time.monotonic())
                ledger = self.ledgers[lane.name]
                if ledger.owed:
                    ledger.settle(done.keys)
            elif done is not None:  # a feed event (None is stop()'s wake-up)
                done.target.on_event(done, time.monotonic())
            n += 1
            if n >= _DRAIN_MAX or (n & 15 == 0 and mono() > end):
                return n
            try:
                done = get()
            except queue.Empty:
                return n

    def _fetch(self, lane: Lane, keys: Sequence[str]) -> None:
        """Submitted to the lane's pool: the only code that runs off the loop thread."""
        started = time.monotonic()
        if not lane.gate.is_open(started):  # a 429 came back after this job was handed over
            self._done.put(Done(lane, keys, None, None, started, held=True))
            return
        try:
            result = lane.client.fetch_books(keys)
            self._done.put(Done(lane, keys, result, None, started))
        except BaseException as e:  # handed to the loop thread, which classifies it
            if isinstance(e, RateLimited):
                lane.gate.hold(time.monotonic() + lane.cooldown_for(e))
            self._done.put(Done(lane, keys, None, e, started))

    def _reload_snapshots(self) -> None:
        wall = now_ms()
        shard = self.settings.poller.shard
        for name, watcher in self.watchers.items():
            snap = watcher.poll()
            lane = self.lanes[name]
            if snap is not None:
                insts = [i for i in snap.instruments if in_shard(i.instrument_id, shard)]
                lane.set_instruments(insts, snap.asof_ms, time.monotonic())
                self.ledgers[name].begin()
            lane.snapshot_error = watcher.last_error
            lane.prune_expired(wall)
            stream = self.streams.get(name)
            if stream is not None and (snap is not None or len(stream.tracked) != len(lane.state)):
                stream.set_instruments([st.inst for st in lane.state.values()], time.monotonic())
            trades = self.trades.get(name)
            if trades is not None and (snap is not None or len(trades.scope_of) != len(lane.state)):
                trades.set_instruments([st.inst for st in lane.state.values()], time.monotonic())

    def _heartbeat(self, stats: list[dict[str, Any]]) -> None:
        try:
            self.on_heartbeat({"venues": stats, "ts_ms": now_ms(), "shard": self.settings.poller.shard})
        except Exception as e:  # the orchestrator being down must never stop collection
            log.warning("heartbeat callback failed: %s", e)

    def close(self, clean: bool = True) -> None:
        """Flush and close every file first, then let the pools go (never join blocked threads).
        ``clean`` False (the loop died of an error): the next start writes restart gaps."""
        if self._closed:
            return
        self._closed = True
        for stream in self.streams.values():
            stream.stop()
        for trades in self.trades.values():
            trades.stop()
        for stream in self.streams.values():
            stream.join()
        for trades in self.trades.values():
            trades.join()
        try:  # what was received before the stop is recorded too (the threads have stopped)
            while self._drain(timeout=0.0):
                pass
        except Exception:
            log.exception("draining the last feed messages failed")
        for stream in self.streams.values():
            try:
                stream.close()  # records where every book's stream ends
            except Exception:
                log.exception("closing the %s stream failed", stream.venue)
        for trades in self.trades.values():
            try:
                trades.close()  # where each tape stands, for the next start
            except Exception:
                log.exception("closing the %s trades failed", trades.venue)
        now = time.monotonic()
        for lane in self.lanes.values():
            try:
                lane.write_stats(now)  # a final stats record, so totals on disk add up
            except Exception:
                log.exception("final stats for %s failed", lane.name)
        self.writers.close()
        for ledger in self.ledgers.values():
            ledger.mark(clean=clean, final=True)
            ledger.release()
        for lane in self.lanes.values():
            lane.pool.shutdown()
            try:
                lane.client.close()
            except Exception:
                pass


def cli_poll(settings: Settings, duration_s: float | None = None) -> int:
    """`collector poll`: run the loop in the foreground; SIGTERM / Ctrl-C flush and exit."""
    poller = Poller(settings)

    def _term(signum, frame):
        poller.stop()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    log.info("polling %s into %s", ", ".join(poller.lanes), settings.data_dir)
    poller.run(duration_s=duration_s)
    return 0
