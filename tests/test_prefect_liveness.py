"""Discovery stays alive through unclean stops and CI triggers (issue 12 items 4 and 5), against a
real Prefect server on loopback.

The module first recreates what a Ctrl-C a few seconds before a minute boundary leaves behind: a
discovery run claimed by the worker (Pending, holding the deployment's concurrency slot) and a
server whose in-memory slot leases are gone. Then `python -m flows.stack.up` (= `collector up`) starts
on the same PREFECT_HOME and the tests check, in file order, that discovery recovers, that CI
triggers meeting a busy slot still exit 0, that the schedule's late runs do not come back as a
backlog, and that a run stuck Pending while the stack runs is marked Crashed and alerted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import psutil
import pytest

from collector.sim.testing import run_sim
from collector.store.layout import snapshot_path
from collector.store.snapshot import read_snapshot
from flows.discovery import SUPERSEDED
from flows.stack.api import (
    DISCOVERY,
    api_client,
    deployment_id,
    healthy,
    local_api,
    read_run,
    runs_named,
    runs_of,
)
from flows.stack.procs import PROJECT_DIR, prefect_cli, prefect_env
from tests.test_prefect_stack import (
    Receiver,
    Up,
    free_port,
    start_up,
    tear_down,
    wait_for,
    wait_ready,
)

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

PENDING_STUCK_S = 30  # the automation's bound in this module (default 120 s)


def _start_server(home, port, env) -> subprocess.Popen:
    return subprocess.Popen(prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(port)),
                            env={**env, "PREFECT_HOME": str(home)}, cwd=PROJECT_DIR, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, process_group=0)


def _claim(api, run_id: str, within_s: float = 120) -> None:
    """Propose Pending the way a worker does (not forced: the server takes the concurrency slot).

    A scheduled discovery run may hold the slot at that moment; like a worker, propose again
    once it is done (a rejected run waits in AwaitingConcurrencySlot, still Scheduled)."""
    deadline = time.monotonic() + within_s
    while True:
        r = api.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "PENDING", "name": "Pending"}})
        r.raise_for_status()
        reply = r.json()
        if reply["status"] == "ACCEPT":
            return
        if reply["status"] == "ABORT" and read_run(api, run_id)["state"]["type"] == "PENDING":
            return  # an earlier proposal went through after all (its answer was lost to a busy server)
        assert reply["status"] in ("REJECT", "WAIT") and time.monotonic() < deadline, reply
        time.sleep(1.0)


def _run_on_unserved_queue(api) -> dict:
    """A discovery run on a work queue no worker polls, so only this test moves it."""
    dep = deployment_id(api, DISCOVERY)
    r = api.post(f"/deployments/{dep}/create_flow_run", json={"work_queue_name": "nobody", "tags": ["test-stuck"]})
    r.raise_for_status()
    return r.json()


def _slot(api) -> dict:
    return api.get(f"/deployments/name/{DISCOVERY}").json()["global_concurrency_limit"]


def _completed_since(api, t: float) -> list[dict]:
    return [r for r in runs_of(api, DISCOVERY, ["COMPLETED"])
            if datetime.fromisoformat(r["end_time"].replace("Z", "+00:00")).timestamp() > t]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("liveness")
    receiver = Receiver()
    port, home = free_port(), tmp / ".prefect"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
    with run_sim("--markets", "8", "--seed", "7", "--no-rate-limit") as sim:
        env = {**base, **sim.env}
        env.update(
            COLLECTOR_DATA_DIR=str(tmp / "data"),
            COLLECTOR_DISCOVERY__TASK_RETRIES="0",
            COLLECTOR_POLYMARKET__RULES='[{"name": "top", "max_markets": 5}]',
            COLLECTOR_LIMITLESS__RULES='[{"name": "top", "max_markets": 3}]',
            COLLECTOR_PREFECT__WEBHOOK_URL=receiver.url,
            COLLECTOR_PREFECT__PENDING_STUCK_S=str(PENDING_STUCK_S),
        )
        cli_env = prefect_env(local_api(port), home, env)
        # 1. What the earlier session left: a claimed discovery run, then a server that died.
        server = _start_server(home, port, cli_env)
        try:
            with api_client(local_api(port)) as api:
                wait_for("the first server", lambda: healthy(api), 180)
                r = subprocess.run([sys.executable, "-m", "flows.stack.up", "--setup-only", "--no-poller",
                                    "--api-url", local_api(port)], cwd=PROJECT_DIR, env=cli_env,
                                   capture_output=True, text=True, timeout=300)
                assert r.returncode == 0, r.stdout + r.stderr
                left = _run_on_unserved_queue(api)
                _claim(api, left["id"])
                assert _slot(api)["active_slots"] == 1
        finally:
            server.send_signal(signal.SIGKILL)  # kill -9 / reboot: the slot's lease dies with it
            server.wait(timeout=30)
        # 2. `collector up` again on the same PREFECT_HOME.
        t0 = time.time()
        proc = start_up(tmp / "up.out", home, port, env, "--no-poller")
        up = Up(proc, tmp / "up.out", home, tmp / "data", port, cli_env, api_client(local_api(port)), receiver)
        up.left_run = left  # type: ignore[attr-defined]
        up.t0 = t0  # type: ignore[attr-defined]
        try:
            wait_ready(proc, up.out)
            up.remember_children()
            yield up
        finally:
            tear_down(up)
            print(f"[liveness] output of up:\n{up.output()}")


def test_up_clears_a_run_left_pending_and_discovery_recovers(stack):
    """Regression (item 4): the run the stopped worker had claimed held the slot for ever, every
    later discovery run was Cancelled, no snapshot was ever written."""
    api = stack.api
    left = api.get(f"/flow_runs/{stack.left_run['id']}").json()
    assert left["state_type"] == "CANCELLED", left["state"]
    assert f"{DISCOVERY} run {left['name']} had no process left" in stack.output()
    done = wait_for("a Completed discovery run", lambda: _completed_since(api, stack.t0), 120)
    print(f"[timing] up start -> discovery Completed: {time.time() - stack.t0:.1f} s")
    assert done
    for venue in ("polymarket", "limitless"):
        assert read_snapshot(snapshot_path(stack.data, venue)).instruments
    assert _slot(api)["active_slots"] <= 1


def test_ci_trigger_meeting_a_busy_slot_exits_0(stack):
    """Regression (item 5): with CANCEL_NEW a `--watch` trigger that met a scheduled (or `up`'s)
    run ended Cancelled, exit 1. Here another run holds the slot for certain when the trigger
    arrives; the trigger waits for the slot, runs, and exits 0."""
    api = stack.api
    holder = _run_on_unserved_queue(api)
    _claim(api, holder["id"])  # "the scheduled run is under way"
    t0 = time.monotonic()
    ci = subprocess.Popen(prefect_cli("deployment", "run", DISCOVERY, "--watch", "--watch-interval", "1",
                                      "--watch-timeout", "240"), env=stack.env, cwd=PROJECT_DIR,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        waiting = wait_for("the CI run to wait for the slot", lambda: [
            r for r in runs_named(api, DISCOVERY, ["AwaitingConcurrencySlot"]) if "auto-scheduled" not in r["tags"]],
            60, 0.5)
        assert waiting
        time.sleep(3)
        r = api.post(f"/flow_runs/{holder['id']}/set_state",
                     json={"state": {"type": "COMPLETED", "name": "Completed"}, "force": True})
        r.raise_for_status()
        out, _ = ci.communicate(timeout=240)
    finally:
        if ci.poll() is None:
            ci.kill()
    print(f"[timing] CI trigger behind a busy slot: {time.monotonic() - t0:.1f} s")
    assert ci.returncode == 0, out
    assert "Completed" in out
    # And once more against a real run that was started just before (the usual race).
    dep = deployment_id(api, DISCOVERY)
    api.post(f"/deployments/{dep}/create_flow_run", json={}).raise_for_status()
    r = stack.cli("deployment", "run", DISCOVERY, "--watch", "--watch-interval", "1", "--watch-timeout", "240")
    assert r.returncode == 0, r.stdout + r.stderr


def test_late_runs_of_the_schedule_do_not_come_back_as_a_backlog(stack):
    """After an outage the schedule's due runs are all offered at once; the first that runs
    cancels the others (they are redundant), so they neither queue up nor run one by one."""
    api = stack.api
    dep = deployment_id(api, DISCOVERY)
    now = datetime.now(timezone.utc)
    late = []
    for k in range(6):
        when = (now - timedelta(minutes=6 - k)).isoformat()
        body = {"tags": ["auto-scheduled"], "state": {"type": "SCHEDULED", "name": "Late",
                                                      "state_details": {"scheduled_time": when}}}
        late.append(api.post(f"/deployments/{dep}/create_flow_run", json=body).json()["id"])
    t0 = time.monotonic()

    def settled():
        states = [api.get(f"/flow_runs/{i}").json() for i in late]
        return states if all(s["state_type"] in ("COMPLETED", "CANCELLED", "FAILED", "CRASHED") for s in states) else None

    states = wait_for("the late runs to settle", settled, 120, 1.0)
    print(f"[timing] 6 late runs settled in {time.monotonic() - t0:.1f} s")
    ran = [s for s in states if s["state_type"] == "COMPLETED"]
    superseded = [s for s in states if s["state_type"] == "CANCELLED" and s["state"]["message"] == SUPERSEDED]
    # One of them, or a scheduled run that started first, did the work; the rest were superseded.
    assert len(ran) <= 2, [(s["name"], s["state_type"]) for s in states]
    assert len(ran) + len(superseded) == 6, [(s["name"], s["state_type"], s["state"]["message"]) for s in states]
    # The run that superseded them may still be running when they settle.
    assert wait_for("the discovery run that did the work", lambda: _completed_since(api, now.timestamp()), 120)


def test_a_run_stuck_pending_is_crashed_alerted_and_its_slot_freed(stack):
    api = stack.api
    stuck = _run_on_unserved_queue(api)
    _claim(api, stuck["id"])
    t0 = time.monotonic()
    # While it holds the slot, `collector status` says so (here the run's process never existed).
    collector = os.path.join(os.path.dirname(sys.executable), "collector")
    time.sleep(12)
    r = subprocess.run([collector, "status"], env={**stack.env, "COLLECTOR_DATA_DIR": str(stack.data)},
                       cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    crashed_already = api.get(f"/flow_runs/{stuck['id']}").json()["state_type"] == "CRASHED"
    if not crashed_already:
        assert stuck["name"] in r.stdout and "holds the deployment's only concurrency slot" in r.stdout, r.stdout
    wait_for("the stuck run to be Crashed",
             lambda: api.get(f"/flow_runs/{stuck['id']}").json()["state_type"] == "CRASHED", PENDING_STUCK_S + 90, 1.0)
    print(f"[timing] stuck Pending -> Crashed: {time.monotonic() - t0:.1f} s")
    msg = api.get(f"/flow_runs/{stuck['id']}").json()["state"]["message"]
    assert "Stuck in Pending" in msg
    text = wait_for("the discovery-failed webhook naming the run",
                    lambda: [t for t in stack.receiver.texts() if stuck["name"] in t], 120)
    assert "is Crashed" in text[0] and "Stuck in Pending" in text[0]
    t1 = time.time()
    dep = deployment_id(api, DISCOVERY)
    api.post(f"/deployments/{dep}/create_flow_run", json={}).raise_for_status()
    assert wait_for("a discovery run after the crash", lambda: _completed_since(api, t1), 90)


def test_no_process_is_left_after_ctrl_c(stack):
    stack.remember_children()
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=90) == 0, stack.output()
    alive = [p for p in stack.children.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive
