from __future__ import annotations

import logging
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from collector.model.errors import SnapshotError
from collector.model.records import Instrument
from collector.store.durable import clean_stale_tmp
from collector.store.layout import snapshot_path
from collector.store.snapshot import (
    SNAPSHOT_SCHEMA_VERSION,
    Snapshot,
    SnapshotWatcher,
    read_snapshot,
    write_snapshot,
)

ROOT = Path(__file__).resolve().parents[1]


def inst(i: int, venue: str = "polymarket", **kw) -> Instrument:
    return Instrument(
        venue=venue,
        poll_key=f"tok{i}",
        market_id=f"m{i // 2}",
        outcome="Yes" if i % 2 == 0 else "No",
        title=f"Market {i // 2}",
        slug=f"btc-up-or-down-{i // 2}",
        expires_at_ms=1_800_000_000_000 + i,
        tags=("crypto", "btc"),
        volume_24h=float(i),
        meta={"k": i},
        **kw,
    )


def snap(n: int = 3, venue: str = "polymarket", asof_ms: int = 1_700_000_000_000, **counts) -> Snapshot:
    return Snapshot(
        venue=venue,
        asof_ms=asof_ms,
        rules=[{"name": "all"}],
        counts={"instruments": n, **counts},
        instruments=[inst(i, venue) for i in range(n)],
    )


def tmp_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".tmp." in p.name)


def test_snapshot_path():
    assert snapshot_path("/d", "polymarket") == Path("/d/polymarket/state/active_instruments.snapshot.json")


def test_roundtrip_creates_dirs(tmp_path):
    p = snapshot_path(tmp_path, "polymarket")
    s = snap(5)
    write_snapshot(p, s)
    got = read_snapshot(p, venue="polymarket")
    assert got == s
    assert got.schema_version == SNAPSHOT_SCHEMA_VERSION
    assert got.instruments[1].instrument_id == "polymarket:tok1"
    assert got.instruments[1].tags == ("crypto", "btc")
    assert tmp_files(p.parent) == []
    doc = orjson.loads(p.read_bytes())
    assert set(doc) == {"schema_version", "venue", "asof_ms", "rules", "counts", "instruments"}
    assert doc["instruments"][0] == inst(0).flat()


