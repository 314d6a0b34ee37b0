"""Canned simulator replies: the ``Reply`` value and the venues' error bodies (429, 503,
Cloudflare HTML pages) as the real services send them."""

from __future__ import annotations

from typing import Any

import orjson

CF_502 = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html lang="en-US">
<head><title>{host} | 502: Bad gateway</title>
<meta charset="UTF-8" /><meta name="robots" content="noindex, nofollow" /></head>
<body><div id="cf-wrapper"><div id="cf-error-details" class="p-0">
<header><h1><span class="inline-block">Bad gateway</span> <span class="code-label">Error code 502</span></h1>
<div>Visit <a href="https://www.cloudflare.com/5xx-error-landing/" target="_blank">cloudflare.com</a> for more information.</div>
</header>
<div class="cf-error-footer"><p>Cloudflare Ray ID: <strong>{ray}</strong> &bull; Performance &amp; security by Cloudflare</p></div>
</div></div></body></html>
"""

CF_403 = """<!DOCTYPE html>
<html lang="en-US">
<head><title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" /><meta name="robots" content="noindex, nofollow" /></head>
<body><div id="cf-wrapper"><div id="cf-error-details" class="cf-error-details-wrapper">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline">You are unable to access {host}</h2>
<p>This website is using a security service to protect itself from online attacks.</p>
<div class="cf-error-footer"><p>Cloudflare Ray ID: <strong>{ray}</strong> &bull; Performance &amp; security by Cloudflare</p></div>
</div></div></body></html>
"""

HOSTS = {"gamma": "gamma-api.polymarket.com", "clob": "clob.polymarket.com", "data": "data-api.polymarket.com",
         "limitless": "api.limitless.exchange", "kalshi": "external-api.kalshi.com"}


class Reply:
    """A canned reply: status, body bytes, content type, extra headers."""

    __slots__ = ("status", "body", "ctype", "headers")

    def __init__(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers


def json_reply(status: int, obj: Any, headers: dict | None = None) -> Reply:
    return Reply(status, orjson.dumps(obj), "application/json", headers)


def too_many(venue: str, headers: dict | None) -> Reply:
    if venue == "kalshi":  # never a Retry-After (nor X-RateLimit-*) header
        return json_reply(429, {"error": {"code": "too_many_requests", "message": "too many requests",
                                          "service": "exchange"}})
    if venue == "limitless":
        return json_reply(429, {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}, headers)
    return json_reply(429, {"error": "Too Many Requests"}, headers)


def down_reply(venue: str) -> Reply:
    if venue == "kalshi":
        return json_reply(503, {"error": {"code": "service_unavailable", "message": "service unavailable",
                                          "service": "exchange"}})
    if venue == "limitless":
        return json_reply(503, {"statusCode": 503, "message": "Service Unavailable"})
    return json_reply(503, {"error": "Service Unavailable"})
