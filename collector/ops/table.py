"""Formatting for the operator views: aligned plain-text tables, ages, bytes, numbers, times, and
the ``--json`` documents."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """Plain-text table; ``align`` is one ``l``/``r`` per column (default: numbers right)."""
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    n = len(headers)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r[:n]):
            widths[i] = max(widths[i], len(c))
    if align is None:
        align = "".join(
            "r" if rows and all(_looks_numeric(r[i]) for r in rows if i < len(r) and r[i] not in ("", "-")) else "l"
            for i in range(n)
        )

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(cells[:n]):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths])] + [line(r) for r in rows])


_NUM_RE = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s?(%|s|ms|m|h|d|x|[kMGT]?B)?$")


def _looks_numeric(s: str) -> bool:
    return bool(_NUM_RE.match(s.strip()))


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if s < 10:
        return f"{sign}{s:.1f}s"
    if s < 120:
        return f"{sign}{s:.0f}s"
    if s < 7200:
        return f"{sign}{s / 60:.0f}m"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:.1f}h"
    return f"{sign}{s / 86400:.1f}d"


def fmt_bytes(n: int | float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def fmt_num(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def compact_num(x: Any) -> str:
    """A size in few characters: ``1.25M``, ``12.5k``, ``3.5``; not a number: as is."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if f >= 1e6:
        return f"{f / 1e6:.2f}M"
    if f >= 1e4:
        return f"{f / 1e3:.1f}k"
    return f"{f:.2f}".rstrip("0").rstrip(".")


def short_id(iid: str, width: int = 24) -> str:
    """An id cut to ``width`` characters, keeping its head and its last 7 (ids differ at the end)."""
    if len(iid) <= width:
        return iid
    keep = width - 1
    return iid[: keep - 7] + "…" + iid[-7:]


def iso_ms(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms // 1000)) + "Z"


def format_json(doc: Any) -> str:
    """A ``--json`` document: indented, one trailing newline."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
