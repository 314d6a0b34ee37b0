"""Child processes and signals of the local stack: own process groups, stop in order, the Prefect CLI."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.config.settings import Settings, load_settings

PROJECT_DIR = Path(__file__).resolve().parents[2]  # the repository: flows/stack/ is two levels down


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


def tail(path: Path | None, n: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


class Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGHUP (SIGINT raises KeyboardInterrupt)."""


@contextlib.contextmanager
def signals_raise_stop() -> Iterator[None]:
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


def process_alive(run: dict[str, Any]) -> bool:
    """Whether the process of a flow run (its ``infrastructure_pid``, "host:pid") exists here."""
    import psutil

    pid = str(run.get("infrastructure_pid") or "").rsplit(":", 1)[-1]
    return pid.isdigit() and psutil.pid_exists(int(pid))
