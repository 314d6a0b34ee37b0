"""Reliability suite: the `soak` marker, and a small tmpfs for the disk-full cases.

Soak-marked cases (minutes long) run only when asked for: ``pytest -m soak`` (what ``make soak``
does) or ``RELIABILITY_SOAK=1``. The marker is registered here so the suite works before
pyproject.toml lists it; with ``-m "not soak"`` in ``addopts`` they are deselected instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import pytest

SOAK_HELP = "soak: long reliability runs (minutes), excluded from the default run; `make soak` runs them"


def pytest_configure(config):
    config.addinivalue_line("markers", SOAK_HELP)


def _soak_requested(config) -> bool:
    if os.environ.get("RELIABILITY_SOAK") == "1":
        return True
    expr = config.getoption("markexpr", "") or ""
    return bool(re.search(r"(?<!not )\bsoak\b", expr))


def pytest_collection_modifyitems(config, items):
    if _soak_requested(config):
        return
    skip = pytest.mark.skip(reason="soak case: run with `pytest -m soak` (make soak) or RELIABILITY_SOAK=1")
    for item in items:
        if "soak" in item.keywords and item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


class Tmpfs:
    """A size-limited tmpfs mounted at ``path`` (root only), or None when mounting is refused."""

    def __init__(self, path: Path, size: str):
        self.path = path
        self.size = size

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)
        self.size = size

    def remount(self, opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(self.path)], check=True, capture_output=True)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def tmpfs_mount(path: Path, size: str = "2m"):
    path.mkdir(parents=True, exist_ok=True)
    if os.environ.get("RELIABILITY_NO_MOUNT") == "1":  # exercise the fallbacks
        yield None
        return
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        r = None
    if r is None or r.returncode != 0:
        yield None
        return
    try:
        yield Tmpfs(path, size)
    finally:
        for _ in range(20):
            u = subprocess.run(["umount", str(path)], capture_output=True, text=True)
            if u.returncode == 0:
                break
            import time

            time.sleep(0.25)
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs under tmp_path (``None`` when mount is not permitted, or with
    RELIABILITY_NO_MOUNT=1: the cases then fall back to an in-process os.write hook)."""
    with tmpfs_mount(tmp_path / "tmpfs", "2m") as fs:
        yield fs
