"""The native API end to end, through the SDK, against a real server process."""

from __future__ import annotations

import asyncio
import platform
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest

import vectorizer
from tests.servers import ServerProcess, free_port
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import (
    AliasNotFound,
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    ValidationError,
    VectorNotFound,
)


async def test_crud_workflow(server: ServerProcess) -> None:
    async with VectorizerClient(server.url) as vz:
        assert (await vz.health())["status"] == "healthy"
        assert await vz.ready()
        info = await vz.create_collection("docs", 4, metric="dot", hnsw={"m": 8})
        assert info["hnsw"]["m"] == 8 and info["metric"] == "dot"
        with pytest.raises(CollectionExists):
            await vz.create_collection("docs", 4)
        await vz.upsert(
            "docs", [Point(i, [i, 1, 0, 0], {"n": i, "even": i % 2 == 0}) for i in range(10)]
        )
        await vz.upsert("docs", [Point("s-1", [0, 0, 1, 0], {"n": -1})])
        twice = [
            Point("s-2", [0, 0, 1, 0], {"n": 1}).to_json(),
            {"id": "s-2", "vector": [0, 0, 0, 1], "payload": {"n": 2}},
        ]
        answer = await vz.request("POST", "/collections/docs/vectors", {"vectors": twice})
        assert answer["upserted"] == 1  # the last one wins
        assert (await vz.get("docs", "s-2")).payload == {"n": 2}
        await vz.delete("docs", "s-2")

        rec = await vz.get("docs", 3)
        assert rec.payload == {"n": 3, "even": False} and rec.vector == [3, 1, 0, 0]
        assert (await vz.get("docs", "s-1", with_vector=False)).vector is None

        hits = await vz.search("docs", [1, 0, 0, 0], limit=3)
        assert [h.id for h in hits] == [9, 8, 7]
        hits = await vz.search(
            "docs",
            [1, 0, 0, 0],
            limit=3,
            filter={"must": [{"key": "even", "match": {"value": True}}]},
        )
        assert [h.id for h in hits] == [8, 6, 4]
        assert [h.id for h in await vz.search("docs", [1, 0, 0, 0], limit=2, offset=1)] == [8, 7]
        assert [h.id for h in await vz.search("docs", [1, 0, 0, 0], limit=20, threshold=7.5)] == [
            9,
            8,
        ]

        await vz.update("docs", 0, vector=[100, 0, 0, 0])
        assert (await vz.search("docs", [1, 0, 0, 0], limit=1))[0].id == 0
        await vz.update("docs", 0, payload={"moved": True})
        assert (await vz.get("docs", 0)).payload == {"moved": True}
        with pytest.raises(VectorNotFound):
            await vz.update("docs", 12345, payload={})

        assert await vz.count("docs") == 11
        assert await vz.count("docs", {"must": [{"key": "n", "range": {"gte": 5}}]}) == 5
        page, nxt = await vz.list_points("docs", limit=4)
        assert [r.id for r in page] == [0, 1, 2, 3] and nxt == 4
        page, nxt = await vz.list_points("docs", limit=100, offset=nxt)
        assert [r.id for r in page] == [4, 5, 6, 7, 8, 9, "s-1"] and nxt is None

        await vz.delete("docs", 9)
        with pytest.raises(VectorNotFound):
            await vz.get("docs", 9)
        assert await vz.delete_many("docs", ids=[8, 7, 777]) == 2
        assert (
            await vz.delete_many("docs", filter={"must": [{"key": "n", "range": {"lt": 2}}]}) == 2
        )
        assert await vz.count("docs") == 6

        batch = await vz.batch_search(
            "docs", [{"vector": [1, 0, 0, 0], "limit": 2}, {"vector": [1, 0]}]
        )
        assert isinstance(batch[0], list) and len(batch[0]) == 2
        assert isinstance(batch[1], DimensionMismatch) and batch[1].field == "vector"
        assert batch[1].details == {"expected": 4, "got": 2} and batch[1].request_id

        snap = await vz.snapshot("docs")
        assert snap["sequence"] > 0 and snap["size_bytes"] > 0
        stats = await vz.stats()
        assert stats["collections"] == 1 and stats["vectors"] == 6
        assert stats["snapshot"]["sequence"] == snap["sequence"]

        await vz.delete_collection("docs")
        with pytest.raises(CollectionNotFound):
            await vz.get_collection("docs")
        assert await vz.list_collections() == []


