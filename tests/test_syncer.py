"""Periodic fsyncs on the background thread: counted, never blocking the writer, and a close still
syncs on the writer's own thread."""

from __future__ import annotations

import time

from collector.store.writer import StreamWriter
from tests.helpers import wait_for


def test_periodic_sync_runs_in_the_background_and_close_syncs(tmp_path):
    mono = [100.0]
    w = StreamWriter(tmp_path, "polymarket", "book_changes", fsync_interval_s=1.0, mono=lambda: mono[0],
                     background_sync=True)
    w.write(b'{"a":1}')
    w.tick()  # opens, hands the line to the OS
    mono[0] += 1.5
    w.write(b'{"a":2}')
    w.tick()  # due: the sync is handed to the thread, the tick returns at once
    assert wait_for(lambda: w.stats.fsyncs == 1, 5)
    assert w.path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    mono[0] += 1.5
    w.write(b'{"a":3}')
    w.tick()
    assert wait_for(lambda: w.stats.fsyncs == 2, 5)
    w.write(b'{"a":4}')
    before = w.stats.fsyncs
    w.close()  # the last records are synced before close returns
    assert w.stats.fsyncs == before + 1
    assert not w.stats.failing and w.stats.records_written == 4


def test_a_sync_still_running_is_not_doubled(tmp_path):
    mono = [0.0]
    w = StreamWriter(tmp_path, "polymarket", "book_changes", fsync_interval_s=0.5, mono=lambda: mono[0],
                     background_sync=True)
    w.write(b"x\n")
    w.tick()
    w._bg._pending = True  # as if the thread were still busy with the last one
    mono[0] += 1
    w.write(b"y\n")
    w.tick()
    time.sleep(0.1)
    assert w.stats.fsyncs == 0 and w._unsynced  # not handed over twice: the next tick tries again
    w._bg._pending = False
    w.tick()
    assert wait_for(lambda: w.stats.fsyncs == 1, 5)
    w.close()
