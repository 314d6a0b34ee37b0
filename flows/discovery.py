"""Prefect flow ``discovery``: one task per enabled venue around ``collector.discovery.run``.

- ``discover_venue_task`` (one task run per venue, run concurrently): ``cache_policy=NO_CACHE``
  (clients are never hashed or cached), retries with backoff only on transport-type failures
  (``VenueDiscoveryReport.retryable``: timeouts, connection errors, 5xx, 429, bad payloads, a
  suspect empty answer; never ConfigError or a refused request), a timeout.
- The flow fails only when every requested venue failed; a partial failure logs a warning.
- Every run publishes the table artifact ``discovery-summary`` and one event per venue:
  ``collector.discovery.completed`` or ``collector.discovery.failed`` on resource
  ``collector.discovery.<venue>`` with the counts as payload.

- Before it discovers, a run cancels the other runs of the schedule that are due but not started
  (``Late`` or ``AwaitingConcurrencySlot``, tagged ``auto-scheduled``): this run does their work.
  The deployment queues colliding runs (``collision_strategy: ENQUEUE``) so that a run triggered
  by hand or from CI waits for the slot and then runs, instead of ending Cancelled; this step is
  what keeps the schedule's late runs after an outage from coming back as a backlog. Runs created
  by hand are never touched (docs/operations.md, "Triggering discovery from CI").

All decisions live in ``collector.discovery.run``; tests inject fake clients through
``client_factory``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from collector.config.settings import Settings, VenueName, load_settings
from collector.discovery.report import (
    AllVenuesFailed,
    DiscoveryFailed,
    VenueDiscoveryReport,
)
from collector.discovery.run import ClientFactory, discover_venue
from collector.model.errors import ConfigError

ARTIFACT_KEY = "discovery-summary"
SUPERSEDED = "superseded: a later discovery run did the work of this late run of the schedule"
DUE_STATE_NAMES = ["Late", "AwaitingConcurrencySlot"]
EVENT_COMPLETED = "collector.discovery.completed"
EVENT_FAILED = "collector.discovery.failed"
# Makes the venue client for a task run; None = collector.venues.make_client. Tests set it.
client_factory: ClientFactory | None = None


class _WorkerThreadTimeoutNotice(logging.Filter):
    """Drops Prefect's per-attempt notice that a task timeout in a worker thread only fires
    between blocking calls. Expected here (venue tasks run concurrently in threads and every
    HTTP request has its own timeout); everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout of %s seconds configured for this task, but")


logging.getLogger("prefect.task_runs").addFilter(_WorkerThreadTimeoutNotice())


def retry_delays(settings: Settings) -> list[float]:
    """One delay per retry; the last configured delay repeats when retries outnumber delays."""
    delays = settings.discovery.task_retry_delays_s or [0.0]
    n = settings.discovery.task_retries
    return [float(delays[min(i, len(delays) - 1)]) for i in range(n)]


