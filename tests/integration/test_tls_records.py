"""Every TLS record on the TLS port is TLS: one that opens a connection with something
other than a hello (the alert a client sends when it gives up) is a failed handshake,
never answered in HTTP nor counted as an HTTP request, as a TLS alert once was."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_security_tls import audit
from tests.integration.test_tls_observability import TLS_REQUIRED, UNPARSED, scrape, tls_node
from tests.servers import ServerProcess

RECORDS = {
    # What ``openssl s_client`` sends when it gives up before its hello (internal_error).
    "alert": b"\x15\x03\x01\x00\x02\x02\x50",
    "change_cipher_spec": b"\x14\x03\x03\x00\x01\x01",
    "application_data": b"\x17\x03\x03\x00\x05hello",
    "alert with no TLS version": b"\x15\x07\x07\x00\x02\x02\x50",
}


def answer_to(port: int, record: bytes) -> bytes:
    """What the node sends back before it closes (a reset: nothing)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(record)
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


async def test_a_tls_record_that_is_no_hello_is_a_failed_handshake(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    audit_log = tmp_path / "data" / "audit" / "audit.jsonl"  # (where ``audit`` reads)
    srv = tls_node(server_factory, tmp_path, "--audit-log-path", str(audit_log))
    before = scrape(srv)
    for name, record in RECORDS.items():
        assert not answer_to(srv.port, record).startswith(b"HTTP/"), name

    async def failed() -> list[dict[str, Any]]:  # (written by a thread of the node's)
        for _ in range(100):
            lines = [x for x in audit(srv) if x["event"] == "tls_handshake_failed"]
            if len(lines) >= len(RECORDS):
                return lines
            await asyncio.sleep(0.1)
        pytest.fail(f"audited: {audit(srv)}")

    lines = await failed()
    assert {x["source"] for x in lines} == {"127.0.0.1"}
    assert "WRONG_VERSION_NUMBER" in {x["reason"] for x in lines}, lines  # (OpenSSL's)
    assert not [x for x in audit(srv) if x["event"] == "plaintext_on_tls_port"]
    after = scrape(srv)
    assert after[TLS_REQUIRED] == before[TLS_REQUIRED] == 0
    assert after.get(UNPARSED, 0) == before.get(UNPARSED, 0)
    assert srv.request("GET", "/health")[0] == 200  # and real clients are served as ever
