"""Runs and slots of the collector's deployments: what `collector up` repairs, starts and cancels."""

from __future__ import annotations

import time

import httpx

from flows.stack.api import (
    ACTIVE,
    DEPLOYMENTS,
    DISCOVERY,
    TERMINAL,
    api_client,
    read_run,
    runs_of,
    set_state,
    state_of,
)
from flows.stack.procs import (
    process_alive,
    say,
)
from flows.stack.shards import FLOW, poller_flow_deployments

CANCEL_TIMEOUT_S = 45.0  # Prefect SIGKILLs a cancelled run after 30 s; then the worker reports it


def clear_dead_runs(api: httpx.Client) -> list[str]:
    """Runs of every deployment left Pending/Running by a process that no longer exists on this
    host: `up` was SIGKILLed, the host rebooted, or the worker had already claimed (Pending) the
    next scheduled discovery when it was stopped. Such a run holds its deployment's concurrency
    slot, and the server keeps slot leases in memory, so after a restart nothing frees it and
    every later run of the deployment waits or is cancelled for ever. Only called when `up` has
    just started the server itself: nothing else could have reported on them. They are marked
    Cancelled (not Crashed, which would start the restart automation while `up` starts its own
    poller run); leaked slots are then given back (:func:`reconcile_slots`)."""

    cleared = []
    shard_deps = [f"{FLOW}/{d['name']}" for d in poller_flow_deployments(api)]
    for dep in dict.fromkeys([*DEPLOYMENTS, *shard_deps]):
        if api.get(f"/deployments/name/{dep}").status_code != 200:
            continue
        for run in runs_of(api, dep, ["PENDING", "RUNNING", "CANCELLING"]):
            if process_alive(run):
                continue
            set_state(api, run["id"], "CANCELLED", "its process was gone when `collector up` started", force=True)
            cleared.append(f"{dep} run {run['name']}")
        reconcile_slots(api, dep)
    return cleared


def reconcile_slots(api: httpx.Client, deployment: str) -> int | None:
    """Give back concurrency slots no run holds any more (a slot counted as taken by the database
    whose lease died with a server); returns the slots given back, None when there is no limit."""
    r = api.get(f"/deployments/name/{deployment}")
    if r.status_code != 200:
        return None
    limit = r.json().get("global_concurrency_limit") or {}
    if not limit.get("id"):
        return None
    holding = len(runs_of(api, deployment, ["PENDING", "RUNNING", "CANCELLING"]))
    leaked = int(limit.get("active_slots") or 0) - holding
    if leaked > 0:
        api.patch(f"/v2/concurrency_limits/{limit['id']}", json={"active_slots": holding}).raise_for_status()
        say(f"{deployment}: {leaked} concurrency slot(s) held by no run were given back")
    return max(leaked, 0)


def kick_discovery(api: httpx.Client) -> None:
    """One discovery run now, so a first start has snapshots in seconds, not at the next minute;
    skipped while the discovery schedule is paused (the operator stopped discovery)."""
    dep = api.get(f"/deployments/name/{DISCOVERY}").json()
    if any(s.get("active") for s in dep.get("schedules", [])) and not runs_of(api, DISCOVERY, ["PENDING", "RUNNING"]):
        api.post(f"/deployments/{dep['id']}/create_flow_run", json={}).raise_for_status()
        say("discovery run started")


def cancel_and_wait(api: httpx.Client, run_id: str, timeout: float = CANCEL_TIMEOUT_S) -> str:
    """``prefect flow-run cancel``: Cancelling (the worker SIGTERMs the run: TerminationSignal, the
    poller flushes, the run ends Cancelled); a run not yet started is cancelled at once. Returns
    the final state type (or the last one seen on timeout)."""
    run = read_run(api, run_id)
    st = state_of(run)
    if st == "SCHEDULED":
        set_state(api, run_id, "CANCELLED", "cancelled by `collector up` before it started", force=True)
    elif st in ("PENDING", "RUNNING", "PAUSED"):
        set_state(api, run_id, "CANCELLING", "stopped by `collector up`")
    deadline = time.monotonic() + timeout
    while st not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        st = state_of(read_run(api, run_id))
    return st


def cancel_pollers(api_url: str, deployments: list[str] | None = None) -> int:
    """Cancel the active runs of these poller deployments (default: every deployment of the poller
    flow, all shards) and wait until they are Cancelled: run it before stopping a worker (systemd
    ExecStop=, docker) so the poller flushes instead of becoming a zombie. Exit 0 when every run
    ended Cancelled."""
    ok = True
    with api_client(api_url) as api:
        for dep in deployments or [f"{FLOW}/{d['name']}" for d in poller_flow_deployments(api)]:
            for run in runs_of(api, dep, ACTIVE):
                st = cancel_and_wait(api, run["id"])
                say(f"{dep} run {run['name']} ({run['id']}): {st}")
                ok &= st == "CANCELLED"
    return 0 if ok else 1
