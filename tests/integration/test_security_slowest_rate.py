"""Rates too slow to be a limit, on a real node: refused where they are set, and one
already in a key file answered with a long wait, not with a plain 500 audited as a 200."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.test_replication import eventually
from tests.servers import ServerProcess
from vectorizer.security.keys import FILE, KeyStore

ADMIN = "slowest-rate-admin-key-0123456789"
AUTH = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
LONGEST = "2147483648"  # 2**31 s, the longest wait announced


def audit(srv: ServerProcess) -> list[dict[str, object]]:
    path = srv.data_dir / "audit" / "audit.jsonl"
    return [orjson.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_a_rate_below_the_slowest_is_refused_where_it_is_set(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data", args=AUTH).start()
    async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN}) as s:
        for rps in ("5e-324", "1e-310", "1e-300"):
            body = f'{{"name": "t", "role": "viewer", "rate_limit_rps": {rps}}}'
            headers = {"Content-Type": "application/json"}
            async with s.post(srv.url + "/auth/keys", data=body, headers=headers) as r:
                assert r.status == 422, await r.text()
                assert (await r.json())["error"]["field"] == "rate_limit_rps"
        async with s.get(srv.url + "/auth/keys") as r:
            assert (await r.json())["count"] == 0
    node = server_factory(data_dir=tmp_path / "node", args=[*AUTH, "--rate-limit-rps", "1e-310"])
    with pytest.raises(RuntimeError, match="rate_limit_rps must be 0 \\(no limit\\)"):
        node.start(timeout=30)


async def test_a_stored_rate_below_the_slowest_waits_instead_of_failing(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A key file written before the bound holds a rate it would refuse now."""
    data = tmp_path / "data"
    record, secret = KeyStore(data).create("old", "viewer", rate_limit_rps=1.0)
    raw = orjson.loads((data / FILE).read_bytes())
    raw["keys"][0]["rate_limit_rps"] = 1e-310
    (data / FILE).write_bytes(orjson.dumps(raw))
    srv = server_factory(data_dir=data, args=AUTH).start()
    async with aiohttp.ClientSession(headers={"X-API-Key": secret}) as s:
        async with s.get(srv.url + "/collections") as r:
            assert r.status == 200, await r.text()
            assert r.headers["X-RateLimit-Reset"] == LONGEST
        async with s.get(srv.url + "/collections") as r:
            assert r.status == 429 and r.content_type == "application/json"
            assert (await r.json())["error"]["code"] == "rate_limited"
            assert r.headers["Retry-After"] == r.headers["X-RateLimit-Reset"] == LONGEST

    async def audited() -> list[object] | None:  # (written by a thread of the node's)
        mine = [x["status"] for x in audit(srv) if x.get("principal") == f"key:{record.id}"]
        return mine if len(mine) >= 2 else None

    assert await eventually(audited, timeout=10) == [200, 429]
