"""`collector up`: the whole Prefect stack on this machine, in the foreground, until Ctrl-C.

Start-up, in order (every step is idempotent, so a second `up` changes nothing that exists):

1. (``--sim``) the venue simulator; its URLs reach every flow run through the worker's environment.
2. ``prefect server start`` on 127.0.0.1:<port> with ``PREFECT_HOME=<project>/.prefect`` (SQLite
   there, or the PostgreSQL database of ``--database postgresql+asyncpg://...``, which is
   ``PREFECT_SERVER_DATABASE_CONNECTION_URL``), then wait for ``/api/health``. If a Prefect
   server already answers on that port, it is used as is ("attached": it is left running on exit).
3. The process work pool ``local`` (created only when missing, so its settings survive).
4. ``prefect --no-prompt deploy --all`` (prefect.yaml).
5. The automations of flows/stack/automations.py, looked up by name and updated or skipped; the
   webhook block when ``COLLECTOR_PREFECT__WEBHOOK_URL`` is set.
6. With its own server, poller runs left Running by a process that is gone (a SIGKILLed `up`) are
   marked Cancelled. ONE worker (``prefect worker start --pool local``); attached to a running
   server, only if none is online there.
7. A discovery run now (unless its schedule is paused), and a poller run per shard unless one is
   already Scheduled/Pending/Running/Cancelling. ``--shards N`` (setting ``poller.shards``): the
   shard deployments ``poller-shard-<k>of<N>`` are made from ``poller`` after the deploy, one run
   each (flows/stack/shards.py); the deployments of another split are cancelled and removed.

While up, a worker or server that dies is restarted (the poller keeps recording meanwhile).

On Ctrl-C / SIGTERM / SIGHUP: cancel the poller run and wait until it is Cancelled (it flushes its
files inside Prefect's 30 s grace), then stop the worker, then the server, then the simulator;
exit 0. Children run in their own process groups, so a terminal Ctrl-C reaches only this process,
which then stops them in that order; their SIGINT/SIGTERM handling is the default one (never the
``nohup`` trap of docs/operations.md).

Everything talks to the REST API with httpx; only pool creation and deploy use the Prefect CLI.

``python -m flows.stack.up`` takes the same options plus:

- ``--home DIR``: another PREFECT_HOME (the tests use a temporary one);
- ``--setup-only [--api-url URL] [--prefect-file FILE]``: steps 3-5 and 7 against a server that
  runs elsewhere (compose; FILE for another pool, e.g. infra/prefect.docker.yaml);
- ``--cancel-pollers [FLOW/DEPLOYMENT ...]``: cancel the active poller runs and wait until they are
  Cancelled (before stopping a worker: systemd ``ExecStop=``, upgrades).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from collector.config.settings import Settings, load_settings
from collector.model.errors import ConfigError
from flows.stack.api import (
    POOL,
    api_client,
    healthy,
    local_api,
    state_of,
)
from flows.stack.procs import (
    PROJECT_DIR,
    Stop,
    load_settings_from,
    prefect_cli,
    prefect_env,
    run_cli,
    say,
    signals_raise_stop,
    spawn,
    stop,
    tail,
)
from flows.stack.runs import (
    cancel_and_wait,
    cancel_pollers,
    clear_dead_runs,
    kick_discovery,
)
from flows.stack.shards import (
    active_poller_runs,
    ensure_runs,
    ensure_shard_deployments,
    retire_other_splits,
)

SERVER_START_TIMEOUT_S = 180.0  # fresh SQLite DB: ~11-16 s on a slow 2-core box; CI can be slower
WORKER_QUERY_SECONDS = "2"  # default 10 s: a new run would wait up to 10 s to be picked up
# A discovery run that finds the slot taken tries again this long after (Prefect's default: 30 s),
# so a CI trigger that meets a scheduled run ends a few seconds after it, not half a minute.
SLOT_WAIT_SECONDS = "5"
DATABASE_HELP = ("the Prefect server's database, e.g. postgresql+asyncpg://user:pass@127.0.0.1:5432/prefect "
                 "(default: PREFECT_SERVER_DATABASE_CONNECTION_URL, else SQLite in PREFECT_HOME)")


def wait_healthy(api: httpx.Client, proc: subprocess.Popen | None, log: Path | None,
                 timeout: float = SERVER_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(api):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {proc.returncode}; see {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Prefect server was not healthy within {timeout:.0f} s; see {log}")
        time.sleep(0.3)


# -- steps ----------------------------------------------------------------------------------------
def ensure_work_pool(api: httpx.Client, env: dict[str, str]) -> bool:
    """Create the process pool ``local`` when missing (check-then-create keeps a tuned pool as is)."""
    if api.get(f"/work_pools/{POOL}").status_code == 200:
        return False
    run_cli(env, "work-pool", "create", "--type", "process", POOL)
    return True


def deploy(env: dict[str, str], prefect_file: str | None = None) -> None:
    run_cli(env, "--no-prompt", "deploy", "--all", *(["--prefect-file", prefect_file] if prefect_file else []))


def online_workers(api: httpx.Client) -> list[str]:
    r = api.post(f"/work_pools/{POOL}/workers/filter", json={"limit": 50})
    if r.status_code != 200:
        return []
    return [w["name"] for w in r.json() if w.get("status") == "ONLINE"]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    wenv = {**env, "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS}
    for k in ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        wenv.pop(k, None)  # only the server needs the database (and its password); flow runs use the API
    name = f"local-{socket.gethostname()}"
    return spawn(prefect_cli("worker", "start", "--pool", POOL, "--name", name), wenv, log)


# -- the stack ------------------------------------------------------------------------------------
@dataclass
class Stack:
    home: Path
    port: int
    env: dict[str, str]
    server: subprocess.Popen | None = None  # None: attached to a server that was already running
    worker: subprocess.Popen | None = None
    poller_runs: list[str] = field(default_factory=list)  # the poller runs this `up` created
    poller_deployments: list[str] = field(default_factory=list)  # one per shard
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
    say(f"Prefect server healthy in {time.monotonic() - t0:.1f} s (database {database_label(stack.env)}, logs in {stack.logs})")


def database_label(env: dict[str, str]) -> str:
    """Where the server keeps its state, password masked."""
    url = env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or env.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if not url:
        return f"SQLite in {env.get('PREFECT_HOME')}"
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def configure(api: httpx.Client, env: dict[str, str], settings: Settings, prefect_file: str | None = None) -> list[str]:
    """Work pool, deployments (with one per shard), automations: what every `up` (and
    `--setup-only`) makes sure of. Returns the poller deployments, one per shard."""
    from flows.stack.automations import apply_automations

    t0 = time.monotonic()
    if ensure_work_pool(api, env):
        say(f"work pool {POOL!r} (process) created")
    deploy(env, prefect_file)
    say(f"deployed {prefect_file or 'prefect.yaml'} in {time.monotonic() - t0:.1f} s")
    n = settings.poller.shards
    deps = ensure_shard_deployments(api, n, settings.prefect.shard_work_queue)
    if n > 1:
        say(f"{n} poller shards: {', '.join(deps)}")
    for name in retire_other_splits(api, deps, cancel_and_wait):
        say(f"{name} (another shard split) removed")
    summary = apply_automations(api, settings)
    say("automations: " + ", ".join(f"{k} {len(v)}" for k, v in summary.items() if v))
    return deps


def start_poller_runs(stack: Stack) -> None:
    for run, created in ensure_runs(stack.api, stack.poller_deployments):
        if created:
            stack.poller_runs.append(run["id"])
        say(f"poller run {run['name']} ({run['id']}): {'started' if created else 'already ' + state_of(run).lower()}")


def bring_up(stack: Stack, settings: Settings, start_poller: bool) -> None:
    start_server(stack)
    stack.poller_deployments = configure(stack.api, stack.env, settings)
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
        start_poller_runs(stack)


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
    """With our own server every active poller run (every shard) is ours (the worker we stop
    serves it); attached to another server, only the runs this `up` started."""
    if not healthy(stack.api):
        return []
    active = [r["id"] for r in active_poller_runs(stack.api)]
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


def run_up(home: Path, port: int, sim: bool, start_poller: bool, shards: int | None = None,
           database: str | None = None) -> int:
    stack = Stack(home=home, port=port, env=prefect_env(local_api(port), home))
    if database:  # the server's database; SQLite in PREFECT_HOME otherwise
        stack.env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    if shards is not None:  # the flag wins over the setting; the automations follow it too
        stack.env["COLLECTOR_POLLER__SHARDS"] = str(shards)
    home.mkdir(parents=True, exist_ok=True)
    rc = 0
    with contextlib.ExitStack() as es:
        stack.api = es.enter_context(api_client(local_api(port)))
        try:
            with signals_raise_stop():
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
    from collector.sim.testing import all_venues_env, run_sim

    handle = es.enter_context(run_sim("--markets", "200"))
    stack.env.update(handle.env)
    stack.env.update(all_venues_env(load_settings_from(stack.env)))
    stack.env.setdefault("COLLECTOR_DATA_DIR", str(PROJECT_DIR / "data" / "sim"))
    say(f"simulator at {handle.base}")


def setup_only(api_url: str, start_poller: bool, shards: int | None = None, prefect_file: str | None = None) -> int:
    """Pool, deployments, automations and a poller run per shard on a server that runs elsewhere
    (compose, a shared server): no server, no worker, no waiting. Idempotent like `up`."""
    env = prefect_env(api_url)
    if shards is not None:
        env["COLLECTOR_POLLER__SHARDS"] = str(shards)
    settings = load_settings_from(env)
    with api_client(api_url) as api:
        wait_healthy(api, None, None)
        deps = configure(api, env, settings, prefect_file)
        if start_poller:
            stack = Stack(home=Path(env.get("PREFECT_HOME", "~/.prefect")), port=0, env=env, api=api,
                          poller_deployments=deps)
            start_poller_runs(stack)
    return 0


def cli_up(args: argparse.Namespace) -> int:
    """Entry point of `collector up [--sim] [--port 4200] [--no-poller] [--shards N]`."""
    shards = getattr(args, "shards", None)
    load_settings(**({"poller": {"shards": shards}} if shards is not None else {}))  # a bad configuration stops here (exit 2)
    if getattr(args, "setup_only", False):
        return setup_only(args.api_url, start_poller=not args.no_poller, shards=shards,
                          prefect_file=getattr(args, "prefect_file", None))
    # --home, else PREFECT_HOME (a service's Environment=), else <project>/.prefect
    home = Path(getattr(args, "home", None) or os.environ.get("PREFECT_HOME") or PROJECT_DIR / ".prefect").resolve()
    return run_up(home, args.port, sim=args.sim, start_poller=not args.no_poller, shards=shards,
                  database=getattr(args, "database", None))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.stack.up", description=__doc__.splitlines()[0])
    p.add_argument("--sim", action="store_true")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--no-poller", action="store_true")
    p.add_argument("--shards", type=int, help="poller shards (default: the poller.shards setting, 1)")
    p.add_argument("--prefect-file", help="with --setup-only: deploy this file instead of prefect.yaml "
                   "(e.g. infra/prefect.docker.yaml)")
    p.add_argument("--home", help="PREFECT_HOME (default: $PREFECT_HOME, else <project>/.prefect)")
    p.add_argument("--database", help=DATABASE_HELP)
    p.add_argument("--setup-only", action="store_true",
                   help="only pool, deployments, automations and a poller run, on the server at --api-url")
    p.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL") or local_api(4200))
    p.add_argument("--cancel-pollers", nargs="*", metavar="FLOW/DEPLOYMENT",
                   help="only cancel the active runs of these deployments (default: every poller deployment) and wait")
    args = p.parse_args(argv)
    if args.cancel_pollers is not None:
        return cancel_pollers(args.api_url, args.cancel_pollers or None)
    try:
        return cli_up(args)
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
