"""`collector` command line. Each subcommand is a thin shim over a core module."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from collector.errors import ConfigError


def _settings():
    from collector.settings import load_settings

    return load_settings()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_config(args: argparse.Namespace) -> int:
    s = _settings()
    sys.stdout.write(orjson.dumps(s.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from collector.sim.server import main as sim_main

    return sim_main(args)


def cmd_discover(args: argparse.Namespace) -> int:
    from collector.discovery import cli_discover

    s = _settings()
    _setup_logging(s.log_level)
    return cli_discover(s, once=args.once)


def cmd_poll(args: argparse.Namespace) -> int:
    from collector.poller import cli_poll

    s = _settings()
    _setup_logging(s.log_level)
    return cli_poll(s, duration_s=args.duration)


def cmd_run(args: argparse.Namespace) -> int:
    from collector.runner import cli_run

    s = _settings()
    _setup_logging(s.log_level)
    return cli_run(s, sim=args.sim)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="collector", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("config", help="print the effective configuration (secrets masked)")
    sp.set_defaults(func=cmd_config)

    sp = sub.add_parser("sim", help="serve the local venue simulator on 127.0.0.1")
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--markets", type=int, default=50, help="markets per venue")
    sp.add_argument("--latency-ms", type=float, default=0.0)
    sp.add_argument("--jitter-ms", type=float, default=0.0)
    sp.add_argument("--error-rate", type=float, default=0.0, help="fraction of 5xx answers")
    sp.add_argument("--timeout-rate", type=float, default=0.0, help="fraction never answered")
    sp.add_argument("--malformed-rate", type=float, default=0.0)
    sp.add_argument("--html-rate", type=float, default=0.0)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--no-rate-limit", action="store_true", help="disable the 429 limiter")
    sp.add_argument("--churn-s", type=float, default=0.0, help="seconds between market births/deaths")
    sp.add_argument("--epoch", type=float, default=None, help="unix time the catalogue is built around (default: now)")
    sp.add_argument("--tick-s", type=float, default=1.0, help="book clock tick: books may change once per tick")
    sp.add_argument("--change-prob", type=float, default=0.3, help="chance that a book changes in one tick")
    sp.add_argument("--log-size", type=int, default=5000, help="recent requests kept for /_sim/requests")
    sp.set_defaults(func=cmd_sim)

    sp = sub.add_parser("discover", help="run discovery without a Prefect server")
    sp.add_argument("--once", action="store_true", help="one pass, then exit (default: loop)")
    sp.set_defaults(func=cmd_discover)

    sp = sub.add_parser("poll", help="run the poller without a Prefect server")
    sp.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    sp.set_defaults(func=cmd_poll)

    sp = sub.add_parser("run", help="discovery once, then discovery loop + poller, until Ctrl-C")
    sp.add_argument("--sim", action="store_true", help="start and use the local simulator")
    sp.set_defaults(func=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
