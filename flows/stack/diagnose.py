"""What the orchestrator knows about discovery, for `collector status`.

The files say *that* there is no snapshot; only the Prefect API can say *why*: discovery runs
cancelled or waiting behind a run that holds the deployment's concurrency slot with no process
left (a worker stopped after it had claimed the run), a paused schedule, no worker online. Read
over REST with short timeouts; an unreachable API is one note, never an error.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

import httpx

from flows.stack.api import DISCOVERY, POOL, api_client, runs_named, runs_of
from flows.stack.procs import process_alive

RECENT_S = 600.0  # runs of the last 10 minutes tell the current story
STUCK_NOTE_S = 10.0  # a healthy run is Pending for 2-7 s (pull step, process start)


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _hhmmss(t: float | None) -> str:
    return "?" if t is None else time.strftime("%H:%M:%S", time.gmtime(t)) + " UTC"


def discovery_notes(api: httpx.Client, now: float | None = None) -> list[str]:
    """Notes on why discovery may not be producing snapshots (empty when all looks well)."""
    now = time.time() if now is None else now
    r = api.get(f"/deployments/name/{DISCOVERY}")
    if r.status_code == 404:
        return [f"prefect: deployment {DISCOVERY} does not exist (run `collector up`)"]
    r.raise_for_status()
    dep = r.json()
    notes = []
    if dep.get("schedules") and not any(s.get("active") for s in dep["schedules"]):
        notes.append("prefect: the discovery schedule is paused (resume it in the UI or with "
                     "`prefect deployment schedule resume`)")
    holders = runs_of(api, DISCOVERY, ["PENDING", "RUNNING", "CANCELLING"])
    for run in holders:
        since = _ts((run.get("state") or {}).get("timestamp"))
        if run["state_type"] == "PENDING" and not process_alive(run) and since is not None and now - since > STUCK_NOTE_S:
            notes.append(
                f"prefect: discovery run {run['name']} ({run['id']}) has been Pending since {_hhmmss(since)} with "
                "no process: it holds the deployment's only concurrency slot, so every later discovery run waits "
                "or is cancelled. The collector-stuck-pending-runs automation marks it Crashed; `collector up` "
                "clears it at start; or: prefect flow-run cancel " + run["id"])
    waiting = runs_named(api, DISCOVERY, ["AwaitingConcurrencySlot"])
    cancelled = [x for x in runs_of(api, DISCOVERY, ["CANCELLED"])
                 if "concurrency limit" in ((x.get("state") or {}).get("message") or "").lower()
                 and (_ts((x.get("state") or {}).get("timestamp")) or 0) > now - RECENT_S]
    if (waiting or cancelled) and holders:
        h = holders[0]
        notes.append(f"prefect: {len(waiting)} discovery run(s) waiting and {len(cancelled)} cancelled in the last "
                     f"{RECENT_S / 60:.0f} min behind run {h['name']} ({h['state_type'].lower()})")
    done = runs_of(api, DISCOVERY, ["COMPLETED"])
    if done:
        last = _ts(done[0].get("end_time") or (done[0].get("state") or {}).get("timestamp"))
        if last is not None and now - last > RECENT_S:
            notes.append(f"prefect: the last discovery run Completed at {_hhmmss(last)}, {(now - last) / 60:.0f} min ago")
    else:
        notes.append("prefect: no discovery run has Completed yet")
    w = api.post(f"/work_pools/{POOL}/workers/filter", json={"limit": 50})
    if w.status_code == 200 and not any(x.get("status") == "ONLINE" for x in w.json()):
        notes.append(f"prefect: no worker online in pool {POOL!r}: no flow run can start")
    return notes


def cli_status(settings: Any, args: Any) -> int:
    """`collector status`: the files' view (collector.ops.status), plus the orchestrator's notes when a
    Prefect API answers (PREFECT_API_URL, else the local `collector up` server)."""
    from collector.ops.status import cli_status as files_status

    url = getattr(args, "prefect_api_url", None) or os.environ.get("PREFECT_API_URL") or "http://127.0.0.1:4200/api"
    try:
        with api_client(url) as api:
            api.timeout = httpx.Timeout(3.0)
            notes = discovery_notes(api)
    except (httpx.HTTPError, ValueError, KeyError) as e:
        explicit = getattr(args, "prefect_api_url", None) or os.environ.get("PREFECT_API_URL")
        notes = [f"prefect: API at {url} not reachable ({type(e).__name__})"] if explicit else []
    return files_status(settings, args, extra_notes=notes)
