"""Storage faults: disk full (a real 2 MiB tmpfs, or an os.write hook when mounting is refused),
an unwritable data directory, a snapshot replaced by garbage. Asserted on the data.

Already proven at the writer level (tests/test_writer.py): ENOSPC drops records and recovers into a
new file, partial writes are cut to whole lines, EACCES/EROFS give a clear error. Here: the whole
poller on a file system that really fills up, every record either on disk or counted as dropped,
and the operator-visible reporting (heartbeat/poll_stats, log lines).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import orjson

from collector.poller.loop import Poller
from collector.sim.testing import run_sim
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot, write_snapshot
from tests import helpers as h
from tests.reliability import harness as H
from tests.reliability import schema
from tests.reliability.conftest import tmpfs_mount

POLY, LIM = H.POLY, H.LIM


class DiskFull:
    """Fill the file system of ``root`` (tmpfs) or, without one, fail os.write under ``root``."""

    def __init__(self, root: Path, fs, monkeypatch):
        self.root = root
        self.fs = fs
        self.mp = monkeypatch
        self.filler = root / "filler.bin"
        self.full = False
        self.mode = "tmpfs" if fs is not None else "os.write hook"
        if fs is None:
            real_write = os.write
            prefix = str(root)

            def write(fd, data):
                if self.full:
                    try:
                        target = os.readlink(f"/proc/self/fd/{fd}")
                    except OSError:
                        target = ""
                    if target.startswith(prefix):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real_write(fd, data)

            monkeypatch.setattr(os, "write", write)

    def fill(self) -> None:
        self.full = True
        if self.fs is None:
            return
        with open(self.filler, "wb") as f:
            chunk = b"\0" * 65536
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
        # the last partial chunk: fill byte by byte until nothing fits
        fd = os.open(self.filler, os.O_WRONLY | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError:
            pass
        finally:
            os.close(fd)
        assert self.fs.free_bytes() < 4096

    def free(self) -> None:
        self.full = False
        if self.fs is not None:
            self.filler.unlink()


def test_disk_full_then_space_returns(tmpfs, tmp_path, monkeypatch, caplog):
    """The data directory's file system fills up mid-run (another process took the space) and
    frees up 4 s later. The poller keeps running, reports the error (warning naming ENOSPC and the
    file, heartbeat stats with writer_error and records_dropped, poll_stats records_dropped after
    recovery), resumes writing within ~1 s of the space returning, and the earlier files stay
    intact. Every record the poller produced is either on disk or counted as dropped."""
    root = tmpfs.path if tmpfs is not None else tmp_path / "data"
    data = root / "data"
    caplog.set_level(logging.WARNING, logger="collector.store.writer")
    beats: list[dict] = []
    with run_sim("--markets", "8", "--seed", "61") as sim:
        settings = H.prepare(sim, data, monkeypatch, POLLER__HEARTBEAT_INTERVAL_S="1")
        ids = {v: H.instrument_ids(data, v, sim) for v in (POLY, LIM)}
        disk = DiskFull(root, tmpfs, monkeypatch)
        m = H.Marks()
        poller = Poller(settings, on_heartbeat=beats.append)
        with h.poller_thread(poller):
            m("start")
            time.sleep(2.0)
            before = {f: f.read_bytes() for f in schema.data_files(data)}
            disk.fill()
            m("full")
            time.sleep(3.5)
            # Under load a venue may not have had a write refused yet: wait for both (bounded).
            h.wait_for(lambda: all(poller.lanes[v].books.stats.records_dropped > 0 for v in (POLY, LIM)), 20)
            time.sleep(1.5)  # a heartbeat or two with the error reported
            disk.free()
            m("free")
            time.sleep(6.0)  # a long enough window that one late Limitless book (0.35 s spacing) does not swing coverage
            m("end")
    ds = schema.scan(data)
    schema.assert_clean(ds)  # no torn line: partial writes were cut back to whole records
    figures: dict = {"mode": disk.mode}
    for f, b in before.items():  # earlier files intact: what was on disk is still there, unchanged
        assert f.read_bytes()[: len(b)] == b, f"{f} lost data written before the disk filled up"
    for v in (POLY, LIM):
        lane = poller.lanes[v]
        ws = lane.books.stats
        on_disk = len(ds.books(v)) + len(ds.gaps(v))
        produced = lane.total.polls_ok + lane.total.gaps
        assert on_disk + ws.records_dropped == produced, (v, on_disk, ws.records_dropped, produced)
        assert ws.records_dropped > 0 and ws.error_count >= 1
        assert "ENOSPC" in ws.last_error and str(data) in ws.last_error, ws.last_error
        c_before = H.cov(ds, v, ids[v], m["start"] + 1, m["full"])
        c_after = H.cov(ds, v, ids[v], m["free"] + 1.5, m["end"])
        assert c_before.ratio >= 0.95 and c_after.ratio >= 0.95, (v, c_before, c_after)
        resumed = H.first_book_after(ds, v, ids[v], m["free"])
        assert all(d is not None and d <= 2.5 for d in resumed.values()), (v, resumed)
        # a full tmpfs still takes appends into the last, partly used page of an open file: at most
        # a few KB of books can land after the fill; nothing more
        while_full = H.books_between(ds.books(v), m.ms("full") + 500, m.ms("free"))
        assert sum(len(orjson.dumps(b)) for b in while_full) <= 3 * 4096, f"{v}: {len(while_full)} books on a full disk"
        # reported: heartbeats while full carry the writer error; poll_stats after recovery the drops
        # A full tmpfs takes appends into its last page for a while (markers are ~200 B), so the
        # error shows from the venue's first refused write on, and stays until the space returns.
        full_beats = [x for b in beats for x in b["venues"]
                      if x["venue"] == v and m.ms("full") <= b["ts_ms"] < m.ms("free")]
        first = next((i for i, x in enumerate(full_beats) if x["writer_error"]), None)
        assert first is not None, f"{v}: no heartbeat reported the full disk"
        assert all(x["writer_error"] and "ENOSPC" in x["writer_error"] for x in full_beats[first:])
        assert full_beats[-1]["records_dropped"] > 0
        late = [r for r in ds.stats(v) if r["ts_ms"] >= m.ms("free") + 1500]
        assert late and late[-1]["records_dropped"] == ws.records_dropped and late[-1]["writer_error"] is None
        # the file open when the disk filled was abandoned; recovery opened a new one
        new_files = [f for f in ds.files if f.venue == v and f.stream == "orderbooks" and f.path not in before]
        assert new_files, f"{v}: no new file after recovery"
        figures.update({f"{v}_dropped": ws.records_dropped, f"{v}_errors": ws.error_count,
                        f"{v}_cov_after": c_after, f"{v}_resume_s": max(resumed.values())})
    warnings = [r.getMessage() for r in caplog.records if r.name == "collector.store.writer"]
    assert any("No space left on device" in w for w in warnings), warnings[:3]
    per_writer = {}
    for w in warnings:
        key = w.split(":", 1)[0]
        per_writer[key] = per_writer.get(key, 0) + ("recovered" not in w)
    assert max(per_writer.values()) <= 2, per_writer  # rate limited: one per failure episode
    H.report("disk_full", **figures)


def test_unwritable_data_directory_keeps_running_and_says_why(tmp_path, monkeypatch):
    """`collector poll` on a data directory it cannot write to: a read-only tmpfs (when mount is
    permitted) that becomes writable again, and a data_dir path under a regular file (ENOTDIR).

    Decided behaviour: the process does not exit or crash-loop; it keeps polling, logs one clear
    warning per writer (errno name, message, operation and path), retries about once a second,
    and writes as soon as the directory becomes writable; SIGTERM still exits 0."""
    with run_sim("--markets", "8", "--seed", "62") as sim:
        # 1. a path that can never be a directory
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where the data directory should be")
        bad = blocker / "data"
        env = H.env_for(sim, bad)
        log = tmp_path / "enotdir.log"
        with h.poll_process(env, log) as proc:
            time.sleep(3.0)
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
            assert h.sigterm(proc, timeout=15)[0] == 0
        text = log.read_text()
        assert "NotADirectoryError ENOTDIR: Not a directory" in text and str(bad) in text, text[-1500:]
        assert "Traceback" not in text, text[-1500:]
        # one warning per writer (poll_stats of each venue), not one per attempt (~4 each in 4 s)
        enotdir = text.count("ENOTDIR")
        assert 1 <= enotdir <= 2, enotdir

        # 2. a read-only file system that becomes writable
        with tmpfs_mount(tmp_path / "ro", "8m") as fs:
            if fs is None:  # mount not permitted: the read-only half needs a tmpfs
                H.report("unwritable", enotdir_warnings=enotdir, erofs="skipped (no mount)")
                return
            data = fs.path / "data"
            H.prepare(sim, data, monkeypatch)
            ids = {v: H.instrument_ids(data, v, sim) for v in (POLY, LIM)}
            fs.remount("ro")
            log = tmp_path / "erofs.log"
            with h.poll_process(H.env_for(sim, data), log) as proc:
                m = H.Marks()
                m("start")
                time.sleep(3.0)
                # Both venues refused by the read-only disk before it turns writable (under load the
                # first polls can come after a fixed wait).
                h.wait_for(lambda: all(f"writer {v}/orderbooks: " in log.read_text() for v in (POLY, LIM)), 30)
                assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
                assert schema.data_files(data) == [] or all(
                    f.stat().st_mtime < m["start"] for f in schema.data_files(data))
                fs.remount("rw")
                m("rw")
                time.sleep(8.0)  # coverage is judged from rw + 1.5 s: a window of 6.5 s
                m("sig")
                assert h.sigterm(proc, timeout=15)[0] == 0
            text = log.read_text()
            assert "OSError EROFS: Read-only file system" in text and str(data) in text, text[-1500:]
            assert "Traceback" not in text
            ds = schema.scan(data)
            schema.assert_clean(ds)
            for v in (POLY, LIM):
                c = H.cov(ds, v, ids[v], m["rw"] + 1.5, m["sig"])
                assert c.ratio >= 0.9, (v, c)
                st = ds.stats(v)
                assert st and st[-1]["records_dropped"] > 0, "the drops while read-only are reported"
            H.report("unwritable", enotdir_warnings=enotdir, erofs_warnings=text.count("EROFS"), erofs_cov_after_rw=c)


GARBAGE = {
    "random bytes": os.urandom(3000),
    "empty": b"",
    "null": b"null",
    "array": b"[1, 2, 3]",
    "torn": None,  # filled in from the good file: its first half
    "future schema": None,  # the good file with schema_version 99
    "other venue": None,  # the good file claiming to be limitless'
    "bad instrument": None,  # an instrument missing market_id
}


def _garbage(good: bytes) -> dict[str, bytes]:
    doc = orjson.loads(good)
    out = dict(GARBAGE)
    out["torn"] = good[: len(good) // 2]
    out["future schema"] = orjson.dumps({**doc, "schema_version": 99})
    out["other venue"] = orjson.dumps({**doc, "venue": "limitless"})
    broken = [dict(i) for i in doc["instruments"]]
    del broken[0]["market_id"]
    out["bad instrument"] = orjson.dumps({**doc, "instruments": broken})
    return out


def test_snapshot_replaced_by_garbage_keeps_the_last_good_set(tmp_path, monkeypatch):
    """Cold start on garbage (nothing to poll, no crash, error reported), then a good snapshot,
    then the file replaced in place and atomically by eight kinds of garbage and by a directory,
    then good again. The poller keeps polling the last good set throughout (coverage >= 0.95),
    reports snapshot_error while the file is bad, and clears it once the file is good.
    (tests/test_poller.py::test_snapshot_reload_shrink_corrupt_restore covers a torn file and a
    shrinking set.)"""
    with run_sim("--markets", "8", "--seed", "63") as sim:
        settings = H.prepare(sim, tmp_path, monkeypatch, venues=POLY, POLLER__SNAPSHOT_CHECK_S="0.1")
        path = snapshot_path(tmp_path, POLY)
        good = path.read_bytes()
        good_snap = read_snapshot(path)
        ids = [i.instrument_id for i in good_snap.instruments]
        garbage = _garbage(good)
        path.write_bytes(garbage["random bytes"])
        m = H.Marks()
        with h.poller_thread(Poller(settings)):
            m("cold")
            time.sleep(1.5)
            write_snapshot(path, good_snap.model_copy(update={"asof_ms": good_snap.asof_ms + 1}))
            m("good")
            time.sleep(1.5)
            m("garbage")
            for k, (name, blob) in enumerate(garbage.items()):
                if k % 2:
                    path.write_bytes(blob)  # in place (a careless editor)
                else:
                    tmp = path.with_name("garbage.tmp")
                    tmp.write_bytes(blob)
                    os.replace(tmp, path)  # atomically (a buggy writer)
                time.sleep(0.4)
            path.unlink()
            path.mkdir()  # a directory where the file should be
            time.sleep(0.6)
            path.rmdir()
            write_snapshot(path, good_snap.model_copy(update={"asof_ms": good_snap.asof_ms + 2}))
            m("restored")
            time.sleep(1.5)
            m("end")
    ds = schema.scan(tmp_path)
    schema.assert_clean(ds)
    st = ds.stats(POLY)
    cold = [r for r in st if r["ts_ms"] < m.ms("good")]
    assert cold and all(r["active_instruments"] == 0 and r["snapshot_error"] for r in cold)
    assert H.books_between(ds.books(POLY), 0, m.ms("good")) == []
    c = H.cov(ds, POLY, ids, m["good"] + 1, m["end"])
    assert c.ratio >= 0.95, c
    bad = [r for r in st if m.ms("garbage") + 300 <= r["ts_ms"] < m.ms("restored")]
    assert bad and all(r["snapshot_error"] and r["active_instruments"] == len(ids) for r in bad), bad[:2]
    assert st[-1]["snapshot_error"] is None and st[-1]["active_instruments"] == len(ids)
    H.check_totals(ds, POLY)
    H.report("garbage_snapshot", coverage=c, kinds=len(garbage) + 1)
