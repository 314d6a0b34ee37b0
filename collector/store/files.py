"""Reading stored JSONL files: a partition's files, their complete lines, raw-line pre-filters.

Two line readers, on purpose: :func:`iter_jsonl_lines` reads one file and raises
``FileNotFoundError`` when it is missing (a caller that names a file wants to know);
:func:`file_lines` is for files found by listing a partition, where the writer may compress
(and remove) ``X.jsonl`` between the listing and the open: it then reads ``X.jsonl.zst``, and a
file gone for good reads as empty. Both skip a torn last line and read ``.zst`` the same way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from collector.store import layout

__all__ = ["IID_RE", "TS_RE", "file_lines", "gc_paused", "iter_jsonl_lines", "jsonl_files", "numbered_lines"]

log = logging.getLogger(__name__)

# Pre-filters on raw lines as the writer serializes them (compact JSON), to skip a parse.
IID_RE = re.compile(rb'"instrument_id":"([^"\\]*)"')
TS_RE = re.compile(rb'"ts_ms":(\d{1,19})\b')  # int64 at most; longer is junk, left to the parser


def jsonl_files(part: Path) -> list[Path]:
    """The JSONL files of one partition directory, ``.zst`` preferred over a same-name ``.jsonl``.

    Hidden files (temp files of the writer or of compression) are ignored. Sorted by name, which
    is period start then opening time for the writer's files.
    """
    try:
        names = [n for n in os.listdir(part) if layout.is_jsonl_name(n)]
    except OSError:
        return []
    have = set(names)
    out = [n for n in names if layout.is_compressed(n) or layout.compressed_name(n) not in have]
    return [part / n for n in sorted(out)]


def iter_jsonl_lines(path: Path, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Yield the complete lines of a ``.jsonl`` or ``.jsonl.zst`` file, without their ``\\n``.

    A last line without a trailing newline (torn by a crash, or still being written) is
    skipped, as are empty lines. Lines are not parsed. A truncated ``.zst`` frame is
    treated the same way: its complete lines are yielded and a warning is logged.
    """
    path = Path(path)
    with open(path, "rb") as f:
        chunks = _zst_chunks(f, chunk_size, path) if layout.is_compressed(path.name) else _raw_chunks(f, chunk_size)
        rest = b""
        for chunk in chunks:
            data = rest + chunk if rest else chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line:
                    yield line
        # `rest` is the torn last line (or b""): skipped.


def _raw_chunks(f: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    while chunk := f.read(chunk_size):
        yield chunk


def _zst_chunks(f: BinaryIO, chunk_size: int, path: Path) -> Iterator[bytes]:
    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    in_frame = False
    while raw := f.read(chunk_size):
        while raw:
            try:
                out = obj.decompress(raw)
            except zstandard.ZstdError as e:  # a corrupt frame: keep what was read, skip the rest
                log.warning("%s: corrupt zstd data (%s); the rest of the file is skipped", path, e)
                return
            in_frame = True
            if out:
                yield out
            if obj.eof:  # frame complete; the rest of `raw` starts the next frame
                raw = obj.unused_data
                obj = dctx.decompressobj()
                in_frame = False
            else:
                raw = b""
    if in_frame:
        log.warning("%s: truncated zstd frame; its incomplete tail is skipped", path)


def file_lines(path: Path) -> Iterator[bytes]:
    """:func:`iter_jsonl_lines`, following ``X.jsonl`` to ``X.jsonl.zst`` when the file was
    compressed (and removed) between listing and opening; a file gone for good yields nothing."""
    it = iter_jsonl_lines(path)
    try:
        first = next(it, None)  # opens the file
    except FileNotFoundError:
        z = layout.compressed_path(path)
        if path.name.endswith(".jsonl") and z.exists():
            yield from iter_jsonl_lines(z)
        return
    if first is None:
        return
    yield first
    yield from it


def numbered_lines(files: list[Path]) -> Iterator[tuple[int, bytes]]:
    """(seq, line) of every complete line, seq = file index << 32 | line number."""
    for i, p in enumerate(files):
        for n, line in enumerate(file_lines(p)):
            yield (i << 32) | n, line


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (records hold no cycles).

    Building a list of millions of small dicts otherwise triggers full collections that scan
    every object again and again: loading is ~5x faster with the collector paused.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