async def test_the_sdk_takes_any_id_and_numpy_rows(server: ServerProcess) -> None:
    """Ids that are dot segments reach their point (no client or proxy may resolve
    them away); numpy rows are vectors; errors carry the request id."""
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("odd", 3, metric="dot")
        rows = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)
        await vz.upsert(
            "odd", [Point(pid, rows[i], {"i": i}) for i, pid in enumerate([".", "..", "a.b"])]
        )
        for i, pid in enumerate([".", "..", "a.b"]):
            got = await vz.get("odd", pid)
            assert (got.id, got.payload, got.vector) == (pid, {"i": i}, rows[i].tolist())
        await vz.update("odd", "..", vector=np.array([0, 0, 10.0]))
        hits = await vz.search("odd", np.array([0, 0, 1], dtype=np.float64), limit=1)
        assert [h.id for h in hits] == [".."]
        await vz.delete("odd", ".")
        assert sorted(r.id for r in (await vz.list_points("odd"))[0]) == ["..", "a.b"]
        with pytest.raises(VectorNotFound) as failed:
            await vz.get("odd", ".")
        assert failed.value.request_id and "request_id" not in failed.value.details
        # Ids no point can have: they named the string ids "-1", "True" and "1.5"
        await vz.upsert("odd", [Point(s, rows[0]) for s in ("-1", "True", "1.5")])
        for bad in (-1, True, 1.5, 2**64):
            for call in (vz.get("odd", bad), vz.delete("odd", bad), vz.update("odd", bad)):
                with pytest.raises(ValidationError):
                    await call
        assert await vz.count("odd") == 5


async def test_a_client_on_the_callers_session_keeps_using_it(server: ServerProcess) -> None:
    """A client given a session used it until its first ``close()``, then made one of
    its own that no ``close()`` closed ("Unclosed client session")."""
    sent = 0

    async def count(*_: Any) -> None:
        nonlocal sent
        sent += 1

    traced = aiohttp.TraceConfig()
    traced.on_request_start.append(count)
    async with aiohttp.ClientSession(trace_configs=[traced]) as session:
        client = VectorizerClient(server.url, session=session)
        for _ in range(2):
            async with client as vz:
                assert await vz.ready()
        assert sent == 2 and not session.closed


async def test_the_sdk_takes_ids_with_braces_strided_rows_and_both_selectors(
    server: ServerProcess,
) -> None:
    """Ids holding braces are reachable by path (aiohttp's default pattern refused
    them); a column or strided slice of a numpy matrix is a vector; ids and a filter
    together are refused, not read as the ids alone (which deleted what the filter
    kept); a string id of digits is refused, not read as the integer's point."""
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("br", 3, metric="dot")
        grid = np.arange(1, 19, dtype=np.float32).reshape(6, 3)
        columns = np.asfortranarray(grid.T)  # (rows of it are strided views)
        ids = ["{doc-1}", "a}b", "{", "x{y}z", 7, "plain"]
        await vz.upsert("br", [Point(pid, grid[i], {"keep": i < 3}) for i, pid in enumerate(ids)])
        for i, pid in enumerate(ids):
            assert (await vz.get("br", pid)).vector == grid[i].tolist()
        strided = np.arange(30, dtype=np.float32)[::10]
        await vz.update("br", "{doc-1}", vector=strided, payload={"keep": True, "x": 1})
        assert (await vz.get("br", "{doc-1}")).vector == [0, 10, 20]
        hits = await vz.search("br", columns[:, 0], limit=1)
        assert [h.id for h in hits] == ["plain"]
        await vz.delete("br", "a}b")
        assert await vz.count("br") == 5
        assert (await vz.get_collection("br"))["name"] == "br"
        dropped = {"must": [{"key": "keep", "match": {"value": False}}]}
        with pytest.raises(ValidationError):
            await vz.delete_many("br", ids=ids, filter=dropped)
        assert await vz.count("br") == 5
        assert await vz.delete_many("br", filter=dropped) == 3
        records, _ = await vz.list_points("br", with_payload=False)
        assert sorted(map(str, (r.id for r in records))) == ["{", "{doc-1}"]
        assert all(r.payload is None for r in records)
        with pytest.raises(ValidationError) as failed:
            await vz.get("br", "7")
        assert failed.value.field == "id"
        status, got = server.request(
            "PUT", "/collections/br/payload_indexes/%7Bk%7D", {"schema": "keyword"}
        )
        assert status == 201 and got["payload_index"]["key"] == "{k}", got
        status, got = server.request("GET", "/qdrant/collections/br/points/%7Bdoc-1%7D")
        assert status == 200 and got["result"]["id"] == "{doc-1}", got
        assert await vz.ready()
    async with VectorizerClient(f"http://127.0.0.1:{free_port()}", timeout=5) as nobody:
        assert not await nobody.ready()  # (unreachable: not ready, not an exception)


