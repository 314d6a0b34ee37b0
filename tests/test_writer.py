"""collector.store.writer: rotation, unique names, fsync cadence, durability, I/O errors, compression.

Real files under tmp_path; wall and monotonic clocks are injected fakes. I/O faults are
simulated by monkeypatching ``os.write`` / ``os.fsync`` / ``os.open`` so they fail only for
files under tmp_path (tests run as root, so chmod alone cannot make a directory unwritable).
"""

from __future__ import annotations

import calendar
import errno
import logging
import os
import re
import time
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import collector.store.writer as wmod
from collector.config.settings import WriterSettings
from collector.model.errors import WriteError
from collector.store.compress import compress_file
from collector.store.files import iter_jsonl_lines
from collector.store.layout import period_bounds, utc_day
from collector.store.writer import StreamWriter, WriterStats
from collector.store.writer_set import WriterSet

NAME_RE = re.compile(
    r"^(?P<stream>[a-z_]+)\.(?P<start>\d{8}T\d{4}Z)\.(?P<opened>\d{9})-(?P<pid>\d+)-(?P<tok>[0-9a-f]+)\.jsonl$"
)


def ts(text: str) -> float:
    """'2026-11-25T10:09:59.5' (UTC) -> epoch seconds."""
    whole, _, frac = text.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + (float("0." + frac) if frac else 0.0)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def rec(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"record_type": "orderbook", "i": i, "pad": "x" * pad})


def files(root: Path, pattern: str = "*.jsonl*") -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file())


def read_all(root: Path) -> list[bytes]:
    out: list[bytes] = []
    for p in files(root):
        out.extend(iter_jsonl_lines(p))
    return out


