"""A password in a replica's ``primary_url`` (``http://user:pass@host``: aiohttp sends it
as Basic credentials) was hidden in the start-up settings line only: every lost link
logged it, every write refused with ``not_primary`` told it to the client, and
``/replication/status`` showed it. Each shows ``<set>`` in its place now."""

from __future__ import annotations

import time
from pathlib import Path

from tests.servers import ServerProcess, free_port

SECRET = "S3cretPassw0rd"


def test_a_password_in_the_primary_url_is_shown_nowhere(tmp_path: Path) -> None:
    url = f"http://repl:{SECRET}@127.0.0.1:{free_port()}"  # (nobody listens there)
    args = ["--role", "replica", "--primary-url", url, "--reconnect-interval-ms", "200"]
    replica = ServerProcess(data_dir=tmp_path / "r", args=args).start(wait_ready=False)
    try:
        deadline = time.monotonic() + 20
        while "replication link to" not in replica.log():  # (a link lost, logged)
            assert time.monotonic() < deadline, replica.log()
            time.sleep(0.1)
        status, body = replica.request("POST", "/collections", {"name": "c", "dimension": 2})
        assert status == 409 and body["error"]["code"] == "not_primary", body
        shown = url.replace(SECRET, "<set>")
        assert body["error"]["details"]["primary"] == shown, body
        status, body = replica.request("GET", "/replication/status")
        assert status == 200 and body["primary"] == shown, body
        status, body = replica.request("POST", "/replication/follow", {"primary_url": url})
        assert SECRET not in str(body)
    finally:
        replica.terminate()
    assert SECRET not in replica.log()
