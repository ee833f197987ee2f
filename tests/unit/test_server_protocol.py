"""The connection handler: requests parsed before bytes that are not HTTP are answered.

aiohttp's ``RequestHandler.data_received`` hands a whole chunk to the parser and, when
it raises, queues only the 400: the requests it parsed from the chunk first are lost.
``protocol._Handler`` feeds the chunk in pieces ending where a request head ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import http_exceptions, web
from aiohttp.http_parser import HttpRequestParser

from vectorizer.server import protocol
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import METRICS, STORE
from vectorizer.settings import Settings

GARBAGE = b"\x00\x01NOT HTTP\r\n\r\n"


class Transport(asyncio.Transport):
    """What the handler writes, kept; closed when it closes it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def echo(request: web.BaseRequest) -> web.Response:
    return web.Response(text=f"{request.method} {request.path} {len(await request.read())}")


async def exchange(*chunks: bytes) -> list[tuple[int, str]]:
    """Each chunk received as one ``data_received``; the answers, in order."""
    server = protocol._Server(echo)  # type: ignore[arg-type]
    handler = server()
    transport = Transport()
    handler.connection_made(transport)
    for chunk in chunks:
        handler.data_received(chunk)
        await asyncio.sleep(0)
    for _ in range(100):  # until the 400 has closed the connection
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    handler.connection_lost(None)
    answers = re.findall(
        rb"HTTP/1\.[01] (\d+) [^\r]*\r\n.*?\r\n\r\n([^H{]*)", bytes(transport.written), re.S
    )
    return [(int(status), body.decode()) for status, body in answers]


POST = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
GET = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"


def test_aiohttp_drops_what_it_parsed_before_an_error() -> None:
    """Why the handler cuts chunks: aiohttp's parser, given a request then garbage in
    one call, raises and returns nothing. (If this fails, aiohttp changed: see whether
    ``_Handler.data_received`` is still needed.)"""
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(None, loop, 2**16)
        with pytest.raises(http_exceptions.HttpProcessingError):
            parser.feed_data(GET + GARBAGE)
    finally:
        loop.close()


async def test_requests_before_garbage_in_one_chunk_are_answered_in_order() -> None:
    assert await exchange(POST + GET + GARBAGE) == [
        (200, "POST /a 2"),
        (200, "GET /b 0"),
        (400, ""),
    ]


@pytest.mark.parametrize("cut", [1, 2, 3])
async def test_a_head_ending_across_two_chunks_is_answered_before_the_garbage(cut: int) -> None:
    head, body = POST[:-2], POST[-2:]
    got = await exchange(head[:-cut], head[-cut:] + body + GARBAGE)
    assert got == [(200, "POST /a 2"), (400, "")]


async def test_many_pipelined_requests_are_all_answered() -> None:
    got = await exchange(GET * 50)
    assert got == [(200, "GET /b 0")] * 50


@pytest.mark.parametrize("count", [33, 34, 50, 100])
async def test_more_pipelined_requests_than_aiohttp_queues_then_garbage_are_answered(
    count: int,
) -> None:
    """The parser stops at 32 requests and parsed the rest in one call on resuming, the
    garbage with them: those past the 33rd were dropped, the 400 in the 34th's place."""
    assert await exchange(GET * count + GARBAGE) == [(200, "GET /b 0")] * count + [(400, "")]


async def test_a_body_of_blank_lines_is_fed_in_few_pieces() -> None:
    server = protocol._Server(echo)  # type: ignore[arg-type]
    handler = server()
    handler.connection_made(Transport())
    fed: list[int] = []
    feed = handler._feed  # type: ignore[attr-defined]
    handler._feed = lambda data: (fed.append(len(data)), feed(data))  # type: ignore[attr-defined]
    blank = b"\r\n\r\n" * 10_000
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(blank)
    handler.data_received(head + blank)
    handler.connection_lost(None)
    assert len(fed) == 1 + protocol._MAX_CUTS + 1  # (the head, the cuts, the rest whole)
    assert sum(fed) == len(head) + len(blank)


