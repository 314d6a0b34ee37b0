"""Prefect flow ``compact``: one UTC day of order-book JSONL -> verified Parquet, one task per venue.

Thin wrapper around :func:`collector.store.compact.compact_day` (all decisions live there):

- ``date`` defaults to yesterday (UTC); ``venues`` to every enabled venue; ``keep_jsonl`` to the
  setting ``compact.keep_jsonl``, or True when ``retention.jsonl_days`` is set (the retention
  flow removes the JSONL later), else False (the JSONL of a verified day is deleted).
- ``compact_venue_task`` runs once per venue, one after the other (compaction holds up to
  ``max_rows`` books in memory; two at once would double that). No retries: a failure leaves the
  JSONL untouched and the next run (or a manual ``collector compact --date D``) tries again.
- A venue fails when its day was refused (not over yet) or its compaction failed; the flow fails
  when any venue failed, after the others ran.
- Every run publishes the table artifact ``compact-summary`` and one event per venue,
  ``collector.compact.completed`` or ``collector.compact.failed`` on resource
  ``collector.compact.<venue>``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from collector.config.settings import load_settings
from collector.model.errors import ConfigError
from collector.store.compact import (
    CompactReport,
    compact_day,
    compact_options,
    keep_jsonl_default,
    yesterday_utc,
)

ARTIFACT_KEY = "compact-summary"
EVENT_COMPLETED = "collector.compact.completed"
EVENT_FAILED = "collector.compact.failed"


class CompactFailed(Exception):
    def __init__(self, report: CompactReport) -> None:
        super().__init__(report.summary_line())
        self.report = report


@task(name="compact-venue", cache_policy=NO_CACHE)
def compact_venue_task(
    data_dir: str, venue: str, date: str, keep_jsonl: bool, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Compact one venue-day; raises CompactFailed (report attached) unless ok."""
    logger = get_run_logger()
    rep = compact_day(data_dir, venue, date, keep_jsonl=keep_jsonl, **(options or {}))
    if not rep.ok:
        logger.warning(rep.summary_line())
        raise CompactFailed(rep)
    logger.info(rep.summary_line())
    return rep.to_dict()


@flow(name="compact")
def compact(
    date: str | None = None, venues: list[str] | None = None, keep_jsonl: bool | None = None
) -> list[dict[str, Any]]:
    """Compact ``date`` (default: yesterday UTC) of every enabled venue (or ``venues``)."""
    logger = get_run_logger()
    settings = load_settings()
    day = date or yesterday_utc()
    names = list(settings.venues) if venues is None else list(dict.fromkeys(venues))
    if not names:
        raise ConfigError("no venue to compact")
    keep = keep_jsonl_default(settings) if keep_jsonl is None else keep_jsonl
    reports: list[dict[str, Any]] = []
    for v in names:
        state = compact_venue_task.with_options(task_run_name=f"compact-{v}-{day}")(
            str(settings.data_dir), v, day, keep, compact_options(settings), return_state=True
        )
        if state.is_completed():
            reports.append(state.result())
        else:
            exc = state.result(raise_on_failure=False)
            if isinstance(exc, CompactFailed):
                rep = exc.report
            else:
                rep = CompactReport(venue=v, date=day, status="failed", error=f"{type(exc).__name__}: {exc}")
            reports.append(rep.to_dict())
    _publish(reports)
    failed = [r for r in reports if not r["ok"]]
    if failed:
        what = "; ".join(f"{r['venue']} {r['date']}: {r['status']} {r['error'] or ''}".strip() for r in failed)
        raise RuntimeError(f"compact failed for {what}")
    logger.info("compact %s: %s", day, ", ".join(f"{r['venue']} {r['status']}" for r in reports))
    return reports


def _publish(reports: list[dict[str, Any]]) -> None:
    keys = (
        "venue", "date", "status", "books", "gaps", "files", "bytes_in", "parquet_bytes",
        "verified", "deleted_files", "keep_reason", "duration_s", "error",
    )
    create_table_artifact(
        table=[{k: r.get(k) for k in keys} for r in reports],
        key=ARTIFACT_KEY,
        description="Compaction of one UTC day of order books to Parquet, per venue.",
    )
    for r in reports:
        emit_event(
            event=EVENT_COMPLETED if r["ok"] else EVENT_FAILED,
            resource={"prefect.resource.id": f"collector.compact.{r['venue']}", "collector.venue": r["venue"]},
            payload={k: r.get(k) for k in keys},
        )


if __name__ == "__main__":  # python flows/compact.py: compact yesterday on the ephemeral/local API
    compact()