async def test_aliases_through_the_sdk(server: ServerProcess) -> None:
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("v1", 2)
        await vz.create_collection("v2", 2)
        await vz.upsert("v1", [Point(1, [1, 0])])
        await vz.upsert("v2", [Point(2, [1, 0])])
        assert await vz.set_alias("prod", "v1") == {"prod": "v1"}
        assert [h.id for h in await vz.search("prod", [1, 0], limit=1)] == [1]
        assert (await vz.get_collection("prod"))["name"] == "v1"
        await vz.upsert("prod", [Point(3, [0, 1])])
        assert await vz.count("v1") == 2
        assert await vz.set_alias("prod", "v2") == {"prod": "v2"}  # moved in one step
        assert [h.id for h in await vz.search("prod", [1, 0], limit=1)] == [2]
        with pytest.raises(AliasNotFound) as raised:
            await vz.update_aliases(
                [
                    {"delete_alias": {"alias_name": "prod"}},
                    {"rename_alias": {"old_alias_name": "nope", "new_alias_name": "x"}},
                ]
            )
        assert raised.value.field == "actions[1].old_alias_name"
        assert await vz.aliases() == {"prod": "v2"}  # nothing of the failed batch
        with pytest.raises(CollectionExists):
            await vz.set_alias("v1", "v2")  # a collection's name
        with pytest.raises(CollectionNotFound):
            await vz.delete_collection("prod")  # by own name only
        assert await vz.delete_alias("prod") == {}