SEARCH = b'POST /collections/c/search HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n{"vector": [1.0, 0.0]}'


@contextlib.asynccontextmanager
async def fast_connection(
    tmp_path: Path, keepalive_timeout: float = 75.0
) -> AsyncIterator[tuple[web.Application, Any, Transport]]:
    """A node's app with collection ``c`` (2-d), and one connection of its server."""
    app = create_app(Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False))
    await open_node(app)
    await app[STORE].create_collection("c", {"dimension": 2})
    runner = protocol.Runner(app, keepalive_timeout=keepalive_timeout)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, protocol._Server) and server.fast is not None
        handler = server()
        transport = Transport()
        handler.connection_made(transport)
        yield app, handler, transport
        handler.connection_lost(None)
    finally:
        await runner.cleanup()


async def written(transport: Transport) -> bytes:
    for _ in range(100):
        if transport.written:
            break
        await asyncio.sleep(0.001)
    return bytes(transport.written)


async def test_a_fast_answer_keeps_the_connection_alive_like_any_answer(tmp_path: Path) -> None:
    """aiohttp closes a connection idle for ``keepalive_timeout`` after its last answer;
    the fast path's answers count as answers (else a busy connection would be closed
    under its client)."""
    async with fast_connection(tmp_path, keepalive_timeout=0.3) as (app, handler, transport):
        await asyncio.sleep(0.2)
        handler.data_received(SEARCH)
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert app[METRICS].requests.fast_path == 1
        await asyncio.sleep(0.2)  # past the first answer-less timeout, not past the answer's
        assert not transport.closed
        await asyncio.sleep(0.3)
        assert transport.closed


async def test_a_fast_answer_that_never_comes_closes_the_connection(tmp_path: Path) -> None:
    """Its task ended without an answer (here cancelled): the requests held behind it
    would wait for ever, so the connection is closed."""
    async with fast_connection(tmp_path) as (_, handler, transport):
        handler.data_received(SEARCH + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        task = handler._answering
        assert task is not None and len(handler._held) == 1
        task.cancel()
        await asyncio.sleep(0.01)
        assert transport.closed and not transport.written


HEAD, _, BODY = SEARCH.partition(b"\r\n\r\n")
HEAD += b"\r\n\r\n"


async def test_a_body_that_comes_in_a_later_read_is_answered_on_the_fast_path(
    tmp_path: Path,
) -> None:
    """httpx (qdrant-client's) writes a request's head and its body apart: the head
    waits for its body, ``PARK_S`` at most."""
    async with fast_connection(tmp_path) as (app, handler, transport):
        handler.data_received(HEAD)
        await asyncio.sleep(0.02)
        assert handler._parked is not None
        handler.data_received(BODY)
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert app[METRICS].requests.fast_path == 1


async def test_a_body_that_does_not_come_soon_is_aiohttps_to_wait_for(tmp_path: Path) -> None:
    async with fast_connection(tmp_path) as (app, handler, transport):
        handler.data_received(HEAD + BODY[:5])
        await asyncio.sleep(protocol.PARK_S + 0.05)
        assert handler._parked is None and handler._given == 1  # aiohttp's, reading on
        handler.data_received(BODY[5:])
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert app[METRICS].requests.fast_path == 0


async def test_a_large_body_still_to_come_is_aiohttps_at_once(tmp_path: Path) -> None:
    """A body that could fill aiohttp's payload buffer (which pauses reading) does not
    wait: it would wait its whole ``PARK_S`` for bytes that cannot come."""
    body = b'{"vector": [1.0, 0.0]' + b" " * 100_000 + b"}"
    head = HEAD.replace(b"Content-Length: 22", b"Content-Length: %d" % len(body))
    async with fast_connection(tmp_path) as (app, handler, transport):
        handler.data_received(head + body[:1000])
        assert handler._parked is None and handler._given == 1
        handler.data_received(body[1000:])
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert app[METRICS].requests.fast_path == 0


async def test_keepalive_does_not_close_a_connection_waiting_for_a_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "PARK_S", 2.0)
    async with fast_connection(tmp_path, keepalive_timeout=0.3) as (app, handler, transport):
        handler.data_received(SEARCH)
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        transport.written.clear()
        await asyncio.sleep(0.2)
        handler.data_received(HEAD)
        await asyncio.sleep(0.3)  # past the keep-alive timeout, the head waiting
        assert not transport.closed
        handler.data_received(BODY)
        assert (await written(transport)).startswith(b"HTTP/1.1 200 OK\r\n")
        assert app[METRICS].requests.fast_path == 2


