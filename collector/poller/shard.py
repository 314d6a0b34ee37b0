"""Shards: ``k/n`` owns the instruments whose id hashes (CRC32) to ``k`` modulo ``n``.

The slice is a pure function of the instrument id, so it is stable across restarts, snapshots
and hosts, and shards ``0/n .. n-1/n`` partition any active set exactly once. A venue's REST
budget is per caller, not per process, so each shard gets ``1/n`` of it (:func:`shard_budget`).
"""

from __future__ import annotations

import zlib

from collector.config.settings import VenueSettings

__all__ = ["in_shard", "parse_shard", "shard_budget", "shard_slug", "shards_of"]


def parse_shard(shard: str) -> tuple[int, int]:
    """``"1/4"`` -> ``(1, 4)``; ValueError unless ``0 <= k < n``."""
    k, n = (int(x) for x in shard.split("/"))
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard {shard!r}: needs 0 <= k < n")
    return k, n


def in_shard(instrument_id: str, shard: str) -> bool:
    k, n = parse_shard(shard)
    return n == 1 or zlib.crc32(instrument_id.encode()) % n == k


def shard_slug(shard: str) -> str:
    """``"0/2"`` -> ``"0of2"``: the shard in names (files, deployments, event resources)."""
    k, n = parse_shard(shard)
    return f"{k}of{n}"


def shards_of(n: int) -> list[str]:
    """Every shard of an ``n``-way split, in order."""
    return [f"{k}/{n}" for k in range(n)]


def shard_budget(vs: VenueSettings, shard: str) -> VenueSettings:
    """The venue settings one shard polls with: ``rate_requests // n`` (at least 1) per
    ``rate_window_s``, so ``n`` shards together stay inside the venue's budget. Everything else
    is unchanged: the spacing each process keeps (``min_spacing_s``) already holds for any
    number of them, and Limitless shares it across processes through a file anyway."""
    _, n = parse_shard(shard)
    if n == 1:
        return vs
    return vs.model_copy(update={"rate_requests": max(1, vs.rate_requests // n)})