async def test_openapi_document_lists_every_route(server: ServerProcess) -> None:
    status, doc = server.request("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path in (
        "/replication/status",
        "/qdrant/collections/{name}/points/query",
        "/collections",
        "/collections/{name}/search",
        "/collections/{name}/vectors/{id}",
        "/batch_search",
        "/collections/{name}/snapshot",
        "/health",
        "/ready",
    ):
        assert path in doc["paths"], path
    bodies = {
        f"{method.upper()} {path}": op["requestBody"]["content"]["application/json"]["schema"]
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    upload = doc["paths"]["/qdrant/collections/{name}/snapshots/upload"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]  # (the file)
    for where in ("POST /collections", "POST /collections/{name}/search"):
        assert where in bodies, where
    qdrant = [where for where in bodies if " /qdrant/" in where]
    assert "PUT /qdrant/collections/{name}/points" in qdrant and len(qdrant) >= 10
    for where, schema in bodies.items():  # every body's schema is in the document
        assert schema["$ref"].rsplit("/", 1)[1] in doc["components"]["schemas"], where


def test_openapi_document_is_valid_and_says_what_the_server_reads(server: ServerProcess) -> None:
    """A valid OpenAPI 3.1 document (unique operation ids among others), with the query
    parameters the views read, the bodies a request may leave out, and each API's error
    shape."""
    from openapi_spec_validator import validate

    doc = server.request("GET", "/openapi.json")[1]
    validate(doc)
    listing = doc["paths"]["/collections/{name}/vectors"]["get"]
    assert {p["name"] for p in listing["parameters"] if p["in"] == "query"} == {
        "limit",
        "offset",
        "with_vector",
        "with_payload",
    }
    count = doc["paths"]["/collections/{name}/count"]["post"]
    assert count["requestBody"]["required"] is False
    assert server.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
    assert server.request("POST", "/collections/c/count") == (200, {"count": 0})
    qcount = doc["paths"]["/qdrant/collections/{name}/points/count"]["post"]
    assert qcount["requestBody"]["required"] is False
    assert doc["paths"]["/collections/{name}/search"]["post"]["requestBody"]["required"]
    refs = {
        path: op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
        for path, ops in doc["paths"].items()
        for op in ops.values()
    }
    assert {r for p, r in refs.items() if p.startswith("/qdrant")} == {
        "#/components/schemas/QdrantError"
    }
    assert {r for p, r in refs.items() if not p.startswith("/qdrant")} == {
        "#/components/schemas/Error"
    }
    status, got = server.request(
        "POST", "/collections/c/vectors", {"vectors": [{"id": 1, "vector": [1]}]}
    )
    assert status == 422 and got["error"]["details"] == {"expected": 2, "got": 1}
    assert set(got["error"]) <= set(
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    )


async def test_many_collections(server: ServerProcess) -> None:
    async with VectorizerClient(server.url) as vz:
        names = [f"c-{i:03d}" for i in range(120)]
        await asyncio.gather(*(vz.create_collection(n, 8) for n in names))
        rng = np.random.default_rng(0)
        await asyncio.gather(
            *(
                vz.upsert(n, [Point(j, rng.normal(size=8).tolist(), {"c": n}) for j in range(20)])
                for n in names
            )
        )
        listed = await vz.list_collections()
        assert [c["name"] for c in listed] == names
        assert all(c["vector_count"] == 20 for c in listed)
        hits = await vz.search("c-077", rng.normal(size=8).tolist(), limit=3)
        assert len(hits) == 3 and all(h.payload == {"c": "c-077"} for h in hits)


async def test_concurrent_searches_while_writing(server: ServerProcess) -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("live", 16)
        await vz.upsert("live", [Point(i, base[i].tolist(), {"i": i}) for i in range(3000)])

        async def writer() -> int:
            n = 0
            for b in range(20):
                pts = [Point(10_000 + b * 50 + j, rng.normal(size=16).tolist()) for j in range(50)]
                await vz.upsert("live", pts)
                n += len(pts)
            return n

        async def searcher(i: int) -> None:
            q = base[i]
            hits = await vz.search("live", q.tolist(), limit=5)
            assert len(hits) == 5
            assert hits[0].id == i  # an original point is always its own nearest neighbour

        results = await asyncio.gather(writer(), *(searcher(i) for i in range(150)))
        assert results[0] == 1000
        assert await vz.count("live") == 4000


async def test_concurrent_unfiltered_searches_answered_together_stay_correct(
    server: ServerProcess,
) -> None:
    rng = np.random.default_rng(9)
    base = rng.normal(size=(4000, 16)).astype(np.float32)
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("b", 16)
        await vz.upsert("b", [Point(i, base[i].tolist(), {"i": i}) for i in range(4000)])
        results = await asyncio.gather(
            *(vz.search("b", base[i].tolist(), limit=3, offset=i % 2) for i in range(64)),
            vz.search("b", base[0].tolist(), limit=2, threshold=2.0),  # nothing scores > 1
        )
        for i, hits in enumerate(results[:64]):
            assert len(hits) == 3
            if i % 2 == 0:
                assert hits[0].id == i and hits[0].payload == {"i": i}
        assert results[64] == []


async def test_a_batch_answers_each_query_as_it_is_answered_alone(server: ServerProcess) -> None:
    """The unfiltered queries of a batch that share their parameters are answered in one
    pass; each gets what it gets alone, and a bad one fails alone."""
    rng = np.random.default_rng(10)
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("b", 16)
        await vz.upsert("b", [Point(i, base[i].tolist(), {"i": i % 3}) for i in range(3000)])
        queries: list[dict[str, Any]] = []
        for i in range(40):
            q: dict[str, Any] = {"vector": base[i].tolist(), "limit": (3, 7)[i % 2]}
            if i % 3 == 0:
                q["offset"] = 2
            if i % 5 == 0:
                q["filter"] = {"must": [{"key": "i", "match": {"value": 1}}]}
            if i % 7 == 0:
                q["with_vector"] = True
            queries.append(q)
        queries.insert(11, {"vector": [1.0, 2.0]})  # (the wrong dimension)
        batch = await vz.batch_search("b", queries)
        assert isinstance(batch[11], DimensionMismatch)
        for q, got in zip(queries, batch, strict=True):
            if len(q["vector"]) == 16:
                alone = await vz.search("b", **q)
                assert got == alone and len(alone) == q["limit"]


def environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="not a glibc system: the server re-executes itself only on glibc, whose malloc "
    "has the tunable (musl has none); the plan for other libcs is unit-tested",
)
async def test_the_server_runs_with_huge_pages_in_the_same_process(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """`vectorizer serve` re-executes itself once with glibc.malloc.hugetlb=1 (same pid,
    so whoever started it still holds the server); huge_pages false leaves it alone."""
    for flag, expected in (("true", True), ("false", False)):
        srv = server_factory(
            data_dir=tmp_path / flag, args=["--huge-pages", flag], env={"GLIBC_TUNABLES": ""}
        ).start()
        try:
            assert srv.proc is not None
            assert (b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ(srv.proc.pid)) is expected
            async with VectorizerClient(srv.url) as c:
                await c.create_collection("h", dimension=4)
                await c.upsert("h", [Point(1, [1.0, 0.0, 0.0, 0.0])])
                assert (await c.search("h", [1.0, 0.0, 0.0, 0.0], limit=1))[0].id == 1
        finally:
            srv.terminate()


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="not a glibc system: the server re-executes itself only on glibc",
)
def test_the_re_executed_server_is_the_server_whatever_the_directory(tmp_path: Path) -> None:
    """Started where a file named vectorizer.py lies, the re-executed server is still
    the installed one, not that file."""
    (tmp_path / "vectorizer.py").write_text("open('ran', 'w').close()\n")
    srv = ServerProcess(data_dir=tmp_path / "data", env={"GLIBC_TUNABLES": ""}, cwd=tmp_path)
    try:
        srv.start()
        assert srv.proc is not None
        assert b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ(srv.proc.pid)
        assert not (tmp_path / "ran").exists()
    finally:
        srv.kill()


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="not a glibc system: the server re-executes itself only on glibc",
)
def test_the_re_executed_server_runs_the_code_the_first_start_ran(tmp_path: Path) -> None:
    """Started as ``python -m vectorizer serve`` from a source folder (the package found
    in the current directory, not installed from there), the re-executed server imports
    the same package: it found none there, or the one installed from elsewhere."""
    source = tmp_path / "src"
    shutil.copytree(Path(vectorizer.__file__).parent, source / "vectorizer")
    marks = tmp_path / "imported"
    with open(source / "vectorizer" / "__init__.py", "a") as init:
        init.write(f"\nwith open({str(marks)!r}, 'a') as _f:\n    _f.write(__file__ + '\\n')\n")
    env = {"GLIBC_TUNABLES": "", "PYTHONPATH": ""}
    srv = ServerProcess(data_dir=tmp_path / "data", env=env, cwd=source, isolated=False)
    try:
        srv.start()
        assert srv.proc is not None
        assert b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ(srv.proc.pid)
        imported = [Path(line).resolve() for line in marks.read_text().splitlines()]
        assert imported == [(source / "vectorizer" / "__init__.py").resolve()] * 2
    finally:
        srv.kill()


