"""A fault-injecting TCP proxy on 127.0.0.1 for partition and corruption tests.

``cut()`` stops moving bytes (both ways, for open and new connections) without closing
anything, like a network partition: data waits in socket buffers, peers see silence.
``heal()`` resumes. ``throttle(rate)`` slows the link. ``corrupt_once(at)`` flips one byte at offset ``at`` of the next
connection's upstream-to-client stream.

The proxy's upstream sockets keep a small fixed receive buffer: on loopback the kernel
would otherwise let the upstream push megabytes into buffers at once, and a throttled
transfer would look finished to the sender long before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

UPSTREAM_RECEIVE_BUFFER = 1 << 16


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._corrupt_at: int | None = None
        self.corrupted = 0
        self.rate: float | None = None  # bytes/s per direction, None = unlimited

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def throttle(self, bytes_per_s: float | None) -> None:
        """Slow every stream down to about ``bytes_per_s`` (a slow link)."""
        self.rate = bytes_per_s

    def corrupt_once(self, at: int) -> None:
        self._corrupt_at = at

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RECEIVE_BUFFER)
        up.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(up, ("127.0.0.1", self.target_port))
            up_reader, up_writer = await asyncio.open_connection(sock=up)
        except OSError:
            up.close()
            writer.close()
            return
        corrupt_at, self._corrupt_at = self._corrupt_at, None
        self._writers |= {writer, up_writer}
        for coro in (
            self._pump(reader, up_writer, None),
            self._pump(up_reader, writer, corrupt_at),
        ):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, corrupt_at: int | None
    ) -> None:
        offset = 0
        try:
            while True:
                await self._open.wait()
                data = await src.read(65536)
                if not data:
                    break
                if self.rate:
                    await asyncio.sleep(len(data) / self.rate)
                await self._open.wait()  # bytes read just before a cut wait for the heal
                if corrupt_at is not None and offset <= corrupt_at < offset + len(data):
                    buf = bytearray(data)
                    buf[corrupt_at - offset] ^= 0x5A
                    data = bytes(buf)
                    self.corrupted += 1
                offset += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()
            self._writers.discard(dst)
