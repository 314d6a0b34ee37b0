"""Disk retention (collector/ops/retention.py): old days' order-book JSONL goes only once the day's
Parquet is verified against exactly those files; the manifest compaction writes for it; the CLI
and the Prefect flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector import read
from collector.ops import retention as rt
from collector.store import compact as cm
from collector.store import layout, verified, verify
from collector.store.compress import compress_file
from tests.datagen import DEFAULT_START_MS, copy_of, shared

DAY1, DAY2 = "2026-01-10", "2026-01-11"
DAY = 86_400_000
# 2026-01-10 ends at 2026-01-11T00:00Z; with days=1 it is old enough from 2026-01-12T00:00Z
DAY1_END = DEFAULT_START_MS + 3600_000
NOW = DAY1_END + 3 * DAY  # both days ended more than 1 day ago, DAY2 less than 3


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    # the recording of tests/test_compact.py (same name and arguments: generated once per session)
    return shared(tmp_path_factory, "small", start_ms=DEFAULT_START_MS + 30 * 60_000, duration_s=3600,
                  markets={"polymarket": 6, "limitless": 4})


@pytest.fixture
def data(small, tmp_path):
    return copy_of(small, tmp_path / "data")


def jsonl(d: Path, venue: str, date: str) -> list[Path]:
    return sorted(p for p in layout.partition_dir(d, venue, "orderbooks", date).glob("*.jsonl*"))


def books(d: Path) -> list[dict]:
    with read.gc_paused():
        return sorted((({k: v for k, v in r.items() if v is not None}) for r in read.iter_books(d, gaps=True)),
                      key=lambda r: (r["ts_ms"], r["venue"], r.get("instrument_id") or "", r["record_type"]))


def compact_kept(d: Path, venue: str, date: str) -> cm.CompactReport:
    rep = cm.compact_day(d, venue, date, keep_jsonl=True, now_ms=NOW)
    assert rep.ok and rep.status == "compacted" and rep.kept_jsonl, rep
    return rep


def statuses(reps: list[rt.DayRetention]) -> dict[str, str]:
    return {r.date: r.status for r in reps}


def test_compaction_writes_the_manifest(data):
    d = data.data_dir
    rep = compact_kept(d, "polymarket", DAY1)
    doc = json.loads(layout.verified_path(d, "polymarket", DAY1).read_bytes())
    assert doc["status"] == "verified" and doc["books"] == rep.books and doc["gaps"] == rep.gaps
    assert set(doc["jsonl"]) == {layout.base_name(p.name) for p in jsonl(d, "polymarket", DAY1)}
    assert doc["parquet"] == verified.file_digest(layout.parquet_path(d, "polymarket", DAY1))
    assert verified.check(d, "polymarket", DAY1) is None


def test_deletes_verified_old_days_idempotently_and_the_data_still_reads(data):
    d = data.data_dir
    before = books(d)
    n_files = {(v, day): len(jsonl(d, v, day)) for v in data.venues for day in (DAY1, DAY2)}
    for v in data.venues:
        for day in (DAY1, DAY2):
            compact_kept(d, v, day)
    reps = rt.apply_retention(d, "polymarket", 1, now_ms=NOW)
    assert statuses(reps) == {DAY1: "deleted", DAY2: "deleted"}
    assert [r.files for r in reps] == [n_files[("polymarket", DAY1)], n_files[("polymarket", DAY2)]]
    assert not layout.partition_dir(d, "polymarket", "orderbooks", DAY1).exists()
    assert jsonl(d, "limitless", DAY1)  # another venue is left alone
    assert rt.apply_retention(d, "polymarket", 1, now_ms=NOW) == []  # idempotent
    assert books(d) == before  # every record now comes from the Parquet
    # days=3: DAY2 ended less than 3 days before NOW, DAY1 exactly 3 days before (old enough)
    assert statuses(rt.apply_retention(d, "limitless", 3, now_ms=NOW)) == {DAY1: "deleted"}
    assert jsonl(d, "limitless", DAY2)


def test_never_before_the_day_is_old_enough_nor_today(data):
    d = data.data_dir
    compact_kept(d, "polymarket", DAY1)
    for now in (DAY1_END - 1, DAY1_END + 60_000, DAY1_END + DAY - 1):  # today; just over; 1 day minus 1 ms
        assert rt.apply_retention(d, "polymarket", 1, now_ms=now) == []
    assert jsonl(d, "polymarket", DAY1)
    assert statuses(rt.apply_retention(d, "polymarket", 1, now_ms=DAY1_END + DAY)) == {DAY1: "deleted"}
    with pytest.raises(ValueError):
        rt.apply_retention(d, "polymarket", 0, now_ms=NOW)


def test_never_deletes_an_unverified_day(data, monkeypatch):
    d = data.data_dir
    v = "limitless"
    snap = {p: p.read_bytes() for day in (DAY1, DAY2) for p in jsonl(d, v, day)}

    # 1. no Parquet at all
    reps = rt.apply_retention(d, v, 1, now_ms=NOW)
    assert statuses(reps) == {DAY1: "kept", DAY2: "kept"} and "no verified Parquet" in reps[0].reason

    # 2. Parquet present but never verified (written by hand, or by a version without manifests)
    compact_kept(d, v, DAY1)
    layout.verified_path(d, v, DAY1).unlink()
    assert layout.parquet_path(d, v, DAY1).is_file()
    assert "no verified Parquet" in rt.apply_retention(d, v, 1, now_ms=NOW)[0].reason

    # 3. the last compaction failed verification (the old Parquet is still on disk)
    compact_kept(d, v, DAY1)
    real = verify.parquet_rows_to_dicts

    def corrupt(table, **kw):
        full = 0
        for r in real(table, **kw):
            full += r.get("record_type") == "orderbook"  # a full row (unchanged rows hold no book)
            yield {**r, "best_bid": 0.123456} if full == 3 and r.get("record_type") == "orderbook" else r

    monkeypatch.setattr(verify, "parquet_rows_to_dicts", corrupt)
    assert cm.compact_day(d, v, DAY1, keep_jsonl=True, now_ms=NOW).status == "failed"
    monkeypatch.undo()
    assert layout.parquet_path(d, v, DAY1).is_file()
    rep = rt.apply_retention(d, v, 1, now_ms=NOW)[0]
    assert rep.status == "kept" and "failed" in rep.reason and "VerificationError" in rep.reason

    # 4. verified, then the Parquet was replaced by something else
    compact_kept(d, v, DAY1)
    pq_path = layout.parquet_path(d, v, DAY1)
    pq_path.write_bytes(pq_path.read_bytes() + b"\0")
    assert "changed since it was verified" in rt.apply_retention(d, v, 1, now_ms=NOW)[0].reason

    # 5. verified, then a JSONL file grew (a late writer) or a new one appeared
    compact_kept(d, v, DAY1)
    f = next(p for p in jsonl(d, v, DAY1) if p.suffix == ".jsonl")
    with open(f, "ab") as fh:
        fh.write(b'{"record_type":"gap"}\n')
    assert "changed size" in rt.apply_retention(d, v, 1, now_ms=NOW)[0].reason
    snap[f] = f.read_bytes()
    compact_kept(d, v, DAY1)
    late = f.with_name("orderbooks.20260110T2350Z.235959000-1-abcdef.jsonl")
    late.write_bytes(b"")
    assert "appeared after" in rt.apply_retention(d, v, 1, now_ms=NOW)[0].reason
    late.unlink()

    # 6. a gaps Parquet that was not part of the verified set
    compact_kept(d, v, DAY1)
    doc = json.loads(layout.verified_path(d, v, DAY1).read_bytes())
    if doc["gaps_parquet"] is not None:
        layout.parquet_path(d, v, DAY1, gaps=True).write_bytes(b"x")
        assert "gaps.parquet changed" in rt.apply_retention(d, v, 1, now_ms=NOW)[0].reason

    assert {p: p.read_bytes() for p in snap} == snap  # not one byte of JSONL removed


def test_a_file_compressed_after_verification_is_still_covered(data):
    d = data.data_dir
    compact_kept(d, "polymarket", DAY1)
    plain = [p for p in jsonl(d, "polymarket", DAY1) if p.suffix == ".jsonl"]
    assert plain
    for p in plain:
        if not layout.compressed_path(p).exists():
            compress_file(p)
    assert verified.check(d, "polymarket", DAY1) is None
    assert statuses(rt.apply_retention(d, "polymarket", 1, now_ms=NOW)) == {DAY1: "deleted", DAY2: "kept"}


def test_archive_moves_the_files_and_dry_run_touches_nothing(data, tmp_path):
    d = data.data_dir
    arch = tmp_path / "archive"
    compact_kept(d, "polymarket", DAY1)
    names = sorted(p.name for p in jsonl(d, "polymarket", DAY1))
    sizes = {p.name: p.stat().st_size for p in jsonl(d, "polymarket", DAY1)}
    reps = rt.apply_retention(d, "polymarket", 1, action="archive", archive_dir=arch, now_ms=NOW, dry_run=True)
    assert statuses(reps) == {DAY1: "would-archive", DAY2: "kept"} and not arch.exists()
    reps = rt.apply_retention(d, "polymarket", 1, action="archive", archive_dir=arch, now_ms=NOW)
    assert statuses(reps) == {DAY1: "archived", DAY2: "kept"}
    moved = layout.partition_dir(arch, "polymarket", "orderbooks", DAY1)
    assert sorted(p.name for p in moved.iterdir()) == names
    assert {p.name: p.stat().st_size for p in moved.iterdir()} == sizes
    assert not jsonl(d, "polymarket", DAY1)
    assert statuses(rt.apply_retention(d, "polymarket", 1, action="archive", archive_dir=arch, now_ms=NOW)) == {DAY2: "kept"}
    with pytest.raises(ValueError):
        rt.apply_retention(d, "polymarket", 1, action="archive", now_ms=NOW)


def test_settings_and_cli(data, monkeypatch, capsys):
    from collector.cli.main import main
    from collector.config.settings import load_settings
    from collector.model.errors import ConfigError

    assert load_settings().retention.jsonl_days is None  # off by default
    assert cm.keep_jsonl_default(load_settings(retention={"jsonl_days": 7}))  # compaction leaves it to retention
    with pytest.raises(ConfigError, match="archive_dir"):
        load_settings(retention={"action": "archive"})
    with pytest.raises(ConfigError, match="jsonl_days"):
        load_settings(retention={"jsonl_days": 0})

    d = data.data_dir
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(d))
    assert main(["retention"]) == 2
    assert "retention is off" in capsys.readouterr().out
    compact_kept(d, "polymarket", DAY1)
    compact_kept(d, "polymarket", DAY2)
    # the real clock: both 2026-01 days are long over
    assert main(["retention", "--days", "1", "--venue", "polymarket", "--dry-run"]) == 0
    assert f"retention polymarket {DAY1}: would-delete" in capsys.readouterr().out
    assert jsonl(d, "polymarket", DAY1)
    monkeypatch.setenv("COLLECTOR_RETENTION__JSONL_DAYS", "1")
    assert main(["retention"]) == 0
    out = capsys.readouterr().out
    assert f"retention polymarket {DAY1}: deleted" in out and f"retention limitless {DAY1}: kept (no verified" in out
    assert not jsonl(d, "polymarket", DAY1) and jsonl(d, "limitless", DAY1)
    assert main(["retention"]) == 0
    assert "polymarket: nothing older than 1 days" in capsys.readouterr().out


@pytest.mark.prefect
def test_flow_applies_retention(data, monkeypatch, prefect_harness):
    import flows.retention as fr

    d = data.data_dir
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(d))
    assert fr.retention() == []  # off: the scheduled run Completes having done nothing
    assert jsonl(d, "polymarket", DAY1)
    compact_kept(d, "polymarket", DAY1)
    rows = fr.retention(days=1)
    assert {(r["venue"], r["date"], r["status"]) for r in rows} == {
        ("polymarket", DAY1, "deleted"), ("polymarket", DAY2, "kept"),
        ("limitless", DAY1, "kept"), ("limitless", DAY2, "kept"),
    }
    assert not jsonl(d, "polymarket", DAY1)
    from prefect.artifacts import Artifact

    art = Artifact.get(fr.ARTIFACT_KEY)
    got = json.loads(art.data) if isinstance(art.data, str) else art.data
    assert {(r["venue"], r["date"], r["status"]) for r in got} == {(r["venue"], r["date"], r["status"]) for r in rows}
