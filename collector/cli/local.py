"""`collector run`: discovery once, then a discovery loop beside the poller, until Ctrl-C.

This is the no-orchestrator way to run everything in one foreground process (the Prefect stack
is `collector up`). With ``--sim`` it first starts the local venue simulator and points every
venue URL at it, so a dry run needs no network.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack

from collector.config.settings import Settings, load_settings
from collector.discovery.run import run_discovery
from collector.poller.loop import Poller

log = logging.getLogger(__name__)


def _discovery_loop(settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.discovery.interval_s):
        try:
            for r in run_discovery(settings):
                if not r.ok:
                    log.warning("discovery %s failed: %s", r.venue, r.error)
        except Exception:  # the loop must outlive any single discovery pass
            log.exception("discovery pass crashed")


def cli_run(settings: Settings, sim: bool = False) -> int:
    with ExitStack() as stack:
        if sim:
            from collector.sim.testing import all_venues_env, run_sim

            handle = stack.enter_context(run_sim("--markets", "200", "--churn-s", "30"))
            os.environ.update(handle.env)
            os.environ.update(all_venues_env(settings))
            os.environ.setdefault("COLLECTOR_DATA_DIR", str(settings.data_dir / "sim"))
            settings = load_settings()
            print(f"simulator at {handle.base}; data in {settings.data_dir}", flush=True)
        for r in run_discovery(settings):
            print(
                f"discovery {r.venue}: ok={r.ok} instruments={r.instruments} added={r.added} "
                f"removed={r.removed} pages={r.pages} error={r.error or '-'}",
                flush=True,
            )
        stop = threading.Event()
        poller = Poller(settings)

        def _term(signum, frame):
            stop.set()
            poller.stop()

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        t = threading.Thread(target=_discovery_loop, args=(settings, stop), name="discovery", daemon=True)
        t.start()
        print(f"polling {', '.join(poller.lanes)} into {settings.data_dir} (Ctrl-C to stop)", flush=True)
        try:
            poller.run()
        finally:
            stop.set()
    return 0
