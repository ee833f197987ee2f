"""A minimal keep-alive HTTP/1.1 client for load generation.

aiohttp's client costs more CPU per request than our server spends answering a search,
and on a 2-core machine the load generator shares the cores with the server; this
client keeps the measuring cheap. It speaks only what the benchmark needs: one request
at a time per connection, Content-Length bodies, no TLS, no redirects.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self._writer.write(head + body)
        # The status line and headers in one read: a line-by-line read costs the
        # load generator a few microseconds per header, on the cores the server uses.
        head_bytes = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head_bytes[9:12])
        length = 0
        for line in head_bytes.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
                break
        return status, await self._reader.readexactly(length)

    async def json(self, method: str, path: str, body: bytes = b"") -> Any:
        status, raw = await self.request(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {raw[:200]!r}")
        return orjson.loads(raw)

    def close(self) -> None:
        self._writer.close()