def open_paths() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def fd_under(fd: int, root: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
    except OSError:
        return False


def make(tmp_path: Path, wall: Clock, mono: Clock | None = None, **kw) -> StreamWriter:
    return StreamWriter(tmp_path, "polymarket", "orderbooks", clock=wall, mono=mono or Clock(100.0), **kw)


# ------------------------------------------------------------------ helpers


def test_utc_day():
    assert utc_day(0) == "1970-01-01"
    assert utc_day(int(ts("2026-11-25T23:59:59.999") * 1000)) == "2026-11-25"
    assert utc_day(int(ts("2026-11-26T00:00:00") * 1000)) == "2026-11-26"


@pytest.mark.parametrize(
    "now,minutes,start,end",
    [
        ("2026-11-25T10:09:59.9", 10, "2026-11-25T10:00:00", "2026-11-25T10:10:00"),
        ("2026-11-25T10:10:00", 10, "2026-11-25T10:10:00", "2026-11-25T10:20:00"),
        ("2026-11-25T23:55:00", 10, "2026-11-25T23:50:00", "2026-11-26T00:00:00"),
        # 7 does not divide 60: aligned to the hour, the last period of the hour is short
        ("2026-11-25T10:57:00", 7, "2026-11-25T10:56:00", "2026-11-25T11:00:00"),
        ("2026-11-25T11:03:00", 7, "2026-11-25T11:00:00", "2026-11-25T11:07:00"),
        # > 60 min: aligned to midnight, cut at midnight
        ("2026-11-25T01:31:00", 90, "2026-11-25T01:30:00", "2026-11-25T03:00:00"),
        ("2026-11-25T23:59:59", 100, "2026-11-25T23:20:00", "2026-11-26T00:00:00"),
        ("2026-11-25T12:00:00", 1440, "2026-11-25T00:00:00", "2026-11-26T00:00:00"),
    ],
)
def test_period_bounds(now, minutes, start, end):
    assert period_bounds(ts(now), minutes) == (ts(start), ts(end))


def test_bad_names_and_settings_rejected(tmp_path):
    for venue, stream in [("poly/market", "orderbooks"), ("polymarket", "order.books"), ("..", "x"), ("", "x")]:
        with pytest.raises(ValueError):
            StreamWriter(tmp_path, venue, stream)
    with pytest.raises(ValueError):
        StreamWriter(tmp_path, "v", "s", rotate_minutes=0)
    with pytest.raises(ValueError):
        StreamWriter(tmp_path, "v", "s", fsync_interval_s=0)


# ------------------------------------------------------------------ layout and rotation


def test_layout_and_name(tmp_path):
    wall = Clock(ts("2026-11-25T10:12:34.567"))
    w = make(tmp_path, wall)
    assert w.path is None  # opened lazily
    assert w.write(rec(1)) is True
    p = w.path
    assert p is not None and p.parent == tmp_path / "polymarket" / "orderbooks" / "date=2026-11-25"
    m = NAME_RE.match(p.name)
    assert m, p.name
    assert m["stream"] == "orderbooks" and m["start"] == "20261125T1010Z"
    assert m["opened"] == "101234567" and m["pid"] == str(os.getpid())
    w.close()
    assert list(iter_jsonl_lines(p)) == [rec(1)]


def test_rotation_every_rotate_minutes(tmp_path):
    wall = Clock(ts("2026-11-25T10:00:00"))
    w = make(tmp_path, wall)
    plan = [
        ("2026-11-25T10:00:00", 0),
        ("2026-11-25T10:05:00", 1),
        ("2026-11-25T10:09:59.999", 2),
        ("2026-11-25T10:10:00", 3),
        ("2026-11-25T10:19:59", 4),
        ("2026-11-25T10:20:00", 5),
        ("2026-11-25T10:45:00", 6),  # skips two empty periods: no empty files
    ]
    for when, i in plan:
        wall.t = ts(when)
        assert w.write(rec(i))
    w.close()
    fs = files(tmp_path)
    starts = [NAME_RE.match(p.name)["start"] for p in fs]
    assert starts == ["20261125T1000Z", "20261125T1010Z", "20261125T1020Z", "20261125T1040Z"]
    assert [[orjson.loads(x)["i"] for x in iter_jsonl_lines(p)] for p in fs] == [[0, 1, 2], [3, 4], [5], [6]]
    assert w.stats.rotations == 3 and w.stats.files_opened == 4
    assert w.stats.records_written == 7 and w.stats.records_dropped == 0


@pytest.mark.parametrize("minutes", [10, 7, 90, 1440])
def test_rotation_at_utc_midnight(tmp_path, minutes):
    wall = Clock(ts("2026-11-25T23:59:59"))
    w = make(tmp_path, wall, rotate_minutes=minutes)
    assert w.write(rec(1))
    first = w.path
    wall.t = ts("2026-11-26T00:00:00")
    assert w.write(rec(2))
    second = w.path
    w.close()
    assert first.parent.name == "date=2026-11-25"
    assert second.parent.name == "date=2026-11-26"
    assert NAME_RE.match(second.name)["start"] == "20261126T0000Z"
    assert list(iter_jsonl_lines(first)) == [rec(1)]
    assert list(iter_jsonl_lines(second)) == [rec(2)]


def test_rotation_without_data_closes_and_syncs(tmp_path):
    wall, mono = Clock(ts("2026-11-25T23:59:58")), Clock(100.0)
    w = make(tmp_path, wall, mono, fsync_interval_s=5.0)
    for i in range(3):
        assert w.write(rec(i))
    old = w.path
    assert str(old) in open_paths()
    wall.t, mono.t = ts("2026-11-26T00:00:00.400"), 102.0
    w.tick()  # no data arrives, the period is over: close now
    assert w.path is None
    assert str(old) not in open_paths()  # the descriptor is released
    assert w.stats.rotations == 1 and w.stats.fsyncs == 1  # synced on the way out
    assert old.read_bytes() == b"".join(rec(i) + b"\n" for i in range(3))
    w.tick()  # idempotent while idle: no empty file for the new period
    assert w.stats.files_opened == 1 and w.stats.fsyncs == 1
    assert files(tmp_path) == [old]
    wall.t = ts("2026-11-26T00:00:05")
    assert w.write(rec(9))
    assert w.path.parent.name == "date=2026-11-26"
    w.close()


def test_names_sort_by_time(tmp_path):
    wall = Clock(ts("2026-11-25T10:00:01"))
    created = []
    for when in ["10:00:01", "10:00:02.5", "10:09:00", "10:10:00", "10:31:00", "11:00:00"]:
        wall.t = ts(f"2026-11-25T{when}")
        w = make(tmp_path, wall)  # a "restart" each time
        w.write(rec(0))
        created.append(w.path)
        w.close()
    assert sorted(created) == created
    assert sorted(p.name for p in created) == [p.name for p in created]


# ------------------------------------------------------------------ unique names


def test_two_writers_same_directory_never_share_a_file(tmp_path):
    wall = Clock(ts("2026-11-25T10:10:00"))
    a, b = make(tmp_path, wall), make(tmp_path, wall)
    for i in range(100):
        assert a.write(rec(i)) and b.write(rec(1000 + i))
    assert a.path != b.path and a.path.parent == b.path.parent
    a.close()
    b.close()
    fs = files(tmp_path)
    assert len(fs) == 2
    got = sorted(list(iter_jsonl_lines(p)) for p in fs)
    assert got == sorted([[rec(i) for i in range(100)], [rec(1000 + i) for i in range(100)]])


def test_restart_in_same_period_gets_a_new_file(tmp_path):
    wall = Clock(ts("2026-11-25T10:11:00"))
    first = make(tmp_path, wall)
    first.write(rec(1))
    p1 = first.path
    first.close()
    before = p1.read_bytes()
    second = make(tmp_path, wall)  # same pid, same clock, same period
    second.write(rec(2))
    p2 = second.path
    second.close()
    assert p1 != p2 and p1.parent == p2.parent
    assert p1.read_bytes() == before  # never appended to
    assert list(iter_jsonl_lines(p2)) == [rec(2)]


def test_name_collision_draws_a_new_name(tmp_path, monkeypatch):
    tokens = iter(["aaaaaa", "aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(wmod, "_token", lambda: next(tokens))
    wall = Clock(ts("2026-11-25T10:11:00"))
    a, b = make(tmp_path, wall), make(tmp_path, wall)
    a.write(rec(1))
    b.write(rec(2))  # same name twice (O_EXCL refuses), then a fresh one
    assert a.path.name.endswith("-aaaaaa.jsonl") and b.path.name.endswith("-bbbbbb.jsonl")
    a.close()
    b.close()
    assert [list(iter_jsonl_lines(p)) for p in files(tmp_path)] in (
        [[rec(1)], [rec(2)]],
        [[rec(2)], [rec(1)]],
    )
    assert b.stats.error_count == 0


# ------------------------------------------------------------------ buffering and fsync


def test_buffered_no_per_record_flush(tmp_path):
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono)
    for i in range(10):
        w.write(rec(i))
    assert w.path.stat().st_size == 0  # still in the buffer
    mono.t += 0.2
    w.tick()  # handed to the OS (not yet fsync'ed)
    assert w.path.stat().st_size > 0 and w.stats.fsyncs == 0
    assert w.stats.records_written == 10
    w.close()


def test_full_buffer_goes_to_the_os(tmp_path):
    w = make(tmp_path, Clock(ts("2026-11-25T10:11:00")), buffer_bytes=1000)
    for i in range(10):
        w.write(rec(i, pad=200))
    assert w.path.stat().st_size >= 1000  # without any tick or flush
    assert all(orjson.loads(x) for x in iter_jsonl_lines(w.path))
    w.close()


def test_fsync_cadence(tmp_path, monkeypatch):
    calls = []
    real = os.fsync

    def counting_fsync(fd):
        if fd_under(fd, tmp_path) and os.path.isfile(os.readlink(f"/proc/self/fd/{fd}")):
            calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono, fsync_interval_s=1.0)
    w.write(rec(1))  # opened at mono 100.0
    for t, expected in [(100.5, 0), (100.99, 0), (101.0, 1), (101.5, 1), (101.9, 1)]:
        mono.t = t
        w.write(rec(2))
        w.tick()
        assert w.stats.fsyncs == expected, t
    mono.t = 103.0
    w.tick()  # 2.0 s since the last sync, but records arrived: sync
    assert w.stats.fsyncs == 2
    mono.t = 110.0
    w.tick()  # nothing new since the last sync: no fsync
    assert w.stats.fsyncs == 2
    w.write(rec(3))
    mono.t = 110.1
    w.tick()  # the interval has long passed: sync at the first tick
    assert w.stats.fsyncs == 3
    w.close()  # close syncs what is unsynced only
    assert w.stats.fsyncs == 3
    assert len(calls) == 3
    assert w.stats.fsync_seconds_total >= 0


def test_flush_without_fsync(tmp_path):
    w = make(tmp_path, Clock(ts("2026-11-25T10:11:00")))
    w.write(rec(1))
    w.flush(fsync=False)
    assert w.stats.fsyncs == 0 and list(iter_jsonl_lines(w.path)) == [rec(1)]
    w.flush()
    assert w.stats.fsyncs == 1
    w.close()


def test_close_flushes_everything_in_order(tmp_path):
    wall = Clock(ts("2026-11-25T10:11:00"))
    w = make(tmp_path, wall)
    lines = [rec(i, pad=i % 300) for i in range(20_000)]
    for line in lines:
        assert w.write(line)
    w.close()
    assert read_all(tmp_path) == lines
    s = w.stats
    assert s.records_written == 20_000 and s.records_dropped == 0
    assert s.bytes_written == sum(len(x) + 1 for x in lines)
    assert s.fsyncs >= 1 and s.error_count == 0 and s.last_error is None and not s.failing
    assert w.path is None
    w.close()  # idempotent
    assert w.write(rec(0)) is False  # closed for good
    assert w.stats.records_dropped == 1
    assert read_all(tmp_path) == lines


def test_context_manager(tmp_path):
    with make(tmp_path, Clock(ts("2026-11-25T10:11:00"))) as w:
        w.write(rec(1))
    assert read_all(tmp_path) == [rec(1)]


# ------------------------------------------------------------------ reader


def test_torn_last_line_is_skipped(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(rec(1) + b"\n" + rec(2) + b"\n" + b'{"record_type":"orderb')
    assert list(iter_jsonl_lines(p)) == [rec(1), rec(2)]
    p.write_bytes(b'{"torn')
    assert list(iter_jsonl_lines(p)) == []
    p.write_bytes(b"")
    assert list(iter_jsonl_lines(p)) == []
    p.write_bytes(b"\n\n" + rec(3) + b"\n\n")
    assert list(iter_jsonl_lines(p)) == [rec(3)]


def test_torn_line_after_crash_of_live_writer(tmp_path):
    """A reader of the open file (or after a crash mid-write) sees only complete lines."""
    w = make(tmp_path, Clock(ts("2026-11-25T10:11:00")))
    for i in range(5):
        w.write(rec(i))
    w.flush()
    with open(w.path, "ab") as f:  # what a torn write leaves behind
        f.write(rec(99)[:7])
    assert list(iter_jsonl_lines(w.path)) == [rec(i) for i in range(5)]
    w.close()


line_st = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_st, max_size=30), torn=st.binary(max_size=10), chunk=st.integers(1, 64), zst=st.booleans())
def test_reader_any_chunking(tmp_path_factory, lines, torn, chunk, zst):
    torn = torn.replace(b"\n", b"")
    data = b"".join(x + b"\n" for x in lines) + torn
    d = tmp_path_factory.mktemp("r")
    p = d / "f.jsonl"
    if zst:
        p = d / "f.jsonl.zst"
        p.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        p.write_bytes(data)
    assert list(iter_jsonl_lines(p, chunk_size=chunk)) == lines


