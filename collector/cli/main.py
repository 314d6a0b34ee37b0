"""`collector` command line. Each subcommand is a thin shim over a core module.

This is the core CLI (``python -m collector``): no Prefect. The installed ``collector`` command is
``flows.cli``, which adds the commands that need Prefect (``up``) on top of this parser.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from collector.model.errors import ConfigError


def _settings():
    from collector.config.settings import load_settings

    return load_settings()


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "urllib3"):  # one line per request is noise at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_config(args: argparse.Namespace) -> int:
    s = _settings()
    # stdlib json: any int a setting accepts prints (orjson stops at 64 bits)
    sys.stdout.write(json.dumps(s.model_dump(mode="json"), indent=2) + "\n")
    return 0


def _change_mix(text: str) -> str:
    """``--change-mix`` checked at parse time (the sim parses it again when it builds)."""
    from collector.sim.clock import parse_change_mix

    try:
        parse_change_mix(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def cmd_sim(args: argparse.Namespace) -> int:
    from collector.sim.server import main as sim_main

    return sim_main(args)


def cmd_discover(args: argparse.Namespace) -> int:
    from collector.discovery.run import cli_discover

    s = _settings()
    _setup_logging(s.log_level)
    return cli_discover(s, once=args.once)


def cmd_poll(args: argparse.Namespace) -> int:
    from collector.poller.loop import cli_poll

    s = _settings()
    _setup_logging(s.log_level)
    return cli_poll(s, duration_s=args.duration)


def cmd_run(args: argparse.Namespace) -> int:
    from collector.cli.local import cli_run

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
    sp.add_argument("--bad-hash-rate", type=float, default=0.0, help="fraction of Polymarket books served with a stale hash")
    sp.add_argument("--page-cap", type=int, default=0, help="discovery pages hold at most N items, whatever limit asks (0 = off)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--no-rate-limit", action="store_true", help="disable the 429 limiter")
    sp.add_argument("--churn-s", type=float, default=0.0, help="seconds between market births/deaths")
    sp.add_argument("--epoch", type=float, default=None, help="unix time the catalogue is built around (default: now)")
    sp.add_argument("--tick-s", type=float, default=1.0, help="book clock tick: books may change once per tick")
    sp.add_argument("--change-prob", type=float, default=0.3, help="chance that a book changes in one tick")
    sp.add_argument("--change-mix", type=_change_mix, default=None, metavar="SHARE:PROB,...",
                    help='per-book change chances instead, e.g. "0.05:1.0,0.95:0.02" (5 %% busy books, 95 %% quiet)')
    sp.add_argument("--log-size", type=int, default=5000, help="recent requests kept for /_sim/requests")
    sp.add_argument("--trade-tape", type=int, default=2000, help="trades kept per book (REST trade endpoints, /_sim/trades)")
    sp.add_argument("--trade-budget", type=int, default=500_000,
                    help="trades kept over all books: with many books each keeps budget/books (at least 50)")
    # Feed faults (both venues' feeds; per venue through POST /_sim/control, docs/simulator.md).
    sp.add_argument("--ws-drop-rate", type=float, default=0.0, help="fraction of feed change messages not sent")
    sp.add_argument("--ws-dup-rate", type=float, default=0.0, help="fraction of feed change messages sent twice")
    sp.add_argument("--ws-reorder-rate", type=float, default=0.0, help="fraction of feed change messages sent after the next one")
    sp.add_argument("--ws-bad-hash-rate", type=float, default=0.0, help="fraction of price_change entries with a wrong hash")
    sp.add_argument("--ws-disconnect-every-s", type=float, default=0.0, help="drop every feed connection this often (0 = never)")
    sp.add_argument("--ws-send-queue-max", type=int, default=20_000, help="messages a feed client may leave unread before it is dropped")
    sp.add_argument("--ws-snapshot-on-subscribe", action="store_true", help="Limitless sends a book right after subscribe_market_prices")
    sp.add_argument("--sio-ping-interval", type=float, default=25.0, help="Engine.IO heartbeat interval of the Limitless feed, s")
    sp.add_argument("--sio-ping-timeout", type=float, default=20.0, help="Engine.IO heartbeat timeout of the Limitless feed, s")
    sp.add_argument("--feed-flush-ms", type=float, default=5.0, help="feed changes due within this go out in one write (latency bound)")
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

    # Operator views over the data (collector/ops: one module per view).
    sp = sub.add_parser("status", help="per venue: active instruments, book age, cooldowns, files, disk")
    sp.set_defaults(func=lazy("collector.ops.status", "cli_status"))
    sp = sub.add_parser("tail", help="follow books as they are written")
    sp.add_argument("--venue", action="append", help="only this venue (repeatable)")
    sp.add_argument("--instrument", action="append", help="only this instrument id or poll key (repeatable)")
    sp.add_argument("--raw", action="store_true", help="print JSON lines instead of a table")
    sp.add_argument("--lines", type=int, default=0, help="print the last N records first")
    sp.set_defaults(func=lazy("collector.ops.tail", "cli_tail"))
    sp = sub.add_parser("stats", help="summary of poll_stats over a period")
    sp.add_argument("--venue", action="append")
    sp.add_argument("--since", help="ISO time or relative like 1h, 30m (default 1h)", default="1h")
    sp.add_argument("--until", help="ISO time (default now)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=lazy("collector.ops.stats", "cli_stats"))
    sp = sub.add_parser("coverage", help="per instrument: seconds active vs seconds with a fresh book")
    sp.add_argument("--date", required=True, help="UTC date YYYY-MM-DD")
    sp.add_argument("--venue", action="append")
    sp.add_argument("--fresh-s", type=float, default=None, help="a book is fresh this long (default 2x interval)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=lazy("collector.ops.coverage", "cli_coverage"))
    sp = sub.add_parser("compact", help="turn one day of JSONL into verified Parquet")
    sp.add_argument("--date", required=True, help="UTC date YYYY-MM-DD")
    sp.add_argument("--venue", action="append")
    sp.add_argument("--keep-jsonl", action="store_true", default=None, help="keep the JSONL after verification")
    sp.set_defaults(func=lazy("collector.store.compact", "cli_compact"))
    sp = sub.add_parser("retention", help="remove (or archive) old days' order-book JSONL whose Parquet is verified")
    sp.add_argument("--days", type=int, default=None, help="days older than N (default: retention.jsonl_days)")
    sp.add_argument("--venue", action="append")
    sp.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    sp.set_defaults(func=lazy("collector.ops.retention", "cli_retention"))
    return p


def lazy(module: str, func: str, settings: bool = True):
    """A subcommand whose code is imported only when it runs (keeps `collector --help` fast)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        fn = getattr(importlib.import_module(module), func)
        if not settings:
            return fn(args)
        s = _settings()
        _setup_logging(s.log_level)
        return fn(s, args)

    return run


def run_parsed(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: a bad configuration exits 2 with its message, Ctrl-C 130."""
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_parsed(build_parser().parse_args(argv))
