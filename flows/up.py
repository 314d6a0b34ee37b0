"""`collector up`: the whole Prefect stack on this machine, in the foreground, until Ctrl-C.

Start-up, in order (every step is idempotent, so a second `up` changes nothing that exists):

1. (``--sim``) the venue simulator; its URLs reach every flow run through the worker's environment.
2. ``prefect server start`` on 127.0.0.1:<port> with ``PREFECT_HOME=<project>/.prefect`` (SQLite
   there), then wait for ``/api/health``. If a Prefect server already answers on that port, it is
   used as is ("attached": it is left running on exit).
3. The process work pool ``local`` (created only when missing, so its settings survive).
4. ``prefect --no-prompt deploy --all`` (prefect.yaml).
5. The automations of flows/automations.py, looked up by name and updated or skipped; the
   webhook block when ``COLLECTOR_PREFECT__WEBHOOK_URL`` is set.
6. With its own server, poller runs left Running by a process that is gone (a SIGKILLed `up`) are
   marked Cancelled. ONE worker (``prefect worker start --pool local``); attached to a running
   server, only if none is online there.
7. A discovery run now (unless its schedule is paused), and a poller run unless one is already
   Scheduled/Pending/Running/Cancelling.

While up, a worker or server that dies is restarted (the poller keeps recording meanwhile).

On Ctrl-C / SIGTERM / SIGHUP: cancel the poller run and wait until it is Cancelled (it flushes its
files inside Prefect's 30 s grace), then stop the worker, then the server, then the simulator;
exit 0. Children run in their own process groups, so a terminal Ctrl-C reaches only this process,
which then stops them in that order; their SIGINT/SIGTERM handling is the default one (never the
``nohup`` trap of docs/operations.md).

Everything talks to the REST API with httpx; only pool creation and deploy use the Prefect CLI.

``python -m flows.up`` takes the same options plus:

- ``--home DIR``: another PREFECT_HOME (the tests use a temporary one);
- ``--setup-only [--api-url URL]``: steps 3-5 and 7 against a server that runs elsewhere (compose);
- ``--cancel-pollers [FLOW/DEPLOYMENT ...]``: cancel the active poller runs and wait until they are
  Cancelled (before stopping a worker: systemd ``ExecStop=``, upgrades).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from collector.errors import ConfigError
from collector.settings import Settings, load_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
POOL = "local"
POLLER = "poller/poller"
DISCOVERY = "discovery/discovery"
COMPACT = "compact/compact"
DEPLOYMENTS = (POLLER, DISCOVERY, COMPACT)
ACTIVE = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
SERVER_START_TIMEOUT_S = 180.0  # fresh SQLite DB: ~11-16 s on a slow 2-core box; CI can be slower
CANCEL_TIMEOUT_S = 45.0  # Prefect SIGKILLs a cancelled run after 30 s; then the worker reports it
WORKER_QUERY_SECONDS = "2"  # default 10 s: a new run would wait up to 10 s to be picked up
# A discovery run that finds the slot taken tries again this long after (Prefect's default: 30 s),
# so a CI trigger that meets a scheduled run ends a few seconds after it, not half a minute.
SLOT_WAIT_SECONDS = "5"


class Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGHUP (SIGINT raises KeyboardInterrupt)."""


# -- processes ------------------------------------------------------------------------------------
def _child_setup() -> None:  # pragma: no cover - runs in the forked child
    """Default SIGINT/SIGTERM (a parent started with SIGINT ignored must not pass that on: the
    worker would never exit, field guide §4) and, on Linux, SIGTERM when `up` dies."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = PROJECT_DIR) -> subprocess.Popen:
    """A long-lived child in its own process group, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            process_group=0, preexec_fn=_child_setup,
        )


def stop(proc: subprocess.Popen | None, name: str, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"{name} did not exit within {timeout:.0f} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def prefect_cli(*args: str) -> list[str]:
    """The `prefect` of this interpreter's environment (the worker's runs need this venv)."""
    exe = Path(sys.executable).with_name("prefect")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "prefect", *args]