def test_reader_multi_frame_and_truncated_zst(tmp_path, caplog):
    c = zstandard.ZstdCompressor(write_checksum=True)
    a = b"".join(rec(i) + b"\n" for i in range(1000))
    b = b"".join(rec(i) + b"\n" for i in range(1000, 2000))
    p = tmp_path / "m.jsonl.zst"
    p.write_bytes(c.compress(a) + c.compress(b))
    assert list(iter_jsonl_lines(p, chunk_size=333)) == [rec(i) for i in range(2000)]
    z = c.compress(a)
    p.write_bytes(z[: len(z) // 2])
    with caplog.at_level(logging.WARNING, logger="collector.store.writer"):
        got = list(iter_jsonl_lines(p))
    assert got == [rec(i) for i in range(len(got))] and len(got) < 1000
    assert "truncated" in caplog.text


# ------------------------------------------------------------------ I/O errors


def enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_drops_records_and_recovers_into_a_new_file(tmp_path, monkeypatch, caplog):
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono)
    good = [rec(i) for i in range(100)]
    for x in good:
        w.write(x)
    w.flush()
    first = w.path

    real_write = os.write
    full = {"on": True}

    def fake_write(fd, data):
        if full["on"] and fd_under(fd, tmp_path):
            enospc()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", fake_write)
    caplog.set_level(logging.WARNING, logger="collector.store.writer")
    for i in range(10):
        assert w.write(rec(100 + i)) is True  # buffered; the disk is not touched yet
    mono.t += 0.5
    w.tick()  # the buffer goes to the OS: ENOSPC, no exception
    s = w.stats
    assert s.failing and s.error_count == 1 and s.records_dropped == 10
    assert s.last_error.startswith("OSError ENOSPC: No space left on device") and str(first) in s.last_error
    assert w.path is None and str(first) not in open_paths()  # broken file closed
    assert list(iter_jsonl_lines(first)) == good  # earlier data intact

    for i in range(1000):  # within the retry interval: refused at once, nothing touches the disk
        assert w.write(rec(i)) is False
    assert w.stats.records_dropped == 1010 and w.stats.files_opened == 1

    mono.t += 1.1  # retry: a new file, the first record is tried at once, still full
    assert w.write(rec(0)) is False
    assert w.stats.files_opened == 2 and w.stats.error_count == 2 and w.path is None
    assert files(tmp_path) == [first]  # the empty retry file was removed
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # rate-limited

    full["on"] = False
    assert w.write(rec(1)) is False  # still inside the retry interval
    mono.t += 1.1
    wall.t += 3.0
    after = [rec(500 + i) for i in range(50)]
    for x in after:
        assert w.write(x) is True
    assert w.path is not None and w.path != first
    assert not w.stats.failing and "recovered" in caplog.text
    w.close()
    fs = files(tmp_path)
    assert len(fs) == 2 and fs[0] == first
    assert list(iter_jsonl_lines(fs[1])) == after
    for p in fs:  # every file fully parseable, ends with a newline
        assert p.read_bytes().endswith(b"\n")
        for line in iter_jsonl_lines(p):
            orjson.loads(line)
    s = w.stats
    assert s.records_written == 150
    assert s.last_error.startswith("OSError ENOSPC")  # kept for telemetry after recovery


def test_partial_write_keeps_only_complete_lines(tmp_path, monkeypatch):
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono)
    lines = [rec(i, pad=50) for i in range(40)]
    for x in lines:
        w.write(x)
    real_write = os.write
    state = {"budget": 1500}  # the disk fills up in the middle of a record

    def fake_write(fd, data):
        if not fd_under(fd, tmp_path):
            return real_write(fd, data)
        if state["budget"] <= 0:
            enospc()
        n = real_write(fd, bytes(data[: state["budget"]]))
        state["budget"] -= n
        return n

    monkeypatch.setattr(os, "write", fake_write)
    w.flush()
    p = files(tmp_path)[0]
    data = p.read_bytes()
    assert data.endswith(b"\n") and len(data) < 1500  # the partial record was cut off
    kept = list(iter_jsonl_lines(p))
    assert kept == lines[: len(kept)] and 0 < len(kept) < 40
    s = w.stats
    assert s.records_written == len(kept) and s.records_dropped == 40 - len(kept)
    assert s.bytes_written == len(data) and "ENOSPC" in s.last_error


