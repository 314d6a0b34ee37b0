"""collector.store.compact (JSONL day -> verified Parquet), zstd conversion losslessness, the CLI and
the Prefect flow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from collector import read
from collector.read.datafiles import data_files
from collector.store import compact as cm
from collector.store import verify
from collector.store.compress import compress_file
from collector.store.files import iter_jsonl_lines
from collector.store.writer import StreamWriter
from tests.datagen import DEFAULT_START_MS, copy_of, shared

DAY1, DAY2 = "2026-01-10", "2026-01-11"
LATER = DEFAULT_START_MS + 3 * 86_400_000  # "now" for compaction: both days are long over


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return shared(
        tmp_path_factory,
        "small",
        start_ms=DEFAULT_START_MS + 30 * 60_000,
        duration_s=3600,
        markets={"polymarket": 6, "limitless": 4},
    )


@pytest.fixture
def data(small, tmp_path):
    return copy_of(small, tmp_path / "data")


def norm(r: dict) -> dict:
    return {k: v for k, v in r.items() if v is not None}


def all_records(d):
    with read.gc_paused():
        return [norm(r) for r in read.iter_books(d, gaps=True)]


def tie(r: dict) -> tuple:
    return (r["ts_ms"], r["venue"], r.get("instrument_id") or "", r["record_type"])


def day_files(d: Path, venue: str, date: str) -> list[Path]:
    return sorted((d / venue / "orderbooks" / f"date={date}").glob("*.jsonl*"))


def test_compact_round_trip_and_delete(data):
    d = data.data_dir
    before = all_records(d)
    reps = {}
    for date in (DAY1, DAY2):
        for v in data.venues:
            rep = cm.compact_day(d, v, date, keep_jsonl=(v == "limitless"), now_ms=LATER)
            assert rep.ok and rep.status == "compacted" and rep.verified, rep
            reps[(v, date)] = rep
    # every record reads back the same, in ts_ms order, now from Parquet (equal ts_ms of different
    # instruments may come in another order: ties follow the file order, which changed)
    after = all_records(d)
    assert [r["ts_ms"] for r in after] == [r["ts_ms"] for r in before]
    assert sorted(after, key=tie) == sorted(before, key=tie)
    assert sum(r.books for r in reps.values()) == data.n_books
    assert sum(r.gaps for r in reps.values()) == sum(len(g) for g in data.gaps.values())
    # polymarket's JSONL is gone, limitless's kept (and ignored by the reader: no duplicates)
    assert not day_files(d, "polymarket", DAY1) and not (d / "polymarket/orderbooks" / f"date={DAY1}").exists()
    assert reps[("polymarket", DAY1)].deleted_files >= reps[("polymarket", DAY1)].files
    assert day_files(d, "limitless", DAY2) and reps[("limitless", DAY2)].keep_reason == "keep_jsonl"
    kinds = {f.kind for v in data.venues for f in data_files(d, v)}
    assert kinds == {"parquet"}
    # a second run: nothing left to do for polymarket; limitless is rewritten identically
    again = cm.compact_day(d, "polymarket", DAY1, now_ms=LATER)
    assert again.ok and again.status == "already"
    p = d / "limitless/orderbooks_parquet" / f"date={DAY2}" / "orderbooks.parquet"
    t1 = pq.read_table(p)
    rep = cm.compact_day(d, "limitless", DAY2, keep_jsonl=True, now_ms=LATER)
    assert rep.status == "compacted" and pq.read_table(p).equals(t1)
    # no temp file left anywhere
    assert not [x for x in d.rglob(".*") if x.is_file()]


def test_parquet_layout(data):
    d = data.data_dir
    rep = cm.compact_day(d, "polymarket", DAY2, keep_jsonl=True, now_ms=LATER)
    pf = pq.ParquetFile(rep.parquet_path)
    sch = pf.schema_arrow
    assert str(sch.field("bid_prices").type) == "list<element: double>"
    assert str(sch.field("ask_sizes").type) == "list<element: double>"
    assert str(sch.field("ts_ms").type) == "int64" and str(sch.field("mid").type) == "double"
    assert str(sch.field("neg_risk").type) == "bool" and "last_trade_price" in sch.names
    rg = pf.metadata.row_group(0)
    assert rg.column(0).compression == "ZSTD"
    assert [c.column_index for c in rg.sorting_columns] == [sch.get_field_index("instrument_id"), sch.get_field_index("ts_ms")]
    t = pf.read()
    keys = list(zip(t.column("instrument_id").to_pylist(), t.column("ts_ms").to_pylist()))
    assert keys == sorted(keys)
    assert t.num_rows == rep.books
    # the level columns are the bids/asks of the JSONL
    first = next(r for r in read.iter_books(d, "polymarket", instruments=[keys[0][0]], start=DAY2))
    row = t.slice(0, 1).to_pylist()[0]
    assert [[p, s] for p, s in zip(row["bid_prices"], row["bid_sizes"])] == first["bids"]
    g = pq.read_table(rep.gaps_path)
    assert g.num_rows == rep.gaps and g.column("ts_ms").to_pylist() == sorted(g.column("ts_ms").to_pylist())
    # exact decimals survive the doubles: the text on disk has <= 15 significant digits
    exact_json = read.load_books(d, "polymarket", start=DAY2, exact=True)
    (d / "polymarket/orderbooks" / f"date={DAY2}").rename(d / "moved")  # force the Parquet path
    exact_pq = read.load_books(d, "polymarket", start=DAY2, exact=True)
    assert [norm(r) for r in exact_pq] == [norm(r) for r in exact_json]


def test_column_encodings_and_other_readers(data):
    """The tuned layout (compact.writer_options): dictionaries but for the level lists, delta-coded
    times, the hash as delta byte array; DuckDB and polars read every column as pyarrow does."""
    import duckdb
    import polars as pl

    d = data.data_dir
    rep = cm.compact_day(d, "polymarket", DAY2, keep_jsonl=True, now_ms=LATER)
    md = pq.ParquetFile(rep.parquet_path).metadata
    enc = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            enc.setdefault(col.path_in_schema.split(".")[0], set()).update(col.encodings)
    assert "DELTA_BINARY_PACKED" in enc["ts_ms"] and "DELTA_BINARY_PACKED" in enc["ob_ts_ms"]
    assert "DELTA_BYTE_ARRAY" in enc["hash"]
    assert not any("DICTIONARY" in e for e in enc["bid_prices"] | enc["ask_sizes"])
    assert any("DICTIONARY" in e for e in enc["instrument_id"]) and any("DICTIONARY" in e for e in enc["latency_ms"])
    assert md.row_group(0).column(0).statistics.has_min_max
    cols = ["instrument_id", "ts_ms", "ob_ts_ms", "hash", "latency_ms", "bid_prices", "ask_sizes", "record_type"]
    want = pq.read_table(rep.parquet_path, columns=cols).to_pylist()
    got_duck = duckdb.sql(f"SELECT {', '.join(cols)} FROM read_parquet('{rep.parquet_path}')").fetchall()
    assert [tuple(r[c] for c in cols) for r in want] == got_duck
    assert pl.read_parquet(rep.parquet_path, columns=cols).to_dicts() == want
    assert all(len(r["hash"]) == 40 for r in want if r["hash"] is not None)


def test_today_and_grace_are_refused(data):
    d = data.data_dir
    day2_end = DEFAULT_START_MS + 3600_000 + 86_400_000  # 2026-01-12T00:00Z
    for now in (DEFAULT_START_MS + 3600_000 + 5_000, day2_end + 60_000):  # today; 1 min after midnight
        rep = cm.compact_day(d, "polymarket", DAY2, now_ms=now)
        assert not rep.ok and rep.status == "refused"
    assert not (d / "polymarket/orderbooks_parquet").exists()
    assert cm.compact_day(d, "polymarket", DAY2, now_ms=day2_end + 16 * 60_000).status == "compacted"
    assert cm.compact_day(d, "polymarket", "2026-01-01", now_ms=LATER).status == "nothing"
    assert cm.compact_day(d, "polymarket", "2026-13-01", now_ms=LATER).status == "failed"


def test_verification_failure_keeps_the_jsonl(data, monkeypatch):
    d = data.data_dir
    files = day_files(d, "limitless", DAY1)
    snap = {p: p.read_bytes() for p in files}
    real = verify.parquet_rows_to_dicts

    def corrupt(table, **kw):
        books = 0
        for r in real(table, **kw):
            if r.get("record_type") == "orderbook":  # a full row (unchanged rows hold no book)
                books += 1
                if books == 7:
                    r = {**r, "best_bid": 0.123456}
            yield r

    monkeypatch.setattr(verify, "parquet_rows_to_dicts", corrupt)
    rep = cm.compact_day(d, "limitless", DAY1, now_ms=LATER)
    assert not rep.ok and rep.status == "failed" and "best_bid" in rep.error
    assert {p: p.read_bytes() for p in day_files(d, "limitless", DAY1)} == snap  # untouched
    assert not (d / "limitless/orderbooks_parquet" / f"date={DAY1}" / "orderbooks.parquet").exists()
    assert not [x for x in d.rglob(".*.tmp.*")]


def test_unknown_record_type_and_fields(data):
    d = data.data_dir
    f = day_files(d, "limitless", DAY1)[0]
    extra = [
        {"record_type": "orderbook", "schema_version": 1, "venue": "limitless", "instrument_id": "limitless:new",
         "poll_key": "new", "market_id": "new", "outcome": "YES", "ts_ms": DEFAULT_START_MS + 1000 + i,
         "bids": [[0.5, 10]], "asks": [], "best_bid": 0.5, "best_ask": None, "mid": None, "spread": None,
         "latency_ms": 5.0, "source": "rest", "future_obj": {"a": [1, 2]}, "future_mixed": ["x", 3][i % 2],
         "future_int": i}
        for i in range(4)
    ]
    extra.append({"record_type": "heartbeat", "schema_version": 1, "ts_ms": DEFAULT_START_MS + 2000})
    _append_lines(f, extra)
    rep = cm.compact_day(d, "limitless", DAY1, now_ms=LATER)
    assert rep.ok and rep.verified and rep.other_records == 1
    assert rep.kept_jsonl and "unknown record_type" in rep.keep_reason
    pf = pq.ParquetFile(rep.parquet_path)
    assert json.loads(pf.schema_arrow.metadata[b"collector.json_columns"]) == ["future_obj", "future_mixed"]
    assert str(pf.schema_arrow.field("future_int").type) == "int64"
    got = [r for r in read.iter_books(d, "limitless", instruments=["limitless:new"])]
    assert [norm(r) for r in got] == [norm(r) for r in extra[:4]]


def _append_lines(f: Path, recs: list[dict]) -> None:
    body = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    if f.name.endswith(".zst"):
        import zstandard

        raw = b"".join(x + b"\n" for x in iter_jsonl_lines(f)) + body
        f.write_bytes(zstandard.ZstdCompressor().compress(raw))
    else:
        data = f.read_bytes()
        f.write_bytes(data[: data.rfind(b"\n") + 1] + body)


def test_multi_pass_equals_single_pass(data, tmp_path):
    d = data.data_dir
    other = copy_of(data, tmp_path / "other").data_dir
    one = cm.compact_day(d, "polymarket", DAY2, keep_jsonl=True, now_ms=LATER)
    many = cm.compact_day(other, "polymarket", DAY2, keep_jsonl=True, now_ms=LATER, max_rows=1500, row_group_rows=700)
    assert one.passes == 1 and many.passes > 4
    assert pq.read_table(one.parquet_path).equals(pq.read_table(many.parquet_path))
    assert pq.ParquetFile(many.parquet_path).metadata.num_row_groups > 5


def test_zstd_conversion_is_lossless_byte_for_byte(tmp_path):
    """Write the same records twice with the real writer, one copy compressed on rotation;
    every line (and every byte) of every file is identical."""

    class Clock:
        t = DEFAULT_START_MS / 1000

        def __call__(self):
            return self.t

    from tests.datagen import generate

    src = generate(tmp_path / "src", duration_s=900, markets={"limitless": 3}, venues=("limitless",), crash=False)
    lines = src.books["limitless"] + src.gaps["limitless"]
    clock = Clock()
    plain = StreamWriter(tmp_path / "plain", "limitless", "orderbooks", rotate_minutes=1, clock=clock, fsync_interval_s=1e6)
    packed = StreamWriter(tmp_path / "packed", "limitless", "orderbooks", rotate_minutes=1, clock=clock, fsync_interval_s=1e6, compress_closed=True)
    for i, line in enumerate(lines):
        clock.t = DEFAULT_START_MS / 1000 + i * 900 / len(lines)
        assert plain.write(line) and packed.write(line)
        if i % 50 == 0:
            plain.tick()
            packed.tick()
    plain.close()
    packed.close()
    pf = sorted((tmp_path / "plain").rglob("*.jsonl*"))
    zf = sorted((tmp_path / "packed").rglob("*.jsonl*"))
    assert len(pf) == len(zf) >= 14 and sum(p.name.endswith(".zst") for p in zf) == len(zf) - 1
    import zstandard

    for a, b in zip(pf, zf):
        assert a.name.split(".")[1] == b.name.split(".")[1]  # same period
        raw = a.read_bytes()
        if b.name.endswith(".zst"):
            assert zstandard.ZstdDecompressor().stream_reader(open(b, "rb")).read() == raw
        else:
            assert b.read_bytes() == raw
        assert list(iter_jsonl_lines(a)) == list(iter_jsonl_lines(b))
    assert [x for p in zf for x in iter_jsonl_lines(p)] == lines
    # compress_file on a file with a torn tail keeps it, byte for byte
    t = tmp_path / "torn.jsonl"
    t.write_bytes(b"".join(x + b"\n" for x in lines[:10]) + b'{"record_type":"orde')
    want = t.read_bytes()
    z = compress_file(t)
    assert not t.exists() and zstandard.ZstdDecompressor().stream_reader(open(z, "rb")).read() == want
    assert list(iter_jsonl_lines(z)) == lines[:10]


def test_cli_compact(data, monkeypatch, capsys):
    from collector.cli.main import main

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(data.data_dir))
    assert main(["compact", "--date", DAY1, "--venue", "limitless", "--keep-jsonl"]) == 0
    out = capsys.readouterr().out
    assert "compact limitless 2026-01-10: compacted" in out and "JSONL kept (keep_jsonl)" in out
    assert main(["compact", "--date", DAY1, "--venue", "limitless"]) == 0
    assert "JSONL files deleted" in capsys.readouterr().out
    assert main(["compact", "--date", "2999-01-01"]) == 1
    assert "refused" in capsys.readouterr().out


def test_cli_compact_keep_from_settings(data, capsys):
    from types import SimpleNamespace

    from collector.config.settings import load_settings

    s = load_settings(data_dir=data.data_dir, venues=["polymarket"], compact={"keep_jsonl": True, "grace_s": 900})
    assert cm.cli_compact(s, SimpleNamespace(date=DAY1, venue=None, keep_jsonl=None)) == 0
    assert "JSONL kept (keep_jsonl)" in capsys.readouterr().out
    assert cm.keep_jsonl_default(load_settings()) is False
    assert cm.compact_options(load_settings()) == {"grace_s": cm.DEFAULT_GRACE_S, "max_rows": cm.DEFAULT_MAX_ROWS}
    assert cm.compact_options(s)["grace_s"] == 900
    assert cm.yesterday_utc(DEFAULT_START_MS) == "2026-01-09"


@pytest.mark.prefect
def test_flow_compacts_each_venue(data, monkeypatch, prefect_harness):
    import flows.compact as fc

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(data.data_dir))
    res = fc.compact(date=DAY1, keep_jsonl=True)
    assert [(r["venue"], r["status"]) for r in res] == [("polymarket", "compacted"), ("limitless", "compacted")]
    from prefect.artifacts import Artifact

    art = Artifact.get(fc.ARTIFACT_KEY)
    rows = json.loads(art.data) if isinstance(art.data, str) else art.data
    assert {r["venue"]: r["status"] for r in rows} == {"polymarket": "compacted", "limitless": "compacted"}
    # a day that is not over fails the flow (after trying every venue)
    state = fc.compact(date="2999-01-01", return_state=True)
    assert state.is_failed()
    assert os.path.exists(data.data_dir / "polymarket/orderbooks_parquet" / f"date={DAY1}" / "orderbooks.parquet")
