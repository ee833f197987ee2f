"""The SDK follows no redirect: its credentials go to the URL it was given, nowhere else.

aiohttp drops ``Authorization`` when a redirect leaves the origin, but sends every other
header on, ``X-API-Key`` included, to whatever host and scheme the redirect names.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp import web

from tests.servers import Pki, serving
from vectorizer.client import ClientError, VectorizerClient

KEY = "vz_0123456789ab_" + "s" * 43
CREDENTIALS = ("x-api-key", "authorization")


def redirecting(to: str, status: int) -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": to + request.path})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", redirect)
    return app


def collecting(seen: list[dict[str, str]]) -> web.Application:
    """Another origin, which records the credentials it is sent."""

    async def collect(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items() if k.lower() in CREDENTIALS})
        return web.json_response({"id": "key:x", "key": {"id": "x"}, "secret": "x"})

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", collect)
    return app


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_origin_gets_no_credentials(status: int) -> None:
    seen: list[dict[str, str]] = []
    async with serving(collecting(seen)) as other:
        target = f"http://127.0.0.1:{other}"
        async with serving(redirecting(target, status)) as port:
            for credentials in ({"api_key": KEY}, {"token": "header.payload.sig"}):
                url = f"http://127.0.0.1:{port}"
                async with VectorizerClient(url, **credentials) as vz:  # type: ignore[arg-type]
                    with pytest.raises(ClientError) as err:
                        await vz.create_key("k", "viewer")
                assert err.value.http_status == status
                assert err.value.details["location"] == target + "/auth/keys"
                assert "not followed" in err.value.message
    assert seen == []


async def test_an_https_node_never_sends_its_key_over_http(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("node", ips=["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[dict[str, str]] = []
    async with serving(collecting(seen)) as plain:
        # The same host, downgraded to plain HTTP on another port.
        target = f"http://127.0.0.1:{plain}"
        async with serving(redirecting(target, 307), context) as port:
            url = f"https://127.0.0.1:{port}"
            async with VectorizerClient(url, api_key=KEY, ca_file=str(pki.ca())) as vz:
                with pytest.raises(ClientError) as err:
                    await vz.whoami()
    assert err.value.http_status == 307 and seen == []