def test_fsync_error_starts_a_new_file(tmp_path, monkeypatch):
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono)
    w.write(rec(1))
    real = os.fsync
    broken = {"on": True}

    def fake_fsync(fd):
        if broken["on"] and fd_under(fd, tmp_path):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fake_fsync)
    first = w.path
    mono.t = 101.0
    w.tick()  # no exception
    assert w.stats.failing and w.stats.last_error.startswith("OSError EIO: Input/output error (fsync ")
    assert w.path is None and list(iter_jsonl_lines(first)) == [rec(1)]
    broken["on"] = False
    mono.t = 102.5
    wall.t += 2.5
    assert w.write(rec(2))
    assert w.path != first
    w.close()
    assert read_all(tmp_path) == [rec(1), rec(2)]


def test_error_warnings_are_rate_limited(tmp_path, monkeypatch, caplog):
    wall, mono = Clock(ts("2026-11-25T10:11:00")), Clock(100.0)
    w = make(tmp_path, wall, mono)
    monkeypatch.setattr(wmod.os, "open", lambda *a, **k: enospc())
    caplog.set_level(logging.WARNING, logger="collector.store.writer")
    for step in range(1200):  # 2 minutes of 10 writes every 0.1 s
        mono.t = 100.0 + step * 0.1
        for _ in range(10):
            assert w.write(rec(step)) is False
        w.tick()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 2 <= len(warnings) <= 3  # the first, then at most one a minute
    assert w.stats.records_dropped == 12_000
    assert 100 <= w.stats.error_count <= 125  # about one attempt a second, not one per record


