"""Following a stream's files as they are written (``tail -f`` over rotation and compression)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.store import layout
from collector.store.files import iter_jsonl_lines


@dataclass
class _Followed:
    offset: int = 0  # bytes of (decompressed) content consumed: always at a line start
    done: bool = False


def _key(p: Path) -> Path:
    """``X.jsonl`` for ``X.jsonl`` and ``X.jsonl.zst``: a file and its compressed self are one."""
    return p.with_name(layout.base_name(p.name))


class Follower:
    """Follows the ``orderbooks`` files of some venues as they are written.

    Watches the two latest ``date=`` partitions of each venue; a new file is read from its
    start, a file present at the start from its end. A followed ``X.jsonl`` that is compressed
    away (rotation with ``compress_closed``) is finished from ``X.jsonl.zst``. Only complete
    lines are returned.
    """

    def __init__(self, data_dir: str | os.PathLike[str], venues: Sequence[str], stream: str = layout.BOOK_STREAM) -> None:
        self.data_dir = Path(data_dir)
        self.venues = list(venues)
        self.stream = stream
        self.files: dict[Path, _Followed] = {}  # keyed by the .jsonl path
        self._started = False

    def _current(self) -> list[Path]:
        out = []
        for v in self.venues:
            parts = layout.date_partitions(layout.stream_dir(self.data_dir, v, self.stream))
            for d in list(parts)[-2:]:
                try:
                    names = os.listdir(parts[d])
                except OSError:
                    continue
                out += [parts[d] / n for n in names if layout.is_jsonl_name(n)]
        return out

    def start(self) -> None:
        """Take the current files as already read (to their last complete line)."""
        for p in self._current():
            key = _key(p)
            if key in self.files:
                continue
            if layout.is_compressed(p.name):
                self.files[key] = _Followed(0, True)
            else:
                self.files[key] = _Followed(_complete_size(p))
        self._started = True

    def poll(self) -> list[bytes]:
        """New complete lines since the last call (in file order, files by name)."""
        if not self._started:
            self.start()
        out: list[bytes] = []
        seen = set()
        for p in sorted(self._current(), key=lambda x: x.name):
            key = _key(p)
            seen.add(key)
            f = self.files.get(key)
            if f is None:
                f = self.files[key] = _Followed()
            if f.done:
                continue
            if layout.is_compressed(p.name):
                if key.exists():
                    continue  # crash during compression: keep following X.jsonl
                out += _lines_after(p, f.offset)
                f.done = True
            else:
                lines, f.offset = _read_new(p, f.offset)
                out += lines
        for key in [k for k in self.files if k not in seen]:
            del self.files[key]  # compacted away or an old partition
        return out


def _complete_size(p: Path) -> int:
    """Size of the file up to (and including) its last newline."""
    try:
        with open(p, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            pos = size
            while pos > 0:
                step = min(1 << 16, pos)
                f.seek(pos - step)
                chunk = f.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    return pos - step + i + 1
                pos -= step
            return 0
    except OSError:
        return 0


def _read_new(p: Path, offset: int) -> tuple[list[bytes], int]:
    try:
        with open(p, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        z = layout.compressed_path(p)
        if z.exists():
            return _lines_after(z, offset), offset
        return [], offset
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    if end <= 0:
        return [], offset
    return [x for x in data[:end].split(b"\n") if x], offset + end


def _lines_after(z: Path, offset: int) -> list[bytes]:
    """Complete lines of a .zst file after ``offset`` bytes of content."""
    out, pos = [], 0
    for line in iter_jsonl_lines(z):
        if pos >= offset:
            out.append(line)
        pos += len(line) + 1
    return out