def retry_on_transport(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only failures the report marks retryable."""
    try:
        state.result()
    except DiscoveryFailed as e:
        return bool(e.retryable)
    except Exception:  # noqa: BLE001 - anything else (bug, timeout, ConfigError): no retry
        return False
    return False


@task(name="discover-venue", cache_policy=NO_CACHE, retry_condition_fn=retry_on_transport)
def discover_venue_task(venue: str, settings: Settings) -> VenueDiscoveryReport:
    """Discovery of one venue; raises DiscoveryFailed on ``ok=False`` so Prefect sees a failure."""
    logger = get_run_logger()
    rep = discover_venue(settings, venue, client_factory=client_factory)
    if not rep.ok:
        logger.warning(rep.summary_line())
        raise DiscoveryFailed(rep)
    logger.info(rep.summary_line())
    return rep


def _publish(reports: list[VenueDiscoveryReport]) -> None:
    create_table_artifact(
        table=[r.summary_row() for r in reports],
        key=ARTIFACT_KEY,
        description="Discovery run: per venue instruments in the snapshot, added, removed, "
        "candidates, pages fetched, duration, outcome.",
    )
    for r in reports:
        emit_event(
            event=EVENT_COMPLETED if r.ok else EVENT_FAILED,
            resource={"prefect.resource.id": f"collector.discovery.{r.venue}", "collector.venue": r.venue},
            payload=r.event_payload(),
        )


def supersede_due_scheduled_runs() -> list[str]:
    """Cancel the schedule's other runs that are due and not started; return their names.

    Best effort: the orchestrator being slow or down must never stop a discovery."""
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateName,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import deployment, flow_run
    from prefect.states import Cancelled

    dep_id, me = deployment.id, str(flow_run.id)
    if not dep_id:
        return []
    mine = DeploymentFilter(id=DeploymentFilterId(any_=[dep_id]))
    auto = FlowRunFilterTags(all_=["auto-scheduled"])
    # Two questions, because the schedule keeps up to an hour of future runs: those already
    # offered to a worker (Late, AwaitingConcurrencySlot), and plain Scheduled ones now due.
    named = FlowRunFilter(tags=auto, state=FlowRunFilterState(name=FlowRunFilterStateName(any_=DUE_STATE_NAMES)))
    due = FlowRunFilter(tags=auto, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                        expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(timezone.utc)))
    done: list[str] = []
    with get_client(sync_client=True) as client:
        runs = {r.id: r for f in (named, due) for r in client.read_flow_runs(flow_run_filter=f, deployment_filter=mine,
                                                                              limit=200)}
        for r in runs.values():
            if str(r.id) == me or r.state_type != StateType.SCHEDULED:
                continue
            client.set_flow_run_state(r.id, Cancelled(message=SUPERSEDED), force=True)
            done.append(r.name)
    return done


@flow(name="discovery")
def discovery(venues: list[VenueName] | None = None) -> list[dict[str, Any]]:
    """Discover every enabled venue (or the ``venues`` subset) and persist membership changes."""
    logger = get_run_logger()
    settings = load_settings()
    names = list(settings.venues) if venues is None else list(dict.fromkeys(venues))
    not_enabled = [v for v in names if v not in settings.venues]
    if not_enabled:
        raise ConfigError(f"venues {not_enabled} are not enabled (settings.venues={settings.venues})")
    if not names:
        raise ConfigError("no venue to discover")

    try:
        superseded = supersede_due_scheduled_runs()
        if superseded:
            logger.info("cancelled %d late run(s) of the schedule that this run replaces: %s",
                        len(superseded), ", ".join(superseded[:10]))
    except Exception as e:  # noqa: BLE001 - never let the orchestrator stop a discovery
        logger.warning("could not cancel late scheduled runs: %s: %s", type(e).__name__, e)

    run_task = discover_venue_task.with_options(
        retries=settings.discovery.task_retries,
        retry_delay_seconds=retry_delays(settings) or 0,
        timeout_seconds=settings.discovery.task_timeout_s,
    )
    started = time.monotonic()
    futures = {v: run_task.with_options(task_run_name=f"discover-{v}").submit(v, settings) for v in names}
    reports: list[VenueDiscoveryReport] = []
    for v, fut in futures.items():
        fut.wait()
        state = fut.state
        if state.is_completed():
            reports.append(state.result())
        else:
            exc = state.result(raise_on_failure=False)
            if not isinstance(exc, BaseException):
                exc = RuntimeError(f"task ended in state {state.name}: {state.message}")
            reports.append(VenueDiscoveryReport.from_exception(v, exc, time.monotonic() - started, settings))

    _publish(reports)
    failed = [r for r in reports if not r.ok]
    if len(failed) == len(reports):
        raise AllVenuesFailed(failed)
    if failed:
        logger.warning(
            "discovery partially failed: %s; their snapshots were left untouched, the other venues proceeded",
            "; ".join(f"{r.venue}: {r.error}" for r in failed),
        )
    return [r.to_dict() for r in reports]


if __name__ == "__main__":  # python flows/discovery.py: one run on the ephemeral/local API
    discovery()
