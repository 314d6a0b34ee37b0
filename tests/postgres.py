"""A throwaway PostgreSQL server for tests and benches: initdb into a temp directory, postgres on
127.0.0.1 and a free port, one database. Real binaries, never a mock; as root the server runs as
the ``postgres`` user (PostgreSQL refuses to run as root).

``missing()`` says why there is none (tests skip with that reason); `.ci/run` installs the
Debian package when it is missing, so CI always has one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60.0


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin (Debian), else the directory of ``initdb`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    w = shutil.which("initdb")
    return Path(w).parent if w else None


def _as_user() -> list[str]:
    """The prefix that runs a command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def missing() -> str | None:
    if bin_dir() is None:
        return "PostgreSQL is not installed (no initdb; `apt-get install postgresql`, which .ci/run does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without `runuser`"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    port: int
    root: Path
    database: str

    @property
    def url(self) -> str:
        """The Prefect connection URL (``PREFECT_SERVER_DATABASE_CONNECTION_URL``)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def query(self, sql: str) -> list[tuple]:
        """Rows of one statement (asyncpg, the driver Prefect uses)."""
        import asyncio

        import asyncpg

        async def go() -> list[tuple]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(go())


@contextlib.contextmanager
def postgres(database: str = "prefect") -> Iterator[Postgres]:
    """A running server with ``database`` created; stopped (fast shutdown) and removed after."""
    bins = bin_dir()
    assert bins is not None, missing()
    as_user = _as_user()
    # not under pytest's tmp_path: that is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="collector-pg-"))
    os.chmod(root, 0o755)
    if as_user:
        shutil.chown(root, "postgres")
    data = root / "data"
    port = _free_port()
    subprocess.run([*as_user, str(bins / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--locale=C.UTF-8"], check=True, capture_output=True, timeout=120)
    log = open(root / "postgres.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*as_user, str(bins / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(root)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            process_group=0)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while subprocess.run([str(bins / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{(root / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.2)
        subprocess.run([str(bins / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                       check=True, capture_output=True, timeout=60)
        yield Postgres(port, root, database)
    finally:
        subprocess.run([*as_user, str(bins / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                       capture_output=True, timeout=90)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
