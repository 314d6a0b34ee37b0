"""The hot path's HTTP: one urllib3 pool manager per fetch thread, for book requests.

httpx costs ~2.5x the CPU of urllib3 per request on a 500-book ``/books`` reply (1.7-2.6 ms vs
0.7-1.0 ms measured on the simulator's 0.7 MB replies), most of it in its pure-Python layers,
and it holds the GIL the loop thread wants meanwhile. Discovery keeps httpx (a page a second).

Same behaviour as the httpx clients it replaces: environment proxies (``HTTP(S)_PROXY``,
``NO_PROXY``) honoured, compressed replies asked for and decoded, no redirects followed, no
retries (the lane decides), every failure a typed error (collector.model.errors).
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
import urllib.request
from typing import Any

import urllib3

from collector.model import errors
from collector.model.clock import now_ms
from collector.venues.http import ThreadLocal, raise_for_status

__all__ = ["PooledHTTP"]


class _Managers:
    """A thread's pool managers: one direct, one per proxy (hosts in NO_PROXY go direct)."""

    def __init__(self, kw: dict[str, Any]) -> None:
        self._kw = kw
        self.direct = urllib3.PoolManager(**kw)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._route: dict[tuple[str, str], urllib3.PoolManager] = {}

    def for_url(self, url: str) -> urllib3.PoolManager:
        u = urllib.parse.urlsplit(url)
        key = (u.scheme, u.netloc)
        pm = self._route.get(key)
        if pm is None:
            proxy = urllib.request.getproxies().get(u.scheme)
            if proxy and not urllib.request.proxy_bypass(u.hostname or ""):
                pm = self._proxied.get(proxy)
                if pm is None:
                    pm = self._proxied[proxy] = urllib3.ProxyManager(proxy, **self._kw)
            else:
                pm = self.direct
            self._route[key] = pm
        return pm

    def close(self) -> None:
        self.direct.clear()
        for pm in self._proxied.values():
            pm.clear()


class PooledHTTP:
    """``request()`` -> (body, ts_ms on arrival, latency ms), from any thread."""

    def __init__(self, venue: str, *, user_agent: str, connect_s: float, read_s: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.venue = venue
        self._headers = {"User-Agent": user_agent, "Accept": "application/json",
                         "Accept-Encoding": "gzip, deflate"}
        self._post_headers = {**self._headers, "Content-Type": "application/json"}
        kw: dict[str, Any] = {"num_pools": 8, "maxsize": 1, "retries": False,
                              "timeout": urllib3.Timeout(connect=connect_s, read=read_s)}
        if ssl_context is not None:
            kw["ssl_context"] = ssl_context
        self._managers = ThreadLocal(lambda: _Managers(kw))

    def request(self, method: str, url: str, *, body: bytes | None = None,
                params: dict[str, str] | None = None) -> tuple[bytes, int, float]:
        if params:
            url = f"{url}?{urllib.parse.urlencode(params)}"
        pm = self._managers.get().for_url(url)
        t0 = time.monotonic()
        try:
            r = pm.request(method, url, body=body, headers=self._post_headers if body is not None else self._headers,
                           redirect=False, retries=False, preload_content=True, decode_content=True)
        except urllib3.exceptions.NewConnectionError as e:  # refused, no route, DNS (a ConnectTimeoutError subclass)
            raise errors.TransportError(f"{method} {url}: {type(e).__name__}: {e}", venue=self.venue) from e
        except urllib3.exceptions.TimeoutError as e:  # connect or read
            raise errors.Timeout(f"{method} {url}: {type(e).__name__}", venue=self.venue) from e
        except urllib3.exceptions.DecodeError as e:
            raise errors.BadPayload(f"{method} {url}: undecodable body: {e}", venue=self.venue) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:  # refused, reset, TLS, protocol
            raise errors.TransportError(f"{method} {url}: {type(e).__name__}: {e}", venue=self.venue) from e
        ts = now_ms()
        latency = (time.monotonic() - t0) * 1000.0
        content = r.data
        raise_for_status(r.status, r.headers, content, self.venue)
        return content, ts, latency

    def close(self) -> None:
        """Close every thread's connections; later requests open new ones."""
        self._managers.close_all()