def asks_on_each_answer(handler: Any, transport: Transport, times: int) -> None:
    """A client at its quickest: each answer written brings a search (the next loop
    turn: before aiohttp's task, done with its request, resumes), ``times`` times."""
    loop = asyncio.get_running_loop()
    sent = transport.write
    asked = 0

    def write_and_ask(data: Any) -> None:
        nonlocal asked
        sent(data)
        if asked < times:
            asked += 1
            loop.call_soon(handler.data_received, SEARCH)

    transport.write = write_and_ask  # type: ignore[method-assign]


async def test_a_search_asked_before_aiohttp_waits_again_takes_the_fast_path(
    tmp_path: Path,
) -> None:
    """A client that asks as soon as it has aiohttp's answer is quicker than aiohttp's
    task is back to waiting for a request (here: at once, before that task resumes); its
    search is the fast path's all the same, and so are the next ones."""
    async with fast_connection(tmp_path) as (app, handler, transport):
        asks_on_each_answer(handler, transport, times=3)
        handler.data_received(SEARCH.replace(b"Host: x", b"Host: x\r\nX-Path: slow"))
        for _ in range(200):
            if bytes(transport.written).count(b"HTTP/1.1 200 OK") == 4:
                break
            await asyncio.sleep(0.005)
        assert bytes(transport.written).count(b"HTTP/1.1 200 OK") == 4
        assert app[METRICS].requests.fast_path == 3


async def test_a_search_asked_after_a_closing_answer_is_not_answered(tmp_path: Path) -> None:
    """aiohttp closes the connection after an answer that says ``Connection: close``; a
    search the client sent before it saw that is not answered on the fast path either."""
    async with fast_connection(tmp_path) as (app, handler, transport):
        asks_on_each_answer(handler, transport, times=1)
        handler.data_received(SEARCH.replace(b"Host: x", b"Host: x\r\nConnection: close"))
        for _ in range(100):
            if transport.closed:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert transport.closed and bytes(transport.written).count(b"HTTP/1.1 ") == 1
        assert app[METRICS].requests.fast_path == 0


async def test_a_connection_lost_while_a_head_waits_for_its_body(tmp_path: Path) -> None:
    async with fast_connection(tmp_path) as (app, handler, transport):
        handler.data_received(HEAD)
        handler.connection_lost(ConnectionResetError())
        assert handler._parked is None and handler._park_timer is None
        await asyncio.sleep(protocol.PARK_S + 0.05)  # (nothing handed on, nothing raised)
        assert not transport.written and handler._given == 0


@pytest.mark.parametrize("at_once", [False, True], ids=["later", "before-aiohttp-takes-it"])
async def test_a_stop_while_a_head_waits_for_its_body_answers_it(
    tmp_path: Path, at_once: bool
) -> None:
    """The request is aiohttp's from the stop on; its body is read on, even when it
    comes before aiohttp's task has taken the request in hand."""
    async with fast_connection(tmp_path) as (app, handler, transport):
        handler.data_received(HEAD)
        await asyncio.sleep(0.01)  # (aiohttp's task waits for a request, as on a live node)
        assert handler._waiter is not None
        handler.close()  # (as a stop does, first: it ends that wait)
        if at_once:
            handler.data_received(BODY)
        stop = asyncio.create_task(handler.shutdown(5.0))
        await asyncio.sleep(0.02)
        if not at_once:
            handler.data_received(BODY)
        await stop
        assert bytes(transport.written).startswith(b"HTTP/1.1 200 OK\r\n")
