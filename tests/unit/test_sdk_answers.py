"""What the SDK makes of answers: its timeout on a caller's session, and error bodies
whatever their details hold (a stand-in server: the edge of the world for the SDK)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.servers import serving
from vectorizer.client import ClientError, VectorizerClient
from vectorizer.errors import CollectionNotFound, VectorizerError


def answering(status: int, body: Any, delay: float = 0.0) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response(body, status=status, headers={"X-Request-ID": "rid-1"})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    return app


async def test_the_timeout_holds_on_a_session_the_caller_gives() -> None:
    """(It held only on the session the client made itself: a caller's session waited
    out aiohttp.s default of five minutes.)"""
    async with serving(answering(200, {}, delay=3)) as port, aiohttp.ClientSession() as session:
        vz = VectorizerClient(f"http://127.0.0.1:{port}", timeout=0.5, session=session)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await vz.stats()
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": "collection_not_found", "message": "m", "field": "name"}, CollectionNotFound),
        (
            {
                "code": "collection_not_found",
                "message": "m",
                "field": "name",
                "details": {"field": "x", "message": "y"},
            },
            CollectionNotFound,
        ),
        (
            {"code": "client_error", "message": "m", "field": None, "details": {"a": 1}},
            VectorizerError,
        ),
        ({"code": "no_such_code", "message": "m", "field": None}, VectorizerError),
    ],
)
async def test_an_error_body_is_its_error_whatever_its_details(
    error: dict[str, Any], kind: type[VectorizerError]
) -> None:
    """Details named like the error's own arguments, and a code that is the SDK's own
    (``client_error``, for answers that are not errors), raised TypeError instead."""
    body = {"error": error, "request_id": "rid-1"}
    async with serving(answering(404, body)) as port:
        vz = VectorizerClient(f"http://127.0.0.1:{port}")
        with pytest.raises(VectorizerError) as raised:
            await vz.stats()
        await vz.close()
    assert type(raised.value) is kind and not isinstance(raised.value, ClientError)
    assert raised.value.message == "m" and raised.value.field == error["field"]
    assert raised.value.details == error.get("details", {})
    assert raised.value.request_id == "rid-1"


async def test_a_code_the_sdk_does_not_know_is_kept() -> None:
    """(It became the base class's ``internal_error``: a newer server's word was lost.)"""
    body = {"error": {"code": "brand_new", "message": "m", "field": None}, "request_id": "r"}
    async with (
        serving(answering(409, body)) as port,
        VectorizerClient(f"http://127.0.0.1:{port}") as vz,
    ):
        with pytest.raises(VectorizerError) as raised:
            await vz.stats()
    assert type(raised.value) is VectorizerError and raised.value.code == "brand_new"
    assert VectorizerError.code == "internal_error"  # (the class keeps its own)


async def test_a_json_answer_that_is_no_error_body_is_kept_with_the_error() -> None:
    """A failed node's /health (503, its reason) raised a bare "HTTP 503"."""
    answer = {"status": "failed", "reason": "the log could not be written"}
    async with (
        serving(answering(503, answer)) as port,
        VectorizerClient(f"http://127.0.0.1:{port}") as vz,
    ):
        with pytest.raises(ClientError) as raised:
            await vz.health()
    assert raised.value.http_status == 503 and raised.value.details == {"body": answer}
    assert "the log could not be written" in raised.value.message


def test_every_code_maps_to_its_class_whatever_was_imported() -> None:
    """``corrupt_log`` lived in the engine's log module: a program importing only the SDK
    got the base class for it (and ``all_codes`` lacked it)."""
    probe = (
        "import vectorizer.client\n"
        "from vectorizer.errors import all_codes, error_class_for\n"
        "print(error_class_for('corrupt_log').__name__, 'corrupt_log' in all_codes())\n"
        # (the SDK's own: no server sends it; with it, the operator's alert on server
        # errors named it, once the SDK was imported)
        "print(error_class_for('client_error').__name__, 'client_error' in all_codes())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["CorruptLog", "True", "VectorizerError", "False"]
