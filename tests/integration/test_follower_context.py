"""A follower started by a request does not carry that request's id and trace for its life."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration import test_replication
from tests.integration.test_replication import Cluster, caught_up, eventually
from tests.integration.test_tracing_logs import TRACE_ID, TRACEPARENT, json_objects, spans

cluster = test_replication.cluster  # (the fixture)

REQUEST_ID = "the-follow-request"


async def test_the_follower_runs_in_a_context_of_its_own(cluster: Cluster, tmp_path: Path) -> None:
    """The follower's task, created inside POST /replication/follow, copied its context:
    every later log line of the link carried that request's id and trace id, and every
    record applied without a trace of its own became a child of that long-answered
    request (one trace growing for the replica's whole life)."""
    p = await cluster.start("p")  # (no tracing: its records carry no trace context)
    vp = cluster.client(p)
    await vp.create_collection("c", 2)
    n = await cluster.start("n", "--role", "replica", "--tracing-exporter", "console")
    vn = cluster.client(n)
    status, _ = await asyncio.to_thread(
        n.request,
        "POST",
        "/replication/follow",
        {"primary_url": p.url, "epoch": 1},
        {"traceparent": TRACEPARENT, "X-Request-ID": REQUEST_ID},
    )
    assert status == 200
    await eventually(lambda: caught_up(vp, vn))
    for i in range(2):
        await vp.request(
            "POST", "/collections/c/vectors", {"vectors": [{"id": i, "vector": [1, 2]}]}
        )
    await eventually(lambda: caught_up(vp, vn))
    p.kill()  # the follower logs the link it lost

    def link_lost() -> list[dict[str, object]]:
        return [
            o for o in json_objects(n.log()) if o.get("logger") == "vectorizer.replication.follower"
        ]

    lines = await eventually(lambda: asyncio.to_thread(link_lost))
    n.terminate()  # (exports the spans)

    for line in lines:
        assert line.get("request_id") != REQUEST_ID, line
        assert line.get("trace_id") != TRACE_ID, line
    found = spans(json_objects(n.log()))
    follow = [s for s in found if s["name"] == "POST /replication/follow"]
    assert follow and follow[0]["context"]["trace_id"] == "0x" + TRACE_ID
    applied = [s for s in found if s["name"] == "replication.apply"]
    assert len(applied) >= 2, [s["name"] for s in found]
    for s in applied:
        assert s["context"]["trace_id"] != "0x" + TRACE_ID, s
        assert s["parent_id"] is None, s  # (a trace of its own)
