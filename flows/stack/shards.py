"""Poller shards as deployments: ``poller.shards = n`` -> ``poller/poller-shard-<k>of<n>``.

The shard deployments are copies of prefect.yaml's ``poller`` deployment as deployed (same flow,
entrypoint, pull steps, work pool, job variables, tags), made over the REST API after every
``prefect deploy``, each with its shard as its default parameter and its own concurrency limit of 1.
So whatever pool ``poller`` is deployed to (process, Docker, Kubernetes), the shards run there too,
and the restart automation (run the crashed run's deployment with its defaults) restarts a shard
as the same shard. ``n = 1`` is the ``poller`` deployment itself.

Deployments of another split (``poller.shards`` changed) are retired: their active runs cancelled
and waited for, then they are deleted. With ``n > 1`` an active run of ``poller`` (the whole set)
is cancelled too; the ``poller`` deployment stays (it is prefect.yaml's), but nothing starts it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from collector.poller.shard import shard_slug, shards_of
from flows.stack.api import ACTIVE, POLLER, deployment_id, runs_of
from flows.stack.procs import say

FLOW = "poller"
SHARD_TAG = "shard"  # marks the generated deployments (only those are ever deleted)
_SHARD_NAME = re.compile(r"^poller-shard-\d+of\d+$")
# What a shard deployment copies from the deployed `poller` (the rest is the server's own).
_COPIED = ("flow_id", "description", "entrypoint", "path", "pull_steps", "work_pool_name", "job_variables",
           "parameter_openapi_schema", "enforce_parameter_schema", "version")


def shard_deployment(shard: str) -> str:
    return f"poller-shard-{shard_slug(shard)}"


def poller_deployments_for(n: int) -> list[str]:
    """The deployments ("flow/name") whose runs make up an ``n``-shard poller."""
    return [POLLER] if n == 1 else [f"{FLOW}/{shard_deployment(s)}" for s in shards_of(n)]


def poller_flow_deployments(api: httpx.Client) -> list[dict[str, Any]]:
    """Every deployment of the poller flow on the server (``poller`` and any shard's)."""
    r = api.post("/deployments/filter", json={"flows": {"name": {"any_": [FLOW]}}, "limit": 200})
    r.raise_for_status()
    return r.json()


def ensure_shard_deployments(api: httpx.Client, n: int, work_queue: str = "") -> list[str]:
    """Create or update the ``n`` shard deployments from the deployed ``poller`` (upsert by name);
    ``work_queue``: "" = poller's queue, else a template such as ``shard-{k}``. Returns their names."""
    if n == 1:
        return [POLLER]
    r = api.get(f"/deployments/name/{POLLER}")
    r.raise_for_status()
    base = r.json()
    names = []
    for shard in shards_of(n):
        k = shard.split("/")[0]
        body = {key: base[key] for key in _COPIED if key in base}
        body.update(
            name=shard_deployment(shard),
            parameters={**(base.get("parameters") or {}), "shard": shard},
            tags=sorted({*(base.get("tags") or []), SHARD_TAG}),
            work_queue_name=work_queue.format(k=k) if work_queue else base.get("work_queue_name"),
            concurrency_limit=1,  # one run per shard at a time
            schedules=[],
            paused=False,
        )
        api.post("/deployments/", json=body).raise_for_status()
        names.append(f"{FLOW}/{body['name']}")
    return names


def retire_other_splits(api: httpx.Client, wanted: list[str], cancel: Any) -> list[str]:
    """Cancel the active runs of every poller deployment not in ``wanted`` (``cancel(api, run_id)``
    waits for the final state), then delete the generated ones. Returns what was retired."""
    retired = []
    for dep in poller_flow_deployments(api):
        full = f"{FLOW}/{dep['name']}"
        if full in wanted:
            continue
        for run in runs_of(api, full, ACTIVE):
            say(f"{full}: run {run['name']} belongs to another shard split; cancelling it")
            cancel(api, run["id"])
        if _SHARD_NAME.match(dep["name"]) and SHARD_TAG in (dep.get("tags") or []):
            api.delete(f"/deployments/{dep['id']}").raise_for_status()
            retired.append(full)
    return retired


def active_poller_runs(api: httpx.Client) -> list[dict[str, Any]]:
    """Active runs of every poller deployment (any split): what a stop must cancel."""
    out = []
    for dep in poller_flow_deployments(api):
        out += runs_of(api, f"{FLOW}/{dep['name']}", ACTIVE)
    return out


def ensure_runs(api: httpx.Client, deployments: list[str]) -> list[tuple[dict[str, Any], bool]]:
    """One active run per deployment: the existing one, or a new one; [(run, created)]."""
    out = []
    for dep in deployments:
        active = runs_of(api, dep, ACTIVE)
        if active:
            out.append((active[0], False))
            continue
        r = api.post(f"/deployments/{deployment_id(api, dep)}/create_flow_run", json={})
        r.raise_for_status()
        out.append((r.json(), True))
    return out
