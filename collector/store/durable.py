"""Durability primitives: fsync of files and directories, atomic replace, stale temp files.

Semantics (they differ on purpose):

* :func:`fsync_dir` makes a create / rename / unlink inside a directory durable and raises
  ``OSError``, except on file systems that cannot fsync a directory (EINVAL / ENOTSUP, some
  network mounts): the rename itself has happened. For atomic publishes (snapshot, Parquet).
* :func:`fsync_dir_best_effort` never raises: the rotating writer and compression of closed
  files must not fail because a directory entry could not be synced.
* :func:`fsync_file` fsyncs a closed file by path and raises ``OSError``.
* :func:`atomic_write` / :func:`replace_durably`: readers see the old or the new file, never a
  partial one, even when the writer is killed; temp files (:func:`collector.store.layout.tmp_path`)
  left by a killed writer are removed by :func:`clean_stale_tmp`.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from pathlib import Path

from collector.store import layout

__all__ = [
    "STALE_TMP_S",
    "atomic_write",
    "clean_stale_tmp",
    "describe_os_error",
    "fsync_dir",
    "fsync_dir_best_effort",
    "fsync_file",
    "new_tmp_path",
    "replace_durably",
]

# A temp file older than this is stale even when its writer pid is (again) alive.
STALE_TMP_S = 3600.0


def describe_os_error(exc: BaseException, op: str, where: object) -> str:
    """``OSError ENOSPC: No space left on device (write /data/...)``."""
    if isinstance(exc, OSError) and exc.errno:
        code = errno.errorcode.get(exc.errno, str(exc.errno))
        text = f"{type(exc).__name__} {code}: {exc.strerror or exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({op} {where})"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename / create inside it is durable.

    File systems that cannot fsync a directory (EINVAL / ENOTSUP, some network mounts) are
    tolerated: the rename itself has already happened.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def fsync_dir_best_effort(path: Path) -> None:
    """Best effort: make a directory entry (new file, rename, unlink) durable. Never raises."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a (closed) file by path; raises OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_tmp_path(final: Path) -> Path:
    """A fresh temp name for an atomic replace of ``final`` (found by :func:`clean_stale_tmp`)."""
    return layout.tmp_path(final, os.getpid(), secrets.token_hex(6))


def replace_durably(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it over ``final`` and fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def clean_stale_tmp(path: Path, *, older_than_s: float = STALE_TMP_S) -> int:
    """Remove temp files of ``path`` left by dead writers (or older than ``older_than_s``).

    Temp names are ``.<name>.tmp.<pid>.<random>``. A file of a live process other than us is
    kept unless it is older than ``older_than_s`` (that process may be writing right now).
    Returns how many files were removed. Never raises.
    """
    prefix = layout.tmp_prefix(path)
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    now = time.time()
    me = os.getpid()
    for e in entries:
        if not e.name.startswith(prefix):
            continue
        try:
            pid = int(e.name[len(prefix) :].split(".", 1)[0])
        except ValueError:
            pid = -1
        try:
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        dead = pid <= 0 or (pid != me and not _pid_alive(pid))
        if dead or age > older_than_s:
            try:
                os.unlink(e.path)
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Atomically replace ``path`` with ``data``: unique temp file in the same directory, write,
    fsync, ``os.replace``, fsync of the directory. Creates the directory when needed.
    ``durable=False`` skips both fsyncs: still atomic for readers and across a killed process,
    not across a power cut (for state rewritten often from a hot loop).

    Raises OSError on a write failure; the previous file is then left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(path)
    tmp = new_tmp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)
