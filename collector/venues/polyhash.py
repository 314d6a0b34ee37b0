"""Polymarket book hash check (runs on the fetch worker threads, never on the loop thread).

The venue's ``hash`` is the SHA-1 of the book body as it serves it, with ``hash`` set to ``""``:
compact JSON (separators ``,`` and ``:``), the venue's key order, levels in the venue's order
(bids ascending, asks descending), values as sent (see shared/real-payloads/SOURCES.md,
"Polymarket book hash"). So it is recomputed from the parsed body *before* any re-sorting.

Fast path: ``orjson.dumps`` of the parsed dict. Python dicts keep the key order of the text and
orjson writes compact JSON without escaping non-ASCII, so for strings, bools, null and integers
this gives back the served bytes exactly. Only a JSON *float* loses its text in parsing
(``0.50`` -> ``0.5``); the venue sends none, but when a book with numbers fails the fast path,
the check is redone over the raw bytes re-parsed with every number kept as its original text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import orjson

_sha1 = hashlib.sha1
_dumps = orjson.dumps


@dataclass(slots=True)
class CheckedBook:
    """A raw book plus its hash verdict, handed from the fetch thread to ``normalize``.

    ``hash_ok``: True = the venue's hash reproduces, False = it does not (the book is kept and
    flagged), None = nothing to check (no hash sent) or the check is switched off.
    """

    body: dict[str, Any]
    hash_ok: bool | None


def sent_hash(body: dict[str, Any]) -> str | None:
    """The venue's hash when it sent a usable one (a non-empty string), else None."""
    h = body.get("hash")
    return h if type(h) is str and h else None


def book_hash(body: dict[str, Any]) -> str:
    """SHA-1 hex of ``body`` serialized compactly in its own key order with ``hash`` = ""."""
    blank = {**body, "hash": ""}  # same key position: the key already exists in body
    return _sha1(_dumps(blank)).hexdigest()


def check(body: dict[str, Any], exact: "ExactReply | None" = None, index: int | None = None) -> bool | None:
    """Verdict for one parsed book. ``exact`` is the reply it was parsed from (``index``: its
    position when the reply is an array), used only to redo a failed check with exact numbers."""
    want = sent_hash(body)
    if want is None:
        return None
    try:
        if book_hash(body) == want:
            return True
        if exact is not None and _has_number(body):
            item = exact.item(index)
            if isinstance(item, dict):
                return book_hash(item) == want
    except TypeError:  # orjson.JSONEncodeError: not JSON-serializable, so not the venue's body
        pass
    return False


def _has_number(v: Any) -> bool:
    t = type(v)
    if t is int or t is float:
        return True
    if t is dict:
        return any(_has_number(x) for x in v.values())
    if t is list:
        return any(_has_number(x) for x in v)
    return False


class ExactReply:
    """A reply's raw bytes, re-parsed (once, on first use) with every number as an
    orjson.Fragment of its original text, which orjson.dumps writes back verbatim."""

    __slots__ = ("raw", "_doc", "_parsed")

    def __init__(self, raw: bytes):
        self.raw = raw
        self._doc: Any = None
        self._parsed = False

    def item(self, index: int | None) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._doc = json.loads(self.raw, parse_float=orjson.Fragment, parse_int=orjson.Fragment)
            except ValueError:
                self._doc = None
        doc = self._doc
        if index is None:
            return doc
        return doc[index] if isinstance(doc, list) and 0 <= index < len(doc) else None
