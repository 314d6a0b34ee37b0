"""Every recipe of docs/reading-data.md runs: the code blocks are extracted from the markdown.

``python`` blocks run in order in one namespace, ``sql`` blocks statement by statement on
DuckDB's default connection (so Python blocks can use the views they create), both from a
directory holding a generated recording in ``./data`` with one Polymarket day compacted and stream
capture of a few instruments (tests/test_read_replay_recording.py).
``console`` blocks: every ``collector ...`` line must parse with the real CLI parser. Blocks that
import pandas are skipped when pandas is not installed.
"""

from __future__ import annotations

import re
import shlex
from decimal import Decimal
from pathlib import Path

import pytest

from collector.store.compact import compact_day
from tests.datagen import copy_of, shared
from tests.datagen_trades import MIDNIGHT_MS, add_trades, long_lived
from tests.test_read_replay_recording import add_stream_capture

TRADES: dict = {}
DOC = Path(__file__).resolve().parents[1] / "docs" / "reading-data.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(lang: str | None = None) -> list[tuple[int, str, str]]:
    """(line number, language, code) of every fenced block of the doc."""
    text = DOC.read_text()
    out = []
    for m in FENCE.finditer(text):
        if lang is None or m.group(1) == lang:
            out.append((text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    g = copy_of(shared(tmp_path_factory), tmp_path_factory.mktemp("recipes") / "data")
    # the trades recipes' trades (the Polymarket day is compacted with them)
    TRADES["truth"] = add_trades(g.data_dir, {"polymarket": long_lived(g, "polymarket", 3),
                                              "limitless": long_lived(g, "limitless", 2)})
    rep = compact_day(g.data_dir, "polymarket", "2026-01-10", now_ms=g.end_ms + 3 * 86_400_000)
    assert rep.ok and not rep.kept_jsonl and rep.trades.status == "compacted"
    add_stream_capture(g.data_dir)  # the stream capture recipes' book_changes
    return g


def test_doc_has_recipes():
    kinds = [b[1] for b in blocks()]
    assert kinds.count("python") >= 8 and kinds.count("sql") >= 7 and kinds.count("console") >= 1


def test_python_and_sql_recipes_run(recording, monkeypatch, capsys):
    import duckdb

    monkeypatch.chdir(recording.data_dir.parent)
    ns: dict = {"__name__": "recipes"}
    ran = 0
    for line, lang, code in blocks():
        where = f"{DOC.name}:{line} ({lang})"
        if lang == "python":
            if _uses_pandas(code):
                continue  # test_pandas_recipes
            try:
                exec(compile(code, where, "exec"), ns)  # noqa: S102 - the doc's own recipes
            except Exception as e:  # noqa: BLE001
                pytest.fail(f"recipe at {where} failed: {type(e).__name__}: {e}\n{code}")
            ran += 1
        elif lang == "sql":
            for stmt in (s.strip() for s in code.split(";")):
                if not stmt or all(x.strip().startswith("--") for x in stmt.splitlines() if x.strip()):
                    continue
                try:
                    rel = duckdb.sql(stmt)
                    rows = rel.fetchall() if rel is not None else None
                except Exception as e:  # noqa: BLE001
                    pytest.fail(f"recipe at {where} failed: {type(e).__name__}: {e}\n{stmt}")
                if re.match(r"^\s*(SELECT|WITH)\b", stmt, re.I):
                    assert rows, f"recipe at {where} returned no rows:\n{stmt}"
            ran += 1
    assert ran >= 15
    out = capsys.readouterr().out
    assert "records" in out and "books" in out
    # the all-days view holds every book once, the compacted day from its Parquet
    counts = {(v, d): n for v, d, n in duckdb.sql("SELECT venue, date::VARCHAR, count(*) FROM books GROUP BY ALL").fetchall()}
    assert sum(counts.values()) == recording.n_books
    import pyarrow.parquet as pq

    pq_rows = pq.ParquetFile(recording.data_dir / "polymarket/orderbooks_parquet/date=2026-01-10/orderbooks.parquet").metadata.num_rows
    assert counts[("polymarket", "2026-01-10")] == pq_rows
    _check_trade_minutes(ns)


def _minutes(recs) -> dict[tuple[str, str, int], tuple[int, Decimal, Decimal]]:
    """By hand: (venue, instrument, minute) -> (trades, volume, VWAP) of de-duplicated records."""
    acc: dict = {}
    for r in recs:
        t = r.ts_ms if r.ob_ts_ms is None else r.ob_ts_ms
        a = acc.setdefault((r.venue, r.instrument_id, t // 60_000 * 60_000), [0, Decimal(0), Decimal(0)])
        a[0] += 1
        a[1] += Decimal(r.size)
        a[2] += Decimal(r.price) * Decimal(r.size)
    return {k: (n, vol, pv / vol) for k, (n, vol, pv) in acc.items()}


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k, (n, vol, vwap) in want.items():
        gn, gvol, gvwap = got[k]
        assert gn == n and abs(gvol - float(vol)) < 1e-6 * float(vol) and abs(gvwap - float(vwap)) < 1e-9, k


def _check_trade_minutes(ns: dict) -> None:
    """The trades recipes' per-minute volume and VWAP (DuckDB and polars) against a hand computation."""
    import duckdb

    truth = TRADES["truth"]
    every = [r for v in ("polymarket", "limitless") for r in truth.unique(v)]
    want = _minutes(every)
    assert len(want) > 100 and any(n > 1 for n, _v, _p in want.values()), len(want)
    rows = duckdb.sql("SELECT venue, instrument_id, minute_ms, trades, volume, vwap FROM trade_minutes").fetchall()
    _same({(v, i, m): (n, vol, p) for v, i, m, n, vol, p in rows}, want)
    pm = ns["per_minute"]
    _same({(v, i, m): (n, vol, p) for v, i, m, n, vol, p in pm.select(
        "venue", "instrument_id", "minute_ms", "trades", "volume", "vwap").iter_rows()}, want)
    # the Parquet recipe: the compacted Polymarket day (captures before midnight), de-duplicated
    first: dict = {}
    for r in sorted(truth.written["polymarket"], key=lambda r: r.ts_ms):
        if r.ts_ms < MIDNIGHT_MS:
            first.setdefault(r.key, r)
    pq_m = ns["pq_minutes"]
    _same({(v, i, m): (n, vol, p) for v, i, m, n, vol, p in pq_m.select(
        "venue", "instrument_id", "minute_ms", "trades", "volume", "vwap").iter_rows()}, _minutes(first.values()))


def _uses_pandas(code: str) -> bool:
    return re.search(r"^\s*import pandas", code, re.M) is not None


def test_pandas_recipes(recording, monkeypatch):
    pytest.importorskip("pandas")  # optional dependency: not installed in the default venv
    monkeypatch.chdir(recording.data_dir.parent)
    from collector import read

    ns: dict = {"__name__": "recipes", "read": read}
    found = [b for b in blocks("python") if _uses_pandas(b[2])]
    assert found
    for line, _lang, code in found:
        exec(compile(code, f"{DOC.name}:{line}", "exec"), ns)  # noqa: S102


def test_console_recipes_parse():
    from collector.cli.main import build_parser

    p = build_parser()
    n = 0
    for line, _lang, code in blocks("console"):
        for cmd in code.splitlines():
            argv = shlex.split(cmd, comments=True)
            if not argv or argv[0] != "collector":
                continue
            try:
                p.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{DOC.name}:{line}: `{cmd}` does not parse")
            n += 1
    assert n >= 6
