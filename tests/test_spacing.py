"""SharedSpacing: a venue's request spacing shared by threads and processes through one file."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from collector.venues.pacing import RateBudget
from collector.venues.shared_spacing import SharedSpacing, spacing_path


def test_try_acquire_and_next_allowed(tmp_path):
    s = SharedSpacing(tmp_path / "p", 0.3)
    assert s.shared
    assert s.try_acquire(100.0)
    assert not s.try_acquire(100.2)
    assert s.next_allowed(100.2) == pytest.approx(100.3)
    assert s.try_acquire(100.3)
    assert s.next_allowed(101.0) == 101.0


def test_reserve_books_ahead_of_try_acquire(tmp_path):
    """Discovery reserves the next free start; the poller, which only takes free starts, must
    then wait for the one after it."""
    path = tmp_path / "p"
    poller, discovery = SharedSpacing(path, 0.35), SharedSpacing(path, 0.35)  # two holders = two processes
    assert poller.try_acquire(10.0)
    assert discovery.reserve(10.1) == pytest.approx(10.35)
    assert not poller.try_acquire(10.35)
    assert poller.next_allowed(10.35) == pytest.approx(10.7)
    assert poller.try_acquire(10.7)


def test_rate_budget_consults_the_shared_spacing(tmp_path):
    path = tmp_path / "p"
    other = SharedSpacing(path, 0.35)
    b = RateBudget(27, 10.0, 0.35, shared=SharedSpacing(path, 0.35))
    assert other.reserve(50.0) == 50.0  # another process took the start at 50.0
    assert not b.try_acquire(50.1)
    assert b.used(50.1) == 0  # a refused start costs no window slot
    assert b.next_allowed(50.1) == pytest.approx(50.35)
    assert b.try_acquire(50.35)
    assert other.next_allowed(50.4) == pytest.approx(50.7)


def test_threads_never_start_closer_than_the_spacing(tmp_path):
    path, gap = tmp_path / "p", 0.02
    starts: list[float] = []
    lock = threading.Lock()

    def run():
        s = SharedSpacing(path, gap)  # each thread its own fd: flock must still exclude
        for _ in range(15):
            # The booked start, not the clock after sleeping: wake-up latency on a loaded machine
            # is the scheduler's, not the spacing's (wait() is reserve() + sleep until it).
            t = s.reserve(time.monotonic())
            time.sleep(max(0.0, t - time.monotonic()))
            with lock:
                starts.append(t)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 45
    assert min(b - a for a, b in zip(starts, starts[1:])) >= gap - 1e-9


_CHILD = """
import sys, time
from collector.venues.shared_spacing import SharedSpacing
s = SharedSpacing(sys.argv[1], float(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    t = s.reserve(time.monotonic())  # the booked start (see the thread test)
    time.sleep(max(0.0, t - time.monotonic()))
    print(repr(t), flush=True)
"""


def test_processes_share_the_spacing(tmp_path):
    """Real processes (discovery and the poller run in separate ones under Prefect): the union of
    their start times keeps the spacing. CLOCK_MONOTONIC is the same clock in every process."""
    path, gap, n = tmp_path / "p", 0.05, 12
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(gap), str(n)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    starts = sorted(float(line) for p in procs for line in p.communicate(timeout=60)[0].split())
    assert all(p.returncode == 0 for p in procs)
    assert len(starts) == 3 * n
    assert min(b - a for a, b in zip(starts, starts[1:])) >= gap - 1e-9


def test_a_start_from_an_earlier_boot_is_ignored(tmp_path):
    path = tmp_path / "p"
    path.write_bytes(struct.pack("<d", time.monotonic() + 1e9))  # far ahead: another boot's clock
    s = SharedSpacing(path, 0.3)
    now = time.monotonic()
    assert s.next_allowed(now) == now
    path.write_bytes(b"\x00\x01")  # torn / junk
    assert s.try_acquire(now)


def test_unusable_file_falls_back_to_this_process(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = SharedSpacing(blocker / "sub" / "p", 0.3)  # parent is a file: cannot be created
    assert not s.shared
    assert "spacing is per process" in caplog.text
    assert s.try_acquire(5.0) and not s.try_acquire(5.1) and s.try_acquire(5.3)


def test_spacing_path_is_under_the_data_dir(tmp_path):
    assert spacing_path(tmp_path, "limitless") == tmp_path / "limitless" / "state" / "request_spacing"
    assert not math.isnan(SharedSpacing(spacing_path(tmp_path, "limitless"), 0.1).next_allowed(1.0))
    assert os.path.isfile(tmp_path / "limitless" / "state" / "request_spacing")


def test_a_hold_pauses_every_holder_and_outlasts_the_spacing(tmp_path):
    """A 429's Retry-After seen by one process (say discovery) pauses the others (the poller):
    the venue counts requests per caller, not per process."""
    path = tmp_path / "p"
    discovery, poller = SharedSpacing(path, 0.35), SharedSpacing(path, 0.35)
    now = time.monotonic()
    discovery.hold(now + 5.0)
    assert poller.held_until(now + 1.0) == pytest.approx(now + 5.0)
    assert not poller.try_acquire(now + 1.0) and not poller.try_acquire(now + 4.99)
    assert poller.next_allowed(now + 1.0) == pytest.approx(now + 5.0)
    assert discovery.reserve(now + 2.0) == pytest.approx(now + 5.0)  # a page waits for the hold too
    assert not poller.try_acquire(now + 5.0)  # ... and took the first start after it
    assert poller.try_acquire(now + 5.35)
    assert poller.held_until(now + 6.0) == now + 6.0
    discovery.hold(now + 1.0)  # a shorter hold never shortens one in force
    assert SharedSpacing(path, 0.35).held_until(now) == pytest.approx(now + 5.0)


def test_a_file_without_a_hold_reads_as_no_hold(tmp_path):
    """Files written before the hold existed hold only the next free start."""
    path = tmp_path / "p"
    now = time.monotonic()
    path.write_bytes(struct.pack("<d", now + 0.2))
    s = SharedSpacing(path, 0.3)
    assert s.held_until(now) == now
    assert not s.try_acquire(now) and s.try_acquire(now + 0.2)
    assert len(path.read_bytes()) == 16


def test_send_gate_holds_locally_and_through_the_shared_file(tmp_path):
    from collector.venues.pacing import SendGate

    now = time.monotonic()
    local = SendGate()
    assert local.is_open(now)
    local.hold(now + 3.0)
    local.hold(now + 1.0)  # never shortened
    assert not local.is_open(now + 2.9) and local.is_open(now + 3.0)
    path = tmp_path / "p"
    gate = SendGate(SharedSpacing(path, 0.35))
    SharedSpacing(path, 0.35).hold(now + 2.0)  # another process saw a 429
    assert not gate.is_open(now + 1.0) and gate.is_open(now + 2.0)