def test_unwritable_data_dir_gives_a_clear_error(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, flags, *a, **k):
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    w = make(tmp_path, Clock(ts("2026-11-25T10:11:00")))
    assert w.write(rec(1)) is False
    s = w.stats
    assert s.failing and s.records_dropped == 1 and s.files_opened == 0
    assert s.last_error.startswith("PermissionError EACCES: Permission denied (open ")
    assert "date=2026-11-25" in s.last_error
    assert files(tmp_path) == []
    w.close()


def test_read_only_file_system_on_mkdir(tmp_path, monkeypatch):
    def erofs(*_a, **_k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "makedirs", erofs)
    w = make(tmp_path, Clock(ts("2026-11-25T10:11:00")))
    assert w.write(rec(1)) is False
    assert w.stats.last_error.startswith("OSError EROFS: Read-only file system")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_chmod_unwritable_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        w = StreamWriter(ro, "polymarket", "orderbooks", clock=Clock(ts("2026-11-25T10:11:00")))
        assert w.write(rec(1)) is False
        assert "EACCES" in w.stats.last_error
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------ compression


def test_compression_round_trip_byte_for_byte(tmp_path):
    wall, mono = Clock(ts("2026-11-25T10:19:00")), Clock(100.0)
    w = make(tmp_path, wall, mono, compress_closed=True)
    lines = [
        orjson.dumps({"i": i, "s": "é€😀\u2028 \\\"quoted\"", "bids": [["0.41", str(i)]]}) for i in range(5000)
    ]
    lines.append(b'{"raw":"\x00\x01\xff not utf-8"}')  # bytes are bytes
    for x in lines:
        w.write(x)
    jsonl = w.path
    raw = b"".join(x + b"\n" for x in lines)
    wall.t = ts("2026-11-25T10:20:00.2")
    w.tick()  # rotation: close, then compress
    assert not jsonl.exists()
    z = jsonl.with_name(jsonl.name + ".zst")
    assert z.exists()
    assert zstandard.ZstdDecompressor().decompress(z.read_bytes()) == raw
    assert list(iter_jsonl_lines(z)) == lines
    assert not [p for p in z.parent.iterdir() if p.name.startswith(".")]  # no temp file left
    w.write(rec(1))  # the open file is never compressed
    open_file = w.path
    w.close()
    assert open_file.exists() and open_file.suffix == ".jsonl"
    assert read_all(tmp_path) == [*lines, rec(1)]


