"""Minimal keep-alive HTTP/1.1 clients for load generation.

aiohttp's client costs more CPU per request than our server spends answering a search,
and on a 2-core machine the load generator shares the cores with the server; these
clients keep the measuring cheap. They speak only what the benchmark needs: one request
at a time per connection, Content-Length bodies, no TLS, no redirects. ``Connection``
is for asyncio (many at once); ``BlockingConnection`` is a plain socket, for one
sequential client, which needs no event loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

import orjson


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._reader, self._writer, self._host = reader, writer, host
        self._extra = _lines(headers)

    @classmethod
    async def open(
        cls, host: str, port: int, headers: Mapping[str, str] | None = None
    ) -> Connection:
        """``headers``: sent with every request (credentials, say)."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}", headers)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self._writer.write(_head(method, path, self._host, body, self._extra) + body)
        # The status line and headers in one read: a line-by-line read costs the
        # load generator a few microseconds per header, on the cores the server uses.
        head_bytes = await self._reader.readuntil(b"\r\n\r\n")
        status, length = _status_and_length(head_bytes)
        return status, await self._reader.readexactly(length)

    async def json(self, method: str, path: str, body: bytes = b"") -> Any:
        return _decoded(method, path, *await self.request(method, path, body))

    def close(self) -> None:
        self._writer.close()


class BlockingConnection:
    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.create_connection((host, port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host = f"{host}:{port}"
        self._buffer = b""

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self._sock.sendall(_head(method, path, self._host, body) + body)
        buf = self._buffer
        while (end := buf.find(b"\r\n\r\n")) < 0:
            buf += self._recv()
        status, length = _status_and_length(buf[: end + 4])
        total = end + 4 + length
        while len(buf) < total:
            buf += self._recv()
        self._buffer = buf[total:]
        return status, buf[end + 4 : total]

    def json(self, method: str, path: str, body: bytes = b"") -> Any:
        return _decoded(method, path, *self.request(method, path, body))

    def _recv(self) -> bytes:
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self._sock.close()


def _head(method: str, path: str, host: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()


def _lines(headers: Mapping[str, str] | None) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())


def _decoded(method: str, path: str, status: int, raw: bytes) -> Any:
    if status >= 400:
        raise RuntimeError(f"{method} {path}: {status} {raw[:200]!r}")
    return orjson.loads(raw)


def _status_and_length(head: bytes) -> tuple[int, int]:
    """The status and Content-Length of a response head (through the blank line)."""
    status = int(head[9:12])
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return status, int(line[15:])
    return status, 0
