"""Daily maintenance settings: compaction (``compact``) and disk retention (``retention``: how long
order-book JSONL stays next to its verified Parquet, collector/ops/retention.py). Part of the one
Settings model (collector.config.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CompactSettings(_Strict):
    keep_jsonl: bool = Field(default=False, description="keep a day's JSONL after its Parquet is verified")
    grace_s: float = Field(default=900.0, ge=0, description="compact a day only this long after its UTC end")
    max_rows: int = Field(default=100_000, ge=1000, description="books in memory per pass (~4.5 kB each)")


class RetentionSettings(_Strict):
    """Disk retention of order-book JSONL (collector/ops/retention.py): never a day without verified Parquet."""

    jsonl_days: int | None = Field(default=None, ge=1, description="keep a day's order-book JSONL after compaction, and remove it once the day ended this many days ago and its verified Parquet is on disk; unset = compact.keep_jsonl decides")
    action: Literal["delete", "archive"] = Field(default="delete", description="\"delete\" the JSONL, or \"archive\": move it under archive_dir (same <venue>/orderbooks/date=D/ layout)")
    archive_dir: Path | None = Field(default=None, description="where action \"archive\" moves the JSONL (required for it)")

    @model_validator(mode="after")
    def _archive_needs_dir(self) -> RetentionSettings:
        if self.action == "archive" and self.archive_dir is None:
            raise ValueError("action \"archive\" needs archive_dir")
        return self
