"""What the TLS listener refuses shows in the metrics and the audit log as what it was."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_security_tls import audited, tls_args
from tests.servers import Pki, ServerProcess


def scrape(srv: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(srv.url + "/metrics", context=srv.ssl_context()) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def tls_node(factory: type[ServerProcess], tmp_path: Path, *extra: str) -> ServerProcess:
    pki = Pki(tmp_path / "pki")
    ca = pki.ca()
    cert, key = pki.issue("server", dns=["localhost"], ips=["127.0.0.1"])
    return factory(data_dir=tmp_path / "data", args=tls_args(cert, key, *extra), ca_file=ca).start()


def plain_http(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


TLS_REQUIRED = ("vectorizer_api_errors_total", (("code", "tls_required"),))
UNPARSED = (
    "vectorizer_http_requests_total",
    (("method", "UNKNOWN"), ("route", "unmatched"), ("status", "400")),
)


def test_plain_http_on_the_tls_port_is_counted(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """Answered 400 tls_required but counted nowhere: the one error code whose series
    stayed at 0 whatever happened."""
    srv = tls_node(server_factory, tmp_path)
    before = scrape(srv)
    assert before[TLS_REQUIRED] == 0
    for _ in range(3):
        answer = plain_http(srv.port)
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"tls_required"' in answer
    after = scrape(srv)
    assert after[TLS_REQUIRED] == 3
    assert after[UNPARSED] - before.get(UNPARSED, 0) == 3


async def test_a_handshake_that_times_out_is_audited_as_a_timeout(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """asyncio aborts a handshake that runs out of time with ConnectionAbortedError,
    which the audit log recorded as the reason instead of the timeout it was."""
    audit_log = tmp_path / "data" / "audit" / "audit.jsonl"  # (where ``audited`` reads)
    srv = tls_node(
        server_factory,
        tmp_path,
        "--tls-handshake-timeout-s",
        "1",
        "--audit-log-path",
        str(audit_log),
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as conn:
        conn.sendall(b"\x16\x03\x01")  # a TLS record begins, and nothing more comes
        started = time.monotonic()
        found = await audited(srv, event="tls_handshake_failed")
        assert time.monotonic() - started >= 0.9
    assert found["reason"] == "handshake timeout", found
