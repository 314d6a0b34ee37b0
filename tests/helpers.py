"""Shared helpers for tests that run the poller against the real simulator subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from collector.config.settings import load_settings
from collector.discovery.run import run_discovery
from collector.sim.testing import SimHandle
from collector.store.changes import Expander
from collector.store.files import iter_jsonl_lines

REPO = Path(__file__).resolve().parents[1]

# Every sim market with at least 30 min left: nothing expires (and gets pruned) mid-test.
ALL_RULE = orjson.dumps([{"name": "all", "min_minutes_to_expiry": 30}]).decode()
TOP2_RULE = orjson.dumps([{"name": "top2", "min_minutes_to_expiry": 30, "max_markets": 2}]).decode()


def sim_env(sim: SimHandle, data_dir: Path, *, venues: str = "polymarket,limitless", streams: bool = False,
            trades: bool = False, **extra: Any) -> dict[str, str]:
    """COLLECTOR_* variables pointing every venue at ``sim`` and writing into ``data_dir``.

    Defaults keep runs small and fast: every sim market selected on Polymarket, the two top
    Limitless markets (2 books at 1 Hz fit inside its 27 req / 10 s budget), stats every second,
    quick backoff. ``extra`` keys are the part after ``COLLECTOR_`` (e.g. ``POLLER__SHARD``).
    ``streams``: record the simulator's feeds too; off by default, because most of these tests
    measure REST polling at its full rate (with a live stream REST only reconciles).
    ``trades``: record trades too (tests/test_trades_e2e.py); off by default, because their
    requests share the venues' budgets that these tests measure.
    """
    env = dict(sim.env)
    env.update(
        {
            "COLLECTOR_DATA_DIR": str(data_dir),
            "COLLECTOR_VENUES": venues,
            "COLLECTOR_POLYMARKET__RULES": ALL_RULE,
            "COLLECTOR_LIMITLESS__RULES": TOP2_RULE,
            # The simulator (like the venue) measures the 300 ms spacing on arrival, so a client
            # spacing of exactly 0.3 s plus thread/network jitter draws sporadic 429s.
            "COLLECTOR_LIMITLESS__MIN_SPACING_S": "0.4",
            "COLLECTOR_POLLER__STATS_INTERVAL_S": "1",
            "COLLECTOR_POLLER__SNAPSHOT_CHECK_S": "0.25",
            "COLLECTOR_POLLER__BACKOFF_BASE_S": "0.5",
            "COLLECTOR_POLLER__BACKOFF_CAP_S": "4",
            "COLLECTOR_POLLER__ERROR_SAMPLE_EVERY": "1",
        }
    )
    if not streams:
        env["COLLECTOR_STREAMS__POLYMARKET__ENABLED"] = env["COLLECTOR_STREAMS__LIMITLESS__ENABLED"] = "false"
    if not trades:
        for v in ("POLYMARKET", "LIMITLESS", "KALSHI"):
            env[f"COLLECTOR_TRADES__{v}__ENABLED"] = "false"
    for k, v in extra.items():
        env[f"COLLECTOR_{k}"] = str(v)
    return env


def apply_env(monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)


# --------------------------------------------------------------------------- files


def stream_files(data_dir: Path, venue: str, stream: str) -> list[Path]:
    return sorted((Path(data_dir) / venue / stream).glob("date=*/*.jsonl*"))


def records(data_dir: Path, venue: str, stream: str, record_type: str | None = None) -> list[dict[str, Any]]:
    """Every complete line of every file of a stream, parsed (a line that does not parse fails)."""
    out = []
    for f in stream_files(data_dir, venue, stream):
        for line in iter_jsonl_lines(f):
            rec = orjson.loads(line)
            if record_type is None or rec.get("record_type") == record_type:
                out.append(rec)
    return out


def books(data_dir: Path, venue: str) -> list[dict[str, Any]]:
    """Every polled book in file order: ``unchanged`` records expanded (writer.record =
    "changes"), each from the last full book of its instrument in its own file."""
    out = []
    for f in stream_files(data_dir, venue, "orderbooks"):
        exp = Expander()
        for line in iter_jsonl_lines(f):
            rec = orjson.loads(line)
            rt = rec.get("record_type")
            if rt == "unchanged":
                full = exp.expand(rec)
                assert full is not None, f"{f.name}: unchanged {rec.get('instrument_id')} before any book of it"
                out.append(full)
            elif rt == "orderbook":
                exp.remember(rec)
                out.append(rec)
    return out


def full_books(data_dir: Path, venue: str) -> list[dict[str, Any]]:
    """Only the full ``orderbook`` records on disk (the changes)."""
    return records(data_dir, venue, "orderbooks", "orderbook")


def gaps(data_dir: Path, venue: str) -> list[dict[str, Any]]:
    return records(data_dir, venue, "orderbooks", "gap")


def stats(data_dir: Path, venue: str) -> list[dict[str, Any]]:
    return sorted(records(data_dir, venue, "poll_stats"), key=lambda r: r["ts_ms"])


def errors(data_dir: Path, venue: str) -> list[dict[str, Any]]:
    return records(data_dir, venue, "poll_errors")


def all_data_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in Path(data_dir).rglob("*.jsonl") if "/state/" not in str(p))


def by_instrument(recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        out.setdefault(r["instrument_id"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["ts_ms"])
    return out


# --------------------------------------------------------------------------- running


@contextlib.contextmanager
def poller_thread(poller, duration_s: float | None = None) -> Iterator[Any]:
    """Run ``poller.run()`` in a thread; on exit stop it and join (fails if it does not stop)."""
    err: list[BaseException] = []

    def target() -> None:
        try:
            poller.run(duration_s=duration_s)
        except BaseException as e:  # surfaced in the test thread
            err.append(e)

    t = threading.Thread(target=target, name="poller-under-test", daemon=True)
    t.start()
    try:
        yield poller
    finally:
        poller.stop()
        t.join(timeout=10)
        assert not t.is_alive(), "poller did not stop within 10 s"
        if err:
            raise err[0]


def sim_times(sim: SimHandle, venue: str | None = None, endpoint: str | None = None,
              since: float | None = None) -> list[dict[str, Any]]:
    """The simulator's request log entries (oldest first), arrival time in ``t`` (epoch s)."""
    return sim.requests(since=since, venue=venue, endpoint=endpoint, limit=5000)["recent"]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a child ``python -m collector ...``: ours without any COLLECTOR_*
    variable, then exactly ``env``, with the repository on PYTHONPATH."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    child.update(env)
    child["PYTHONPATH"] = str(REPO) + (os.pathsep + child["PYTHONPATH"] if child.get("PYTHONPATH") else "")
    return child


def start_poll_process(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen:
    """``python -m collector poll *args`` with exactly ``env`` as its COLLECTOR_* settings."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "collector", "poll", *args],
            env=child_env(env),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def poll_process(env: dict[str, str], log_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """``start_poll_process`` that is killed and reaped on exit if the test left it running."""
    proc = start_poll_process(env, log_path, *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def sigterm(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """SIGTERM ``proc`` and wait: (exit code, seconds it took to exit)."""
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=timeout)
    return rc, time.monotonic() - t


def prepare(sim: SimHandle, data_dir: Path, monkeypatch, **extra: Any):
    """Point the settings at ``sim`` and ``data_dir`` (``sim_env`` + ``extra``), run discovery
    once (real snapshots), clear the simulator's request log; return the settings."""
    apply_env(monkeypatch, sim_env(sim, data_dir, **extra))
    settings = load_settings()
    for rep in run_discovery(settings):
        assert rep.ok and rep.instruments > 0, rep
    if "limitless" in settings.venues:
        time.sleep(0.4)  # keep the first Limitless book request clear of discovery's last page
    sim.reset_requests()
    return settings


def wait_for(pred, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