def test_compress_file_failure_keeps_the_source(tmp_path, monkeypatch):
    p = tmp_path / "a.jsonl"
    p.write_bytes(rec(1) + b"\n")

    def fail_rename(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "rename", fail_rename)
    with pytest.raises(WriteError, match="ENOSPC"):
        compress_file(p)
    assert p.read_bytes() == rec(1) + b"\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.jsonl"]


def test_compress_failure_during_rotation_is_not_fatal(tmp_path, monkeypatch):
    wall = Clock(ts("2026-11-25T10:19:00"))
    w = make(tmp_path, wall, compress_closed=True)
    w.write(rec(1))
    first = w.path

    def boom(path, **_k):
        raise WriteError(f"compress failed: OSError ENOSPC: No space left on device (compress {path})")

    monkeypatch.setattr(wmod, "compress_file", boom)
    wall.t = ts("2026-11-25T10:20:00")
    assert w.write(rec(2))  # rotation happened, the new file is fine
    assert first.exists() and w.path != first
    assert "compress failed" in w.stats.last_error and not w.stats.failing
    w.close()
    assert read_all(tmp_path) == [rec(1), rec(2)]


def test_compress_file_refuses_to_overwrite(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(rec(1) + b"\n")
    (tmp_path / "a.jsonl.zst").write_bytes(b"other")
    with pytest.raises(WriteError, match="EEXIST"):
        compress_file(p)
    assert p.exists() and (tmp_path / "a.jsonl.zst").read_bytes() == b"other"


# ------------------------------------------------------------------ WriterSet


def test_writer_set(tmp_path):
    wall, mono = Clock(ts("2026-11-25T10:19:59")), Clock(100.0)
    ws = WriterSet(tmp_path, WriterSettings(rotate_minutes=5, fsync_interval_s=2.0, compress_closed=True), wall, mono)
    ob = ws.get("polymarket", "orderbooks")
    assert ws.get("polymarket", "orderbooks") is ob
    assert ob.rotate_minutes == 5 and ob.fsync_interval_s == 2.0 and ob.compress_closed
    assert ws.write("polymarket", "orderbooks", rec(1))
    assert ws.write("polymarket", "poll_stats", rec(2))
    assert ws.write("limitless", "orderbooks", rec(3))
    assert len(ws) == 3 and {(w.venue, w.stream) for w in ws} == {
        ("polymarket", "orderbooks"),
        ("polymarket", "poll_stats"),
        ("limitless", "orderbooks"),
    }
    mono.t = 102.0
    ws.tick()
    assert all(s.fsyncs == 1 for s in ws.stats().values())
    wall.t = ts("2026-11-25T10:20:00")
    ws.tick()  # every stream rotates and compresses, no data needed
    assert all(w.path is None for w in ws)
    assert len(files(tmp_path, "*.jsonl.zst")) == 3 and files(tmp_path, "*.jsonl") == []
    ws.write("polymarket", "orderbooks", rec(4))
    ws.close()
    stats = ws.stats()
    assert isinstance(stats[("polymarket", "orderbooks")], WriterStats)
    assert stats[("polymarket", "orderbooks")].records_written == 2
    assert stats[("polymarket", "orderbooks")].as_dict()["rotations"] == 1
    assert ws.write("polymarket", "poll_errors", rec(5)) is False  # closed set
    assert sorted(read_all(tmp_path)) == sorted([rec(1), rec(2), rec(3), rec(4)])
    assert (tmp_path / "limitless" / "orderbooks" / "date=2026-11-25").is_dir()


def test_writer_set_defaults(tmp_path):
    with WriterSet(tmp_path, WriterSettings()) as ws:
        w = ws.get("limitless", "poll_errors")
        assert w.rotate_minutes == 10 and w.fsync_interval_s == 1.0 and not w.compress_closed
        assert w.write(rec(1))
    assert read_all(tmp_path) == [rec(1)]
