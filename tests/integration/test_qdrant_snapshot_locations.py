"""A ``recover`` location that is not a URL at all (an unbalanced IPv6 bracket, which
``urlsplit`` raises on) is refused as every other bad location is: a 400 naming
``location``, with nothing changed."""

from __future__ import annotations

import pytest

from tests.servers import ServerProcess

Q = "/qdrant/collections"


@pytest.mark.parametrize(
    "location",
    ["http://[::1", "https://[zz]/x.snapshot", "file://[::1/x.snapshot", "http://:80/x.snapshot"],
)
def test_a_malformed_location_is_a_400(server: ServerProcess, location: str) -> None:
    assert server.request("PUT", f"{Q}/dst", {"vectors": {"size": 2, "distance": "Dot"}})[0] == 200
    points = {"points": [{"id": 1, "vector": [1, 2], "payload": {"a": 1}}]}
    assert server.request("PUT", f"{Q}/dst/points?wait=true", points)[0] == 200
    sequence = server.request("GET", "/stats")[1]["sequence"]
    for name in ("dst", "new"):
        url = f"{Q}/{name}/snapshots/recover?wait=true"
        status, body = server.request("PUT", url, {"location": location})
        assert status == 400, body
        assert body["status"]["error"].startswith("validation_error: location: "), body
    assert server.request("GET", "/stats")[1]["sequence"] == sequence
    status, body = server.request("GET", f"{Q}/dst/points/1")
    assert status == 200 and body["result"]["payload"] == {"a": 1}, body
    assert server.request("GET", f"{Q}/new/exists")[1]["result"] == {"exists": False}
