"""Payloads captured from the real venues by other projects (provenance: SOURCES.md there).

They live next to the project, in ``../shared/real-payloads`` (CI clones the project beside a
copy of ``shared/``), and are never copied into it. Tests that need them skip when absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = (ROOT / ".." / "shared" / "real-payloads").resolve()


def load(rel: str) -> Any:
    """Parsed JSON of ``real-payloads/<rel>``; skips the test when the folder or file is missing."""
    path = REAL / rel
    if not path.is_file():
        pytest.skip(f"real venue payload {rel} not found under {REAL} (shared/ is not next to the project)")
    return json.loads(path.read_text(encoding="utf-8"))


def limitless_markets() -> dict[str, list[dict[str, Any]]]:
    """Every real Limitless market object, by source file, as the venue sent it."""
    lmm = []
    for rec in load("limitless/markets_active_limitlessmm_records.json"):
        raw = dict(rec["raw"])
        raw.pop("underlying", None)  # added by that project's recorder, not venue data
        lmm.append(raw)
    return {
        "markets_active_drmanhattan.json": list(load("limitless/markets_active_drmanhattan.json")),
        "markets_active_limitlessmm_records.json": lmm,
        "market_ccxt_usa_aus_ticker_response.json": [load("limitless/market_ccxt_usa_aus_ticker_response.json")],
    }


def polymarket_markets() -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Every real Gamma market object with its event (None when the object embeds its own)."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        (m, None) for m in load("polymarket/gamma_markets_drmanhattan.json")
    ]
    out += [(m, None) for m in load("polymarket/gamma_market_objects_nautilus.json").values()]
    for ev in load("polymarket/gamma_events_nautilus.json"):
        out += [(m, ev) for m in ev["markets"]]
    return out
