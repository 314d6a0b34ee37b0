"""Selection rules: which of a venue's open candidates go into the active set.

An instrument is selected when ANY rule of its venue matches it. Within one rule, every criterion
that is set must hold (AND); a rule with no criterion matches every candidate. Criteria
(``collector.config.settings.Rule``):

- ``slug_prefixes``: ``inst.slug`` starts with one of them (case-insensitive).
- ``underlyings``: one of the instrument's underlying tickers is among them (case-insensitive,
  whole tokens; see :mod:`collector.discovery.underlying`): the oracle ticker Limitless sends, else the
  ``$BTC`` markers of the title and the slug families ``dollarbtc-above-``, ``btc-up-or-down-``.
- ``event_slug_prefixes``: ``inst.event_slug`` or ``inst.series_slug`` starts with one of them
  (case-insensitive; Kalshi: the event and series tickers).
- ``title_contains``: ``inst.title`` contains one of them (case-insensitive).
- ``tags``: ``inst.tags`` shares at least one tag with the rule (case-insensitive).
- ``recurrence``: ``inst.recurrence`` is one of them (case-insensitive); no recurrence fails.
- ``min_minutes_to_expiry`` / ``max_minutes_to_expiry``: minutes from ``now_ms`` to
  ``inst.expires_at_ms``, bounds inclusive. An instrument WITHOUT an expiry is treated as expiring
  at +infinity: it passes any ``min_`` bound and fails any ``max_`` bound.
- ``min_volume_24h`` / ``min_liquidity``: inclusive lower bounds; an unknown (None) value fails.
- ``max_markets``: a set-level criterion, applied by :func:`select` only (``matches`` ignores it):
  among the candidates matching the rule's other criteria, keep the top N MARKETS by 24 h volume.
  On Polymarket a market has two instruments (outcome tokens) sharing ``market_id``: markets are
  counted, and every instrument of a kept market is kept. A market's volume is the largest
  ``volume_24h`` of its instruments (unknown volume ranks last); ties are broken by ``market_id``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from collector.config.settings import Rule
from collector.discovery.underlying import matches_underlyings
from collector.model.records import Instrument

_MS_PER_MIN = 60_000.0


def _starts(value: str | None, prefixes: Sequence[str]) -> bool:
    if not value:
        return False
    v = value.lower()
    return any(v.startswith(p.lower()) for p in prefixes)


def minutes_to_expiry(inst: Instrument, now_ms: int) -> float:
    """Minutes until ``expires_at_ms`` (negative once passed); +inf without an expiry."""
    if inst.expires_at_ms is None:
        return math.inf
    return (inst.expires_at_ms - now_ms) / _MS_PER_MIN


def matches(rule: Rule, inst: Instrument, now_ms: int) -> bool:
    """True when ``inst`` satisfies every per-instrument criterion of ``rule``.

    ``max_markets`` is not an instrument property and is ignored here; see :func:`select`.
    """
    if rule.slug_prefixes and not _starts(inst.slug, rule.slug_prefixes):
        return False
    if rule.underlyings and not matches_underlyings(inst, rule.underlyings):
        return False
    if rule.event_slug_prefixes and not (
        _starts(inst.event_slug, rule.event_slug_prefixes) or _starts(inst.series_slug, rule.event_slug_prefixes)
    ):
        return False
    if rule.title_contains and not any(t.lower() in (inst.title or "").lower() for t in rule.title_contains):
        return False
    if rule.tags:
        want = {t.lower() for t in rule.tags}
        if not any(t.lower() in want for t in inst.tags):
            return False
    if rule.recurrence:
        if inst.recurrence is None or inst.recurrence.lower() not in {r.lower() for r in rule.recurrence}:
            return False
    if rule.min_minutes_to_expiry is not None or rule.max_minutes_to_expiry is not None:
        mins = minutes_to_expiry(inst, now_ms)
        if rule.min_minutes_to_expiry is not None and not mins >= rule.min_minutes_to_expiry:
            return False
        if rule.max_minutes_to_expiry is not None and not mins <= rule.max_minutes_to_expiry:
            return False
    if rule.min_volume_24h is not None and (inst.volume_24h is None or inst.volume_24h < rule.min_volume_24h):
        return False
    if rule.min_liquidity is not None and (inst.liquidity is None or inst.liquidity < rule.min_liquidity):
        return False
    return True


def _top_markets(insts: list[Instrument], n: int) -> set[str]:
    """market_ids of the top ``n`` markets by 24 h volume."""
    vol: dict[str, float] = {}
    for i in insts:
        v = -math.inf if i.volume_24h is None else float(i.volume_24h)
        if i.market_id not in vol or v > vol[i.market_id]:
            vol[i.market_id] = v
    ranked = sorted(vol.items(), key=lambda kv: (-kv[1], kv[0]))
    return {m for m, _ in ranked[:n]}


def rule_matches(rule: Rule, candidates: Iterable[Instrument], now_ms: int) -> list[Instrument]:
    """The candidates one rule selects, ``max_markets`` included, in candidate order."""
    hit = [i for i in candidates if matches(rule, i, now_ms)]
    if rule.max_markets is not None:
        keep = _top_markets(hit, rule.max_markets)
        hit = [i for i in hit if i.market_id in keep]
    return hit


def _unique(candidates: Iterable[Instrument]) -> list[Instrument]:
    """Candidates without repeated instrument ids (the first occurrence wins)."""
    seen: set[str] = set()
    out: list[Instrument] = []
    for i in candidates:
        if i.instrument_id not in seen:
            seen.add(i.instrument_id)
            out.append(i)
    return out


def select_with_reasons(rules: Sequence[Rule], candidates: Sequence[Instrument], now_ms: int) -> dict[str, str]:
    """``instrument_id -> name of the first rule that selects it``, in candidate order.

    A repeated instrument id is judged on its first occurrence only.
    """
    candidates = _unique(candidates)
    by_rule: list[tuple[str, set[str]]] = [
        (r.name, {i.instrument_id for i in rule_matches(r, candidates, now_ms)}) for r in rules
    ]
    out: dict[str, str] = {}
    for inst in candidates:
        if inst.instrument_id in out:
            continue
        for name, ids in by_rule:
            if inst.instrument_id in ids:
                out[inst.instrument_id] = name
                break
    return out


def select(rules: Sequence[Rule], candidates: Sequence[Instrument], now_ms: int) -> list[Instrument]:
    """Candidates selected by any rule, in candidate order, without duplicate instrument ids
    (a repeated id is judged on its first occurrence)."""
    unique = _unique(candidates)
    chosen = select_with_reasons(rules, unique, now_ms)
    return [i for i in unique if i.instrument_id in chosen]
