"""Replication with authentication on: the replication identity, key sync, credential rotation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web

from tests.integration.test_replication import FAST, eventually
from tests.servers import ServerProcess, serving
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import NotPrimary, Unauthenticated

ADMIN = "replication-test-admin-key-0123"
KEY = "replication-identity-key-0123456789"


def audit(srv: ServerProcess) -> list[dict[str, Any]]:
    path = srv.data_dir / "audit" / "audit.jsonl"
    return [orjson.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_replica_follows_with_its_key_and_keys_follow_the_primary(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    key_file = tmp_path / "replication.key"
    key_file.write_text(KEY)
    auth = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
    primary = server_factory(
        data_dir=tmp_path / "p",
        args=[*FAST, *auth, "--replication-key-file", str(key_file), "--node-id", "p"],
    ).start()
    replica = server_factory(
        data_dir=tmp_path / "r",
        args=[
            *FAST,
            *auth,
            "--replication-key-file",
            str(key_file),
            "--role",
            "replica",
            "--primary-url",
            primary.url,
            "--node-id",
            "r",
        ],
    ).start()
    async with (
        VectorizerClient(primary.url, api_key=ADMIN) as vp,
        VectorizerClient(replica.url, api_key=ADMIN) as vr,
    ):
        await vp.create_collection("c", 4)
        await vp.upsert("c", [Point(i, [1.0, float(i), 0, 0]) for i in range(10)])
        record, editor = await vp.create_key("writer", "editor")

        async def synced() -> bool:
            same = (await vr.replication_status())["sequence"] == 2
            return same and [k["id"] for k in await vr.list_keys()] == [record["id"]]

        await eventually(synced)
        async with VectorizerClient(replica.url, api_key=editor) as ve:
            assert (await ve.whoami())["role"] == "editor"
            assert await ve.count("c") == 10
            with pytest.raises(NotPrimary):  # writes, keys included, go to the primary
                await ve.upsert("c", [Point(99, [1.0, 0, 0, 0])])
        with pytest.raises(NotPrimary):
            await vr.create_key("sneaky", "admin")

        # Revoked on the primary: refused on the replica too, shortly after.
        await vp.revoke_key(record["id"])

        async def revoked() -> bool:
            async with VectorizerClient(replica.url, api_key=editor) as ve:
                try:
                    await ve.whoami()
                except Unauthenticated:
                    return True
            return False

        await eventually(revoked)
        line = next(x for x in audit(primary) if x.get("event") == "stream_opened")
        assert line["principal"] == "replication" and line["role"] == "replication"


async def test_a_replica_with_a_wrong_key_is_refused_until_its_secret_is_fixed(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    (tmp_path / "good.key").write_text(KEY)
    wrong = tmp_path / "replica.key"
    wrong.write_text("not-the-replication-key-at-all")
    auth = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
    primary = server_factory(
        data_dir=tmp_path / "p",
        args=[*FAST, *auth, "--replication-key-file", str(tmp_path / "good.key")],
    ).start()
    replica = server_factory(
        data_dir=tmp_path / "r",
        args=[
            *FAST,
            *auth,
            "--replication-key-file",
            str(wrong),
            "--role",
            "replica",
            "--primary-url",
            primary.url,
        ],
    ).start()
    async with (
        VectorizerClient(primary.url, api_key=ADMIN) as vp,
        VectorizerClient(replica.url, api_key=ADMIN) as vr,
    ):
        await vp.create_collection("c", 4)

        async def refused() -> dict[str, Any] | None:
            lines = [
                x
                for x in audit(primary)
                if x.get("route") == "/replication/stream" and x.get("status") == 401
            ]
            return lines[0] if lines else None

        line = await eventually(refused)
        assert line["event"] == "authentication_failed" and line["reason"] == "not an API key"
        await asyncio.sleep(1)
        assert (await vr.replication_status())["sequence"] == 0
        assert "refused this replica" in replica.log()

        # The mounted Secret is fixed: the replica picks the new key up without a restart.
        wrong.write_text(KEY)

        async def following() -> bool:
            return bool((await vr.replication_status())["sequence"] == 1)

        await eventually(following, timeout=40)


@contextlib.asynccontextmanager
async def _stream(
    primary: ServerProcess, key: str, heard: dict[str, Any]
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A replication stream opened with ``key``, its hello sent: a listener that checks
    record checksums, at the epoch, sequence and history ``heard``."""
    hello = {"type": "hello", "node_id": "listener", "address": "", **heard}
    url = primary.url.replace("http", "ws") + "/replication/stream"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"X-API-Key": key}, max_msg_size=0) as ws,
    ):
        await ws.send_str(orjson.dumps({**hello, "record_checksums": True}).decode())
        yield ws


