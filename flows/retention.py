"""Prefect flow ``retention``: remove (or archive) old order-book JSONL whose Parquet is verified.

Thin wrapper around :func:`collector.ops.retention.apply_retention` (all decisions live there):

- ``days`` defaults to the setting ``retention.jsonl_days``; when that is unset too, retention is
  off and the run Completes having done nothing (the deployment is scheduled for everyone).
- One pass per venue; days kept for a reason (not compacted, not verified, changed since) are
  reported, not failures. An I/O error fails the flow after the other venues ran.
- Every run publishes the table artifact ``retention-summary`` and the event
  ``collector.retention.completed`` (or ``.failed``) on resource ``collector.retention.<venue>``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from collector.config.settings import load_settings
from collector.ops.retention import apply_retention

ARTIFACT_KEY = "retention-summary"
EVENT_COMPLETED = "collector.retention.completed"
EVENT_FAILED = "collector.retention.failed"


@flow(name="retention")
def retention(days: int | None = None, venues: list[str] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Apply JSONL retention to every enabled venue (or ``venues``)."""
    logger = get_run_logger()
    settings = load_settings()
    r = settings.retention
    n = r.jsonl_days if days is None else days
    if n is None:
        logger.info("retention is off (retention.jsonl_days unset): nothing removed")
        return []
    names = list(settings.venues) if venues is None else list(dict.fromkeys(venues))
    rows: list[dict[str, Any]] = []
    errors = []
    for v in names:
        try:
            reps = apply_retention(settings.data_dir, v, n, action=r.action, archive_dir=r.archive_dir, dry_run=dry_run)
        except OSError as e:
            errors.append(f"{v}: {e}")
            emit_event(event=EVENT_FAILED, resource=_resource(v), payload={"error": str(e)})
            continue
        for rep in reps:
            logger.info(rep.summary_line())
        rows.extend(rep.to_dict() for rep in reps)
        emit_event(event=EVENT_COMPLETED, resource=_resource(v), payload={
            "days": n, "removed": sum(1 for x in reps if x.status in ("deleted", "archived")),
            "kept": sum(1 for x in reps if x.status == "kept"),
        })
    create_table_artifact(
        table=rows or [{"venue": ", ".join(names), "status": "nothing to do"}],
        key=ARTIFACT_KEY,
        description=f"Order-book JSONL of days older than {n} days with verified Parquet, per venue and day.",
    )
    if errors:
        raise RuntimeError("retention failed for " + "; ".join(errors))
    return rows


def _resource(venue: str) -> dict[str, str]:
    return {"prefect.resource.id": f"collector.retention.{venue}", "collector.venue": venue}


if __name__ == "__main__":
    retention()
