"""The installed `collector` command: the core CLI (collector.cli) plus what needs Prefect.

- ``collector up``: the local Prefect stack (flows/stack/up.py).
- ``collector status``: the files' view of collector.ops, plus the orchestrator's notes on why
  discovery may not be producing snapshots (flows/stack/diagnose.py).
"""

from __future__ import annotations

import sys

from collector.cli.main import build_parser, lazy, run_parsed


def parser():
    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "cmd")  # argparse keeps subparsers here
    sp = sub.add_parser("up", help="bring up the local Prefect stack in the foreground, until Ctrl-C")
    sp.add_argument("--sim", action="store_true", help="point every venue at the local simulator")
    sp.add_argument("--port", type=int, default=4200, help="Prefect server port on 127.0.0.1")
    sp.add_argument("--no-poller", action="store_true", help="do not start a poller run")
    sp.add_argument("--shards", type=int, help="run N poller shards, one deployment and run each "
                    "(default: the poller.shards setting, 1)")
    sp.add_argument("--database", help="the Prefect server's database: postgresql+asyncpg://user:pass@host:5432/db "
                    "(default: PREFECT_SERVER_DATABASE_CONNECTION_URL, else SQLite in .prefect/)")
    sp.set_defaults(func=lazy("flows.stack.up", "cli_up", settings=False))
    status = sub.choices["status"]
    status.add_argument("--prefect-api-url", help="Prefect API to ask why discovery is not producing snapshots "
                        "(default PREFECT_API_URL, else the local `collector up` server)")
    status.set_defaults(func=lazy("flows.stack.diagnose", "cli_status"))
    return p


def main(argv: list[str] | None = None) -> int:
    return run_parsed(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