async def test_a_stream_opened_with_a_key_since_revoked_is_closed_before_the_next_write(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """Credentials are checked when the stream opens and again whenever the API keys
    change (and every second): a write made after its key was revoked never goes out
    on a stream that key opened (it used to, for as long as the stream lived)."""
    auth = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
    primary = server_factory(data_dir=tmp_path / "p", args=[*FAST, *auth]).start()
    async with VectorizerClient(primary.url, api_key=ADMIN) as vp:
        await vp.create_collection("c", 4)
        record, key = await vp.create_key("streamer", "admin")
        status = await vp.replication_status()
        heard = {k: status[k] for k in ("epoch", "sequence", "history")}
        async with _stream(primary, key, heard) as ws:
            assert orjson.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
            await vp.upsert("c", [Point(1, [1.0, 0, 0, 0], {"before": True})])
            seen = b""
            while b"before" not in seen:  # the write before revocation streams
                msg = await ws.receive(timeout=10)
                seen += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            await vp.revoke_key(record["id"])
            await vp.upsert("c", [Point(2, [1.0, 0, 0, 0], {"after_revocation": True})])
            after = b""
            deadline = asyncio.get_running_loop().time() + 10
            while b"unauthenticated" not in after and b"after_revocation" not in after:
                msg = await ws.receive(timeout=max(deadline - asyncio.get_running_loop().time(), 0))
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
                after += msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            assert b"unauthenticated" in after and b"after_revocation" not in after


async def test_a_full_sync_stops_once_the_key_that_opened_it_is_revoked(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The re-check covers a snapshot being sent too: a stream opened with a key, then
    revoked while its full sync ran, received the whole snapshot (as slowly as its
    reader liked) before being told. Now the snapshot stops at the next chunk."""
    auth = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
    primary = server_factory(data_dir=tmp_path / "p", args=[*FAST, *auth]).start()
    rng = np.random.default_rng(0)
    async with VectorizerClient(primary.url, api_key=ADMIN, timeout=60) as vp:
        await vp.create_collection("big", 512, index="exact")
        for b in range(12):  # (~24 MiB of vectors: far beyond what sockets buffer)
            rows = rng.random((1000, 512), dtype=np.float32)
            await vp.upsert("big", [Point(b * 1000 + i, rows[i]) for i in range(1000)])
        record, key = await vp.create_key("streamer", "admin")
        ahead = {"epoch": 0, "sequence": 10**9, "history": []}  # (it must send everything)
        async with _stream(primary, key, ahead) as ws:
            assert orjson.loads((await ws.receive(timeout=10)).data)["mode"] == "full"
            header = orjson.loads((await ws.receive(timeout=30)).data)
            total = sum(f["size"] for f in header["files"])
            assert total > 20 << 20, total
            await vp.revoke_key(record["id"])
            await asyncio.sleep(1)  # (the primary fills the buffers meanwhile)
            received, texts = 0, []
            while (msg := await ws.receive(timeout=30)).type in (
                aiohttp.WSMsgType.BINARY,
                aiohttp.WSMsgType.TEXT,
            ):
                if msg.type == aiohttp.WSMsgType.BINARY:
                    received += len(msg.data)
                else:
                    texts.append(orjson.loads(msg.data)["type"])
                    if texts[-1] == "error":
                        break
            assert texts == ["error"], texts  # (no "snapshot_done")
            assert received < total / 2, (received, total)


async def test_the_replication_key_goes_to_no_origin_a_redirect_names(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A primary URL answering with a redirect to another origin (a compromised or
    misconfigured proxy in front of it) got the replication key: the follower's
    WebSocket and the follow request's status check followed redirects, and aiohttp
    strips only ``Authorization`` when the origin changes, not ``X-API-Key``. Neither
    follows one now: the replica says it was refused and never sends the key there."""
    (tmp_path / "replication.key").write_text(KEY)
    elsewhere: list[dict[str, str]] = []  # the headers each request to the other origin had
    tried: list[str] = []

    async def record(request: web.Request) -> web.Response:
        elsewhere.append({**request.headers, "path": request.path})
        return web.Response(status=404)

    sink = web.Application()
    sink.router.add_route("*", "/{tail:.*}", record)
    async with serving(sink) as sink_port:

        async def redirect(request: web.Request) -> web.Response:
            tried.append(request.path)
            target = f"http://127.0.0.1:{sink_port}{request.path_qs}"
            raise web.HTTPTemporaryRedirect(target)

        front = web.Application()
        front.router.add_route("*", "/{tail:.*}", redirect)
        async with serving(front) as front_port:
            replica = server_factory(
                data_dir=tmp_path / "r",
                args=[
                    *FAST,
                    "--auth-enabled",
                    "true",
                    "--auth-admin-key",
                    ADMIN,
                    "--replication-key-file",
                    str(tmp_path / "replication.key"),
                    "--role",
                    "replica",
                    "--primary-url",
                    f"http://127.0.0.1:{front_port}",
                ],
            ).start()

            async def tried_twice(path: str, before: int = 0) -> bool:
                return tried.count(path) >= before + 2

            await eventually(lambda: tried_twice("/replication/stream"))
            async with VectorizerClient(replica.url, api_key=ADMIN) as vr:
                # (the status check a follow request makes, then the link it starts)
                streams = tried.count("/replication/stream")
                await vr.request(
                    "POST",
                    "/replication/follow",
                    {"primary_url": f"http://127.0.0.1:{front_port}/", "epoch": 0},
                )
                assert tried.count("/replication/status") == 1
                await eventually(lambda: tried_twice("/replication/stream", streams))
            assert not [h for h in elsewhere if KEY in h.values()], elsewhere
            assert "refused this replica" in replica.log()
            assert "redirect" in replica.log()


async def test_a_primary_not_ready_is_a_lost_link_not_a_refusal(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A recovering primary answers the stream 503 (``not_ready``): the replica retries at
    its usual interval and logs a lost link. It logged ERROR "refused this replica" at
    every attempt (dozens per restart of its primary), which reads as a credential
    problem to anyone alerting on it; 401 and 403 still do, and back off."""
    tried: list[int] = []
    answer = {"status": 503}

    async def stream(request: web.Request) -> web.Response:
        tried.append(answer["status"])
        body = {"error": {"code": "not_ready", "message": "recovering"}}
        return web.json_response(body, status=answer["status"])

    primary = web.Application()
    primary.router.add_get("/replication/stream", stream)
    async with serving(primary) as port:
        replica = server_factory(
            data_dir=tmp_path / "r",
            args=[*FAST, "--role", "replica", "--primary-url", f"http://127.0.0.1:{port}"],
        ).start()

        async def tried_thrice() -> bool:
            return len(tried) >= 3

        await eventually(tried_thrice)
        lines = [orjson.loads(x) for x in replica.log().splitlines() if "HTTP 503" in x]
        assert lines and {x["level"] for x in lines} == {"WARNING"}, lines
        assert "refused this replica" not in replica.log()
        answer["status"] = 403

        async def refused() -> bool:
            return "refused this replica: HTTP 403" in replica.log()

        await eventually(refused)