def test_the_start_up_log_names_the_settings_in_effect(server: ServerProcess) -> None:
    line = next(x for x in server.log().splitlines() if "settings other than the defaults" in x)
    assert f"port={server.port}" in line and "data_dir=" in line


async def test_a_count_counts_the_collection_there_once_its_body_is_in(
    server: ServerProcess,
) -> None:
    """A count whose body comes after its collection was deleted and created again counts
    the new one (it counted the deleted one's points, and kept it in memory meanwhile)."""
    async with VectorizerClient(server.url) as vz:
        await vz.create_collection("recreated", 2)
        await vz.upsert("recreated", [Point(i, [1.0, float(i)]) for i in range(5)])
        body = b'{"filter": null}'
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = (
            "POST /collections/recreated/count HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        await asyncio.sleep(0.3)  # (past the fast path's wait for a body: the pipeline's)
        await vz.delete_collection("recreated")
        await vz.create_collection("recreated", 2)
        await vz.upsert("recreated", [Point(9, [0.0, 1.0])])
        writer.write(body)
        await writer.drain()
        head_in = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        length = int(head_in.split("content-length:", 1)[1].split("\r\n", 1)[0])
        answer = await reader.readexactly(length)
        writer.close()
        assert head_in.startswith("http/1.1 200") and orjson.loads(answer) == {"count": 1}