def run_cli(env: dict[str, str], *args: str, timeout: float = 180.0) -> None:
    """Run a Prefect CLI command to completion; raise with its output on failure."""
    r = subprocess.run(prefect_cli(*args), env=env, cwd=PROJECT_DIR, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"`prefect {' '.join(args)}` failed ({r.returncode}):\n{r.stdout}{r.stderr}")


def say(msg: str) -> None:
    print(f"collector up: {msg}", flush=True)


def prefect_env(api_url: str, home: Path | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this one, plus the API URL, PREFECT_HOME and no telemetry."""
    env = dict(os.environ if base is None else base)
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_CLI_PROMPT="false",
        PYTHONUNBUFFERED="1",
        PROJECT_DIR=str(PROJECT_DIR),  # prefect.yaml's pull step: set_working_directory "{{ $PROJECT_DIR }}"
    )
    env.pop("PREFECT_API_KEY", None)
    env.pop("PREFECT_PROFILE", None)
    return env


# -- REST API -------------------------------------------------------------------------------------
class ApiClient(httpx.Client):
    """httpx against the Prefect API, retrying 503/429 like Prefect's own client: a busy SQLite
    database answers 503 ("database is locked") under load."""

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:
        for attempt in range(6):
            r = super().request(*args, **kwargs)
            if r.status_code not in (429, 503):
                return r
            time.sleep(0.2 * 2**attempt)
        return r


def local_api(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def api_client(api_url: str) -> httpx.Client:
    return ApiClient(base_url=api_url, timeout=15.0, trust_env=False)


def healthy(api: httpx.Client) -> bool:
    try:
        r = api.get("/health", timeout=2.0)
        return r.status_code == 200 and r.json() is True
    except (httpx.HTTPError, ValueError):
        return False


def wait_healthy(api: httpx.Client, proc: subprocess.Popen | None, log: Path | None,
                 timeout: float = SERVER_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(api):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {proc.returncode}; see {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Prefect server was not healthy within {timeout:.0f} s; see {log}")
        time.sleep(0.3)


def tail(path: Path | None, n: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def deployment_id(api: httpx.Client, name: str) -> str:
    r = api.get(f"/deployments/name/{name}")
    r.raise_for_status()
    return r.json()["id"]


def runs_of(api: httpx.Client, deployment: str, states: list[str]) -> list[dict[str, Any]]:
    """Flow runs of ``deployment`` ("flow/deployment") in one of ``states`` (state types)."""
    body = {
        "deployments": {"id": {"any_": [deployment_id(api, deployment)]}},
        "flow_runs": {"state": {"type": {"any_": states}}},
        "sort": "EXPECTED_START_TIME_DESC",
        "limit": 50,
    }
    r = api.post("/flow_runs/filter", json=body)
    r.raise_for_status()
    return r.json()


def runs_named(api: httpx.Client, deployment: str, state_names: list[str]) -> list[dict[str, Any]]:
    """Flow runs of ``deployment`` whose state has one of these names (e.g. "Late")."""
    body = {
        "deployments": {"id": {"any_": [deployment_id(api, deployment)]}},
        "flow_runs": {"state": {"name": {"any_": state_names}}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 200,
    }
    r = api.post("/flow_runs/filter", json=body)
    r.raise_for_status()
    return r.json()


def read_run(api: httpx.Client, run_id: str) -> dict[str, Any]:
    r = api.get(f"/flow_runs/{run_id}")
    r.raise_for_status()
    return r.json()


def set_state(api: httpx.Client, run_id: str, state_type: str, message: str, force: bool = False) -> None:
    r = api.post(f"/flow_runs/{run_id}/set_state",
                 json={"state": {"type": state_type, "message": message}, "force": force})
    r.raise_for_status()


def state_of(run: dict[str, Any]) -> str:
    return (run.get("state") or {}).get("type") or "UNKNOWN"


# -- steps ----------------------------------------------------------------------------------------
def ensure_work_pool(api: httpx.Client, env: dict[str, str]) -> bool:
    """Create the process pool ``local`` when missing (check-then-create keeps a tuned pool as is)."""
    if api.get(f"/work_pools/{POOL}").status_code == 200:
        return False
    run_cli(env, "work-pool", "create", "--type", "process", POOL)
    return True


def deploy(env: dict[str, str]) -> None:
    run_cli(env, "--no-prompt", "deploy", "--all")


def online_workers(api: httpx.Client) -> list[str]:
    r = api.post(f"/work_pools/{POOL}/workers/filter", json={"limit": 50})
    if r.status_code != 200:
        return []
    return [w["name"] for w in r.json() if w.get("status") == "ONLINE"]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    wenv = {**env, "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS}
    name = f"local-{socket.gethostname()}"
    return spawn(prefect_cli("worker", "start", "--pool", POOL, "--name", name), wenv, log)


def clear_dead_runs(api: httpx.Client) -> list[str]:
    """Runs of every deployment left Pending/Running by a process that no longer exists on this
    host: `up` was SIGKILLed, the host rebooted, or the worker had already claimed (Pending) the
    next scheduled discovery when it was stopped. Such a run holds its deployment's concurrency
    slot, and the server keeps slot leases in memory, so after a restart nothing frees it and
    every later run of the deployment waits or is cancelled for ever. Only called when `up` has
    just started the server itself: nothing else could have reported on them. They are marked
    Cancelled (not Crashed, which would start the restart automation while `up` starts its own
    poller run); leaked slots are then given back (:func:`reconcile_slots`)."""
    import psutil

    cleared = []
    for dep in DEPLOYMENTS:
        if api.get(f"/deployments/name/{dep}").status_code != 200:
            continue
        for run in runs_of(api, dep, ["PENDING", "RUNNING", "CANCELLING"]):
            pid = str(run.get("infrastructure_pid") or "").rsplit(":", 1)[-1]
            if pid.isdigit() and psutil.pid_exists(int(pid)):
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


def ensure_poller_run(api: httpx.Client) -> tuple[dict[str, Any], bool]:
    """The active poller run, or a new one (``prefect deployment run poller/poller``); (run, created)."""
    active = runs_of(api, POLLER, ACTIVE)
    if active:
        return active[0], False
    r = api.post(f"/deployments/{deployment_id(api, POLLER)}/create_flow_run", json={})
    r.raise_for_status()
    return r.json(), True


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


# -- the stack ------------------------------------------------------------------------------------
@dataclass
class Stack:
    home: Path
    port: int
    env: dict[str, str]
    server: subprocess.Popen | None = None  # None: attached to a server that was already running
    worker: subprocess.Popen | None = None
    poller_runs: list[str] = field(default_factory=list)  # the poller runs this `up` created
    api: httpx.Client = None  # type: ignore[assignment]

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(stack: Stack) -> None:
    if healthy(stack.api):
        say(f"a Prefect server already answers at {stack.ui}: using it (it stays up after exit)")
        return
    log = stack.logs / "server.log"
    t0 = time.monotonic()
    senv = {**stack.env, "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": SLOT_WAIT_SECONDS}
    stack.server = spawn(
        prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(stack.port)), senv, log
    )
    wait_healthy(stack.api, stack.server, log)
    say(f"Prefect server healthy in {time.monotonic() - t0:.1f} s (database and logs in {stack.home})")


def configure(api: httpx.Client, env: dict[str, str], settings: Settings) -> None:
    """Work pool, deployments, automations: what every `up` (and `--setup-only`) makes sure of."""
    from flows.automations import apply_automations

    t0 = time.monotonic()
    if ensure_work_pool(api, env):
        say(f"work pool {POOL!r} (process) created")
    deploy(env)
    say(f"deployed prefect.yaml in {time.monotonic() - t0:.1f} s")
    summary = apply_automations(api, settings)
    say("automations: " + ", ".join(f"{k} {len(v)}" for k, v in summary.items() if v))


def start_poller_run(stack: Stack) -> None:
    run, created = ensure_poller_run(stack.api)
    if created:
        stack.poller_runs.append(run["id"])
    say(f"poller run {run['name']} ({run['id']}): {'started' if created else 'already ' + state_of(run).lower()}")


def bring_up(stack: Stack, settings: Settings, start_poller: bool) -> None:
    start_server(stack)
    configure(stack.api, stack.env, settings)
    if stack.server is not None:
        for name in clear_dead_runs(stack.api):
            say(f"{name} had no process left: marked Cancelled")
    # With our own server, a worker listed ONLINE is a stale record (status lags ~1 min behind a
    # stopped worker): always start ours. Attached, reuse the online worker of whoever runs the server.
    workers = [] if stack.server is not None else online_workers(stack.api)
    if workers:
        say(f"worker(s) already online in pool {POOL!r}: {', '.join(workers)}; not starting another")
    else:
        stack.worker = spawn_worker(stack)
    kick_discovery(stack.api)
    if start_poller:
        start_poller_run(stack)


def spawn_worker(stack: Stack) -> subprocess.Popen:
    log = stack.logs / "worker.log"
    proc = start_worker(stack.env, log)
    say(f"worker started (pid {proc.pid}, log {log})")
    return proc


def watch(stack: Stack) -> None:
    """Block until a signal. A server or worker that dies is restarted; the poller run keeps
    collecting meanwhile (its process belongs to the worker, not to the server)."""
    while True:
        time.sleep(1.0)
        if stack.server is not None and stack.server.poll() is not None:
            say(f"the Prefect server exited ({stack.server.returncode}); restarting it, the poller keeps running")
            stack.server = None
            start_server(stack)
        if stack.worker is not None and stack.worker.poll() is not None:
            say(f"the worker exited ({stack.worker.returncode}); restarting it")
            stack.worker = spawn_worker(stack)


def pollers_to_stop(stack: Stack) -> list[str]:
    """With our own server every active poller run is ours (the worker we stop serves it); attached
    to another server, only the run this `up` started."""
    if not healthy(stack.api):
        return []
    active = [r["id"] for r in runs_of(stack.api, POLLER, ACTIVE)]
    return active if stack.server is not None else [i for i in active if i in stack.poller_runs]


def shut_down(stack: Stack) -> None:
    """Poller run (Cancelled) -> worker -> server, each waited for. A second Ctrl-C skips the wait
    for the poller (the worker then kills it: no final flush)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for run_id in pollers_to_stop(stack):
            t0 = time.monotonic()
            say(f"cancelling poller run {run_id} (it flushes its files first; Ctrl-C again to skip)...")
            st = cancel_and_wait(stack.api, run_id)
            say(f"poller run {run_id}: {st} after {time.monotonic() - t0:.1f} s")
    except KeyboardInterrupt:
        say("not waiting for the poller run")
    except httpx.HTTPError as e:
        say(f"could not cancel the poller run: {e}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop(stack.worker, "worker")
    if stack.worker is not None:
        say("worker stopped")
    stop(stack.server, "server", timeout=20.0)
    if stack.server is not None:
        say("server stopped")


@contextlib.contextmanager
def _signals_raise_stop() -> Iterator[None]:
    """SIGINT -> KeyboardInterrupt, SIGTERM/SIGHUP -> Stop, while bringing up and watching; while
    shutting down further signals are ignored (shutdown is bounded by its own timeouts)."""

    def _stop(signum: int, frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        yield
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)


def run_up(home: Path, port: int, sim: bool, start_poller: bool) -> int:
    stack = Stack(home=home, port=port, env=prefect_env(local_api(port), home))
    home.mkdir(parents=True, exist_ok=True)
    rc = 0
    with contextlib.ExitStack() as es:
        stack.api = es.enter_context(api_client(local_api(port)))
        try:
            with _signals_raise_stop():
                if sim:
                    start_sim(stack, es)
                settings = load_settings_from(stack.env)
                stack.env["COLLECTOR_DATA_DIR"] = str(Path(settings.data_dir).resolve())
                bring_up(stack, settings, start_poller)
                say(f"UI at {stack.ui}  data in {stack.env['COLLECTOR_DATA_DIR']}  (Ctrl-C to stop)")
                watch(stack)
        except (KeyboardInterrupt, Stop):
            say("stopping...")
        except Exception as e:  # noqa: BLE001 - report, then still stop everything we started
            say(f"error: {e}")
            rc = 1
        finally:
            shut_down(stack)
    say("stopped")
    return rc


def start_sim(stack: Stack, es: contextlib.ExitStack) -> None:
    from collector.sim.testing import run_sim

    handle = es.enter_context(run_sim("--markets", "200"))
    stack.env.update(handle.env)
    stack.env.setdefault("COLLECTOR_DATA_DIR", str(PROJECT_DIR / "data" / "sim"))
    say(f"simulator at {handle.base}")


def load_settings_from(env: dict[str, str]) -> Settings:
    """Settings as a flow run will see them (the worker's environment is this ``env``)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def setup_only(api_url: str, start_poller: bool) -> int:
    """Pool, deployments, automations and a poller run on a server that runs elsewhere (compose,
    a shared server): no server, no worker, no waiting. Idempotent like `up`."""
    env = prefect_env(api_url)
    settings = load_settings()
    with api_client(api_url) as api:
        wait_healthy(api, None, None)
        configure(api, env, settings)
        if start_poller:
            stack = Stack(home=Path(env.get("PREFECT_HOME", "~/.prefect")), port=0, env=env, api=api)
            start_poller_run(stack)
    return 0


def cancel_pollers(api_url: str, deployments: list[str]) -> int:
    """Cancel the active runs of these poller deployments and wait until they are Cancelled: run it
    before stopping a worker (systemd ExecStop=, docker) so the poller flushes instead of becoming
    a zombie. Exit 0 when every run ended Cancelled."""
    ok = True
    with api_client(api_url) as api:
        for dep in deployments:
            for run in runs_of(api, dep, ACTIVE):
                st = cancel_and_wait(api, run["id"])
                say(f"{dep} run {run['name']} ({run['id']}): {st}")
                ok &= st == "CANCELLED"
    return 0 if ok else 1


def cli_up(args: argparse.Namespace) -> int:
    """Entry point of `collector up [--sim] [--port 4200] [--no-poller]`."""
    load_settings()  # a bad configuration stops here (ConfigError: `collector` exits 2)
    if getattr(args, "setup_only", False):
        return setup_only(args.api_url, start_poller=not args.no_poller)
    home = Path(getattr(args, "home", None) or PROJECT_DIR / ".prefect").resolve()
    return run_up(home, args.port, sim=args.sim, start_poller=not args.no_poller)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.up", description=__doc__.splitlines()[0])
    p.add_argument("--sim", action="store_true")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--no-poller", action="store_true")
    p.add_argument("--home", help="PREFECT_HOME (default <project>/.prefect)")
    p.add_argument("--setup-only", action="store_true",
                   help="only pool, deployments, automations and a poller run, on the server at --api-url")
    p.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL") or local_api(4200))
    p.add_argument("--cancel-pollers", nargs="*", metavar="FLOW/DEPLOYMENT",
                   help=f"only cancel the active runs of these deployments (default {POLLER}) and wait")
    args = p.parse_args(argv)
    if args.cancel_pollers is not None:
        return cancel_pollers(args.api_url, args.cancel_pollers or [POLLER])
    try:
        return cli_up(args)
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
