"""The underlying asset(s) of an instrument, for the ``underlyings`` selection rule.

Real Limitless slugs do not start with the asset (``dollarbtc-above-dollar8633210-on-dec-17-...``)
and their tags do not name it, so the asset is read from what the payloads carry, strongest
first:

1. ``details.underlying`` (Limitless ``priceOracleMetadata.ticker``): when the venue sends it,
   it alone decides. Other fields can disagree: a real SOL market carries
   ``chainlinkPair: "BTC/USD"``, so nothing else is read.
2. Otherwise every ``$TICKER`` marker of the title (``"💎 $BTC above $86332.10 ..."``) and the
   slug families ``dollar<ticker>-above-...`` and ``<ticker>-up-or-down-...`` /
   ``<ticker>-updown-...`` (Limitless and Polymarket crypto series).

Tickers are compared upper-case as whole tokens: ``$BTCX`` is ``BTCX`` and
``ethena-up-or-down-...`` is ``ETHENA``, neither of which is ``BTC`` or ``ETH``.
"""

from __future__ import annotations

import re

from collector.model.details import LimitlessDetails
from collector.model.records import Instrument

# "$" then a ticker that starts with a letter; "$86332.10" (a price) is not a ticker.
_TITLE_MARKER = re.compile(r"\$([A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9])")
_SLUG_FAMILIES = (
    re.compile(r"dollar([a-z][a-z0-9]*)-above-"),
    re.compile(r"([a-z][a-z0-9]*)-up-or-down-"),
    re.compile(r"([a-z][a-z0-9]*)-updown-"),
)


def underlyings(inst: Instrument) -> frozenset[str]:
    """Upper-case tickers ``inst`` is about; empty when nothing names one."""
    d = inst.details
    if isinstance(d, LimitlessDetails) and d.underlying:
        return frozenset({d.underlying.upper()})
    out = {m.group(1).upper() for m in _TITLE_MARKER.finditer(inst.title or "")}
    for slug in (inst.slug, inst.event_slug, inst.series_slug):
        if slug:
            s = slug.lower()
            for fam in _SLUG_FAMILIES:
                m = fam.match(s)
                if m:
                    out.add(m.group(1).upper())
    return frozenset(out)


def matches_underlyings(inst: Instrument, wanted: list[str]) -> bool:
    """True when one of ``inst``'s underlyings is in ``wanted`` (case-insensitive)."""
    want = {w.strip().upper() for w in wanted if w.strip()}
    return not want.isdisjoint(underlyings(inst))
