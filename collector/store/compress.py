"""zstd compression of a closed JSONL file into ``X.jsonl.zst``, crash-safe."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

import zstandard

from collector.model.errors import WriteError
from collector.store import layout
from collector.store.durable import describe_os_error, fsync_dir_best_effort

__all__ = ["ZSTD_LEVEL", "compress_file"]

ZSTD_LEVEL = 3


def compress_file(path: Path, *, level: int = ZSTD_LEVEL) -> Path:
    """Compress a closed ``X.jsonl`` into ``X.jsonl.zst`` and delete ``X.jsonl``; return the new path.

    Crash-safe: the frame (with content size and checksum) goes to a hidden temp file in the
    same directory, which is fsync'ed and renamed; only then is the source removed. At any
    moment either the source or a complete ``.zst`` (or, after a crash between rename and
    unlink, both) exists. Self-contained so it can run on another thread. Raises
    :class:`WriteError` (source left untouched, temp file removed) on any failure.
    """
    path = Path(path)
    dst = layout.compressed_path(path)
    tmp = layout.compress_tmp_path(path, os.getpid(), secrets.token_hex(3))
    renamed = False
    try:
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "compressed file already exists", str(dst))
        with open(path, "rb") as src, open(tmp, "xb") as out:
            size = os.fstat(src.fileno()).st_size
            cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
            read, _ = cctx.copy_stream(src, out, size=size)
            if read != size:
                raise OSError(errno.EIO, f"read {read} of {size} bytes")
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, dst)
        renamed = True
        fsync_dir_best_effort(dst.parent)
        os.unlink(path)
        fsync_dir_best_effort(dst.parent)
    except (OSError, zstandard.ZstdError) as e:
        with contextlib.suppress(OSError):
            os.unlink(dst if renamed else tmp)  # never leave both copies behind
        raise WriteError(f"compress failed: {describe_os_error(e, 'compress', path)}") from e
    return dst
