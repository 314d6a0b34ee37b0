"""A real HTTP server on 127.0.0.1 for client tests: answers by (method, path), records every
request, and can misbehave the ways a venue's edge does (stall, hang up, cut a body short).

    with http_stub() as stub:
        stub.route("POST", "/books", Reply.json([...]))
        stub.route("GET", "/book", lambda req: Reply.json(book(req.query["token_id"])))
        stub.route("POST", "/books", STALL)      # no answer before the client's read timeout
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

STALL = "stall"  # answer nothing for STALL_S: the client's read timeout fires
HANG_UP = "hang_up"  # close the connection without a status line
CUT_SHORT = "cut_short"  # headers announce more body than is sent, then close
STALL_S = 3.0


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, **headers: str) -> Reply:
        return cls(status, orjson.dumps(obj), {"Content-Type": "application/json", **headers})

    @classmethod
    def text(cls, text: str, status: int = 200, **headers: str) -> Reply:
        return cls(status, text.encode(), {"Content-Type": "text/plain", **headers})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


Answer = Reply | str | Callable[[Request], "Reply | str"]


class Stub:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Answer] = {}
        self.calls: list[Request] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the venues

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, u.path, dict(urllib.parse.parse_qsl(u.query)),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n) if n else b"")
                stub.calls.append(req)
                answer = stub.routes.get((self.command, u.path), Reply(404, b"no route"))
                if callable(answer):
                    answer = answer(req)
                if answer == STALL:
                    time.sleep(STALL_S)
                    self.close_connection = True
                    return
                if answer == HANG_UP:
                    self.close_connection = True
                    return
                if answer == CUT_SHORT:
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'[{"asset_id"')
                    self.close_connection = True
                    return
                assert isinstance(answer, Reply)
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PATCH = _serve

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def route(self, method: str, path: str, answer: Answer) -> None:
        self.routes[(method, path)] = answer

    def called(self, method: str, path: str) -> list[Request]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def http_stub() -> Iterator[Stub]:
    stub = Stub()
    try:
        yield stub
    finally:
        stub.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
