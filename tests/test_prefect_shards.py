"""Two poller shards under the real local stack: `python -m flows.stack.up --shards 2` against the
simulator (a Prefect server on a free loopback port, the process pool, one worker).

In order, on one stack: the shard deployments and their runs (parameters, own concurrency
slots, one automation per shard heartbeat); a shard killed with SIGKILL is restarted by the
automation as the same shard, and the restarted process writes `restart` gaps for that shard's
instruments only; a shard whose heartbeats stop (its run cancelled) raises the heartbeat alert
of that shard alone, while the other keeps beating; Ctrl-C cancels both. Timings are printed, not
asserted (bench/scale_bench.py measures them at 10,000 instruments).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from collector.poller.shard import in_shard
from collector.sim.testing import run_sim
from flows.stack.api import api_client, local_api, runs_of
from flows.stack.procs import prefect_env
from flows.stack.runs import cancel_and_wait
from tests import helpers as h
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

SHARDS = {"0/2": "poller/poller-shard-0of2", "1/2": "poller/poller-shard-1of2"}
BEAT_S = 15  # prefect.poller_heartbeat_s here: the pollers beat every second


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    receiver = Receiver()
    with run_sim("--markets", "10", "--seed", "17", "--no-rate-limit") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTOR_", "PREFECT_"))}
        env.update(sim.env)
        env.update(
            COLLECTOR_DATA_DIR=str(tmp / "data"),
            COLLECTOR_VENUES="polymarket",
            COLLECTOR_POLLER__STATS_INTERVAL_S="1",
            COLLECTOR_POLLER__HEARTBEAT_INTERVAL_S="1",
            COLLECTOR_DISCOVERY__TASK_RETRIES="0",
            COLLECTOR_POLYMARKET__RULES=h.ALL_RULE,
            COLLECTOR_STREAMS__POLYMARKET__ENABLED="false",
            COLLECTOR_PREFECT__WEBHOOK_URL=receiver.url,
            COLLECTOR_PREFECT__POLLER_HEARTBEAT_S=str(BEAT_S),
        )
        port, home = free_port(), tmp / ".prefect"
        t0 = time.monotonic()
        proc = start_up(tmp / "up.out", home, port, env, "--shards", "2")
        up = Up(proc, tmp / "up.out", home, tmp / "data", port, prefect_env(local_api(port), home, env),
                api_client(local_api(port)), receiver)
        try:
            wait_ready(proc, up.out)
            print(f"\n[shards] up ready in {time.monotonic() - t0:.1f} s\n{up.output()}")
            up.remember_children()
            yield up
        finally:
            tear_down(up)
            print(f"[shards] output of up:\n{up.output()}")


def running(api, dep: str) -> list[dict]:
    """The deployment's RUNNING runs; none while the server is too busy to answer (these are
    polled in waits: a busy SQLite server times a call out at load, the next poll asks again)."""
    try:
        return runs_of(api, dep, ["RUNNING"])
    except httpx.TimeoutException:
        return []


def beat_alerts(up: Up, since: float) -> dict[str, int]:
    """Heartbeat alerts received after ``since`` (epoch s), per shard named in the subject."""
    out = {s: 0 for s in SHARDS}
    for t, text in up.receiver.timed_texts():
        if t >= since and "heartbeat missing" in text:
            for s in SHARDS:
                out[s] += f"shard {s} " in text
    return out


def test_two_shard_deployments_each_with_one_run_and_its_own_alert(sharded):
    api = sharded.api
    for shard, dep in SHARDS.items():
        d = api.get(f"/deployments/name/{dep}").json()
        assert d["parameters"]["shard"] == shard and d["global_concurrency_limit"]["limit"] == 1
        assert d["work_pool_name"] == "local" and d["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
        (run,) = wait_for(f"{dep} Running", lambda: running(api, dep), 90)
        assert run["parameters"]["shard"] == shard
    assert not runs_of(api, "poller/poller", ["SCHEDULED", "PENDING", "RUNNING"])  # the whole set is not polled too
    names = {a["name"] for a in api.post("/automations/filter", json={}).json()}
    assert {"collector-poller-heartbeat-missing-shard-0of2", "collector-poller-heartbeat-missing-shard-1of2"} <= names
    assert "collector-poller-heartbeat-missing" not in names
    assert "2 poller shards" in sharded.output()
    sharded.remember_children()


def test_a_killed_shard_is_restarted_as_itself_and_records_its_restart_gaps(sharded):
    api = sharded.api
    dep = SHARDS["1/2"]
    wait_for("books from both shards", lambda: len({b["instrument_id"] for b in h.books(sharded.data, "polymarket")})
             >= 8, 60)
    (run,) = running(api, dep)
    pid = int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])
    time.sleep(2.5)  # a state mark or two (stats every second)
    t0, kill_ms = time.monotonic(), time.time() * 1000
    os.kill(pid, signal.SIGKILL)
    # the worker reports the death, the automation asks for a new run, a flow-run process starts:
    # ~10 s on a quiet machine, over 90 s on a loaded one
    new = wait_for("the restarted shard", lambda: [r for r in running(api, dep) if r["id"] != run["id"]], 180)[0]
    print(f"[timing] SIGKILL -> shard 1/2 Running again: {time.monotonic() - t0:.1f} s")
    assert new["parameters"]["shard"] == "1/2"
    assert len(running(api, SHARDS["0/2"])) == 1  # the other shard was left alone

    def restart_gaps():
        return [g for g in h.gaps(sharded.data, "polymarket") if g["reason"] == "restart"]

    gaps = wait_for("restart gaps", restart_gaps, 60)
    time.sleep(3)
    gaps = restart_gaps()
    print(f"[timing] SIGKILL -> {len(gaps)} restart gaps: {time.monotonic() - t0:.1f} s")
    assert all(in_shard(g["instrument_id"], "1/2") for g in gaps), gaps
    assert all(g["from_ts_ms"] <= kill_ms <= g["to_ts_ms"] and g["failures"] == 0 for g in gaps), gaps
    sharded.remember_children()


def test_a_silent_shard_alerts_for_itself_only(sharded):
    api = sharded.api
    wait_for("both shards Running", lambda: all(running(api, d) for d in SHARDS.values()), 180)
    time.sleep(BEAT_S + 5)  # both beating for a whole alert window
    since = time.time()
    (run,) = running(api, SHARDS["1/2"])
    assert cancel_and_wait(api, run["id"]) == "CANCELLED"  # a clean stop: not restarted, heartbeats stop
    t0 = time.monotonic()
    wait_for("the shard 1/2 heartbeat alert", lambda: beat_alerts(sharded, since)["1/2"], 3 * BEAT_S + 30)
    print(f"[timing] cancel -> shard 1/2 heartbeat alert: {time.monotonic() - t0:.1f} s")
    assert beat_alerts(sharded, since)["0/2"] == 0
    assert not runs_of(api, SHARDS["1/2"], ["SCHEDULED", "PENDING", "RUNNING"])


def test_ctrl_c_cancels_every_shard(sharded):
    api = sharded.api
    (run0,) = running(api, SHARDS["0/2"])
    sharded.remember_children()
    sharded.proc.send_signal(signal.SIGINT)
    assert sharded.proc.wait(timeout=90) == 0, sharded.output()
    assert f"poller run {run0['id']}: CANCELLED" in sharded.output()
    assert "worker stopped" in sharded.output() and "server stopped" in sharded.output()
