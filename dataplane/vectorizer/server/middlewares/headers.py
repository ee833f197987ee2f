"""Security headers on every response, and the rate-limit headers when a limit applied."""

from __future__ import annotations

from aiohttp import web

from vectorizer.security.ratelimit import Decision

SECURITY_HEADERS = (  # on every answer, the TLS port's plain-HTTP 400 too
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Server", "vectorizer"),  # not aiohttp's name and version
)
HSTS = ("Strict-Transport-Security", "max-age=31536000")


def add_security_headers(response: web.StreamResponse, tls: bool, rate: Decision | None) -> None:
    headers = response.headers
    for name, value in SECURITY_HEADERS:
        headers.setdefault(name, value)
    if tls:
        headers[HSTS[0]] = HSTS[1]
    if rate is not None:
        headers.update(rate.headers())