def test_fsyncs_file_then_renames_then_fsyncs_directory(tmp_path, monkeypatch):
    p = snapshot_path(tmp_path, "polymarket")
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd):
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        return real_fsync(fd)

    def spy_replace(a, b):
        calls.append("replace")
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    write_snapshot(p, snap())
    assert calls == ["fsync-file", "replace", "fsync-dir"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    p = snapshot_path(tmp_path, "polymarket")
    write_snapshot(p, snap(2))
    before = p.read_bytes()

    def boom(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_snapshot(p, snap(7))
    assert p.read_bytes() == before
    assert tmp_files(p.parent) == []


def test_stale_temp_files_are_cleaned_on_next_write(tmp_path):
    p = snapshot_path(tmp_path, "polymarket")
    p.parent.mkdir(parents=True)
    dead_pid = 2**22 + 12345  # above Linux pid_max: never alive
    dead = p.parent / f".{p.name}.tmp.{dead_pid}.abc"
    junk = p.parent / f".{p.name}.tmp.notapid"
    live_recent = p.parent / f".{p.name}.tmp.{os.getppid()}.def"  # a live writer, maybe busy
    live_old = p.parent / f".{p.name}.tmp.{os.getppid()}.old"
    other = p.parent / "unrelated.tmp.1.x"
    for f in (dead, junk, live_recent, live_old, other):
        f.write_bytes(b"{partial")
    old = time.time() - 7200
    os.utime(live_old, (old, old))
    write_snapshot(p, snap())
    left = set(os.listdir(p.parent))
    assert dead.name not in left and junk.name not in left and live_old.name not in left
    assert live_recent.name in left and other.name in left
    assert read_snapshot(p).venue == "polymarket"
    assert clean_stale_tmp(p, older_than_s=0) == 1  # the live one, once old enough
    assert tmp_files(p.parent) == ["unrelated.tmp.1.x"]


def _good_bytes() -> bytes:
    return snap(4).to_json()


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (_good_bytes()[: len(_good_bytes()) // 2], "not valid JSON"),
        (_good_bytes()[:-3], "not valid JSON"),
        (b"\x00\xff\xfegarbage", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"venue": "polymarket", "asof_ms": 1, "instruments": []}', "schema_version"),
        (b'{"schema_version": 99, "venue": "polymarket", "asof_ms": 1}', "schema_version 99"),
        (b'{"schema_version": 1, "asof_ms": 1, "instruments": []}', "wrong schema"),
        (b'{"schema_version": 1, "venue": "polymarket", "asof_ms": "x"}', "wrong schema"),
        (b'{"schema_version": 1, "venue": "polymarket", "asof_ms": 1, "instruments": [{"poll_key": "a"}]}', "wrong schema"),
        (snap(2, venue="limitless").to_json(), "venue mismatch"),
    ],
)
def test_bad_files_raise_snapshot_error(tmp_path, content, needle):
    p = tmp_path / "s.json"
    p.write_bytes(content)
    with pytest.raises(SnapshotError) as ei:
        read_snapshot(p, venue="polymarket")
    assert needle in str(ei.value)
    assert str(p) in str(ei.value)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(SnapshotError, match="missing"):
        read_snapshot(tmp_path / "nope.json")
    with pytest.raises(SnapshotError, match="cannot read"):
        read_snapshot(tmp_path)  # a directory


def test_instrument_of_other_venue_rejected(tmp_path):
    s = snap(1)
    doc = orjson.loads(s.to_json())
    doc["instruments"].append(inst(9, "limitless").flat())
    p = tmp_path / "s.json"
    p.write_bytes(orjson.dumps(doc))
    with pytest.raises(SnapshotError, match="another venue"):
        read_snapshot(p)


def test_unknown_top_level_keys_are_ignored(tmp_path):
    doc = orjson.loads(snap(1).to_json())
    doc["future_field"] = {"x": 1}
    p = tmp_path / "s.json"
    p.write_bytes(orjson.dumps(doc))
    assert read_snapshot(p).counts == {"instruments": 1}


# --------------------------------------------------------------------------- watcher


def test_watcher_keeps_last_good_and_picks_up_new(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="collector.store.snapshot")
    p = snapshot_path(tmp_path, "polymarket")
    w = SnapshotWatcher(p, venue="polymarket")

    # Missing: logged once, not on every poll.
    assert w.poll() is None and w.poll() is None
    assert w.current is None and "missing" in w.last_error
    assert len(caplog.records) == 1

    write_snapshot(p, snap(2, asof_ms=1))
    s1 = w.poll()
    assert s1 is not None and s1.asof_ms == 1 and w.current is s1 and w.last_error is None
    assert w.poll() is None  # unchanged file: nothing new

    caplog.clear()
    for bad in (b"", b'{"schema_version": 1, "venue": "polym', b"garbage", snap(1, venue="limitless").to_json()):
        p.write_bytes(bad)  # in place, not atomic: what a broken writer would leave
        os.utime(p, ns=(time.time_ns(), time.time_ns()))
        assert w.poll() is None
        assert w.poll() is None  # same bad file: not logged again
        assert w.current is s1
        assert w.last_error
    assert len(caplog.records) == 4  # once per change

    write_snapshot(p, snap(3, asof_ms=2))
    s2 = w.poll()
    assert s2 is not None and s2.asof_ms == 2 and len(s2.instruments) == 3
    assert w.current is s2 and w.last_error is None

    p.unlink()
    assert w.poll() is None
    assert w.current is s2 and "missing" in w.last_error
    write_snapshot(p, snap(1, asof_ms=3))
    assert w.poll().asof_ms == 3


def test_watcher_never_raises(tmp_path, monkeypatch):
    p = tmp_path / "dir-instead-of-file"
    p.mkdir()
    w = SnapshotWatcher(p)
    assert w.poll() is None and w.last_error

    p2 = tmp_path / "s.json"
    write_snapshot(p2, snap(1))
    w2 = SnapshotWatcher(p2)

    def boom(*a, **k):
        raise RuntimeError("unexpected")

    monkeypatch.setattr("collector.store.snapshot.read_snapshot", boom)
    assert w2.poll() is None
    assert "RuntimeError" in w2.last_error


# --------------------------------------------------------------------------- kill -9 mid-write

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from collector.model.records import Instrument
    from collector.store.snapshot import Snapshot, write_snapshot
    path, n = sys.argv[1], int(sys.argv[2])
    insts = [Instrument(venue="polymarket", poll_key=f"tok{i}", market_id=f"m{i//2}",
                        title="x" * 200, meta={"pad": "y" * 200}) for i in range(n)]
    real_write = os.write
    def slow_write(fd, data):  # a slow disk: small chunks, so most kills land mid-write
        time.sleep(0.002)
        return real_write(fd, bytes(data[:65536]))
    os.write = slow_write
    print("ready", flush=True)
    gen = 0
    while True:
        gen += 1
        write_snapshot(path, Snapshot(venue="polymarket", asof_ms=gen,
                                      counts={"instruments": n, "gen": gen}, instruments=insts))
    """
)


def test_reader_never_sees_partial_file_when_writer_is_killed(tmp_path):
    n = 3000  # ~2.5 MB: a write takes long enough to be killed in the middle
    p = snapshot_path(tmp_path, "polymarket")
    write_snapshot(p, Snapshot(venue="polymarket", asof_ms=0, counts={"instruments": n, "gen": 0},
                               instruments=[inst(i) for i in range(n)]))
    assert p.stat().st_size > 1_000_000

    stop = threading.Event()
    reads: list[int] = []
    failures: list[str] = []

    def reader():
        while not stop.is_set():
            try:
                s = read_snapshot(p, venue="polymarket")
                assert len(s.instruments) == n
                reads.append(s.asof_ms)
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rng = random.Random(4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = mid_write = 0
    try:
        for _ in range(8):
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(p), str(n)],
                stdout=subprocess.PIPE, env=env, cwd=ROOT,
            )
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.02, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            mid_write += bool(tmp_files(p.parent))  # a killed write leaves its temp file behind
            got = read_snapshot(p, venue="polymarket")  # always the old or a complete new one
            assert len(got.instruments) == n and got.counts["gen"] == got.asof_ms
    finally:
        stop.set()
        t.join(10)
    assert failures == []
    assert kills == 8 and len(reads) > 10
    assert max(reads) > 0  # the writers did replace the file

    print("kills mid-write:", mid_write, "reads:", len(reads))
    assert mid_write >= 1, "no kill landed mid-write; the test proved nothing"
    # Killed writers may leave temp files; the next write removes them (their pids are dead).
    write_snapshot(p, snap(1))
    assert tmp_files(p.parent) == []
    assert read_snapshot(p).counts == {"instruments": 1}
