"""TLS on real nodes: HTTPS, plaintext refused, certificates reloaded, mTLS for replication."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography import x509

from tests.integration.test_replication import FAST, eventually
from tests.servers import Pki, ServerProcess
from vectorizer.client import Point, VectorizerClient

ADMIN = "tls-test-admin-key-0123456789"
REPLICATION_KEY = "tls-test-replication-key-0123456789"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def audit(srv: ServerProcess) -> list[dict[str, Any]]:
    path = srv.data_dir / "audit" / "audit.jsonl"
    return [orjson.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def audited(srv: ServerProcess, **match: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        found = [x for x in audit(srv) if all(x.get(k) == v for k, v in match.items())]
        return found[-1] if found else None

    return await eventually(check, timeout=15)


def served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number


def tls_args(cert: Path, key: Path, *extra: str) -> list[str]:
    return ["--tls-cert-file", str(cert), "--tls-key-file", str(key), *extra]


def client_ca_args(ca: Path, client_auth: str = "optional") -> list[str]:
    """Verify client certificates against ``ca``; with ``optional``, the replication
    stream requires one."""
    args = ["--tls-client-ca-file", str(ca), "--tls-client-auth", client_auth]
    return args + (["--replication-require-mtls", "true"] if client_auth == "optional" else [])


def replica_cert_args(pair: tuple[Path, Path]) -> list[str]:
    """The client certificate a replica presents to its primary."""
    return ["--replication-tls-cert-file", str(pair[0]), "--replication-tls-key-file", str(pair[1])]


AUTH = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]


async def test_https_plaintext_and_untrusting_clients(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    cert, key = pki.issue("node", dns=["localhost"], ips=["127.0.0.1"])
    srv = server_factory(
        data_dir=tmp_path / "data", args=[*AUTH, *tls_args(cert, key)], ca_file=pki.ca()
    ).start()
    srv.api_key = ADMIN
    assert srv.url.startswith("https://")
    assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201

    async with aiohttp.ClientSession() as s, s.get(srv.url + "/health", ssl=srv.ssl_context()) as r:
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")

    # Plain HTTP to the TLS port: a structured 400, then the connection is closed.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /collections/c/vectors HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    error = orjson.loads(body)
    assert error["error"]["code"] == "tls_required"
    # With a request id and the security headers, as every answer (they were missing).
    lines = head.decode().split("\r\n")[1:]
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
    assert re.fullmatch(r"[0-9a-f]{32}", error["request_id"])
    assert headers["x-request-id"] == error["request_id"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["server"] == "vectorizer"
    assert int(headers["content-length"]) == len(body)
    line = await audited(srv, event="plaintext_on_tls_port")
    assert line["source"] == "127.0.0.1"

    # A client that does not trust the node's CA gives up; the node records the failure.
    async with VectorizerClient(srv.url, api_key=ADMIN) as vz:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await vz.stats()
    await audited(srv, event="tls_handshake_failed")
    assert srv.request("GET", "/collections/c")[0] == 200  # nothing was written
    assert srv.request("GET", "/stats")[1]["sequence"] == 1


async def test_certificates_reload_without_a_restart(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    """Laid out like a mounted Kubernetes Secret: files are links into ..data, swapped whole."""
    secret = tmp_path / "secret"
    secret.mkdir()

    def publish(version: str) -> Path:
        cert, key = pki.issue(f"node-{version}", dns=["localhost"], ips=["127.0.0.1"])
        folder = secret / f"..{version}"
        folder.mkdir()
        os.replace(cert, folder / "tls.crt")
        os.replace(key, folder / "tls.key")
        link = secret / "..data_tmp"
        link.symlink_to(folder.name)
        os.replace(link, secret / "..data")  # the atomic swap kubelet does
        for name in ("tls.crt", "tls.key"):
            if not (secret / name).is_symlink():
                (secret / name).symlink_to(f"..data/{name}")
        return folder / "tls.crt"

    first = publish("v1")
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=[
            *tls_args(secret / "tls.crt", secret / "tls.key"),
            "--tls-reload-interval-s",
            "0.5",
        ],
        ca_file=pki.ca(),
    ).start()
    assert served_serial(srv.port, pki.ca()) == serial_of(first)
    second = publish("v2")
    assert serial_of(second) != serial_of(first)

    async def renewed() -> bool:
        return served_serial(srv.port, pki.ca()) == serial_of(second)

    await eventually(renewed, timeout=10)
    assert srv.request("GET", "/ready")[0] == 200
    assert "TLS certificate reloaded" in srv.log()


async def test_client_certificates_required(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    cert, key = pki.issue("node", ips=["127.0.0.1"])
    client = pki.issue("client")
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=[
            *AUTH,
            *tls_args(cert, key),
            *client_ca_args(pki.ca(), "require"),
        ],
        ca_file=pki.ca(),
        client_cert=client,
    ).start()
    async with VectorizerClient(srv.url, api_key=ADMIN, ca_file=str(pki.ca())) as vz:
        with pytest.raises((OSError, aiohttp.ClientError)):
            await vz.stats()
    line = await audited(srv, event="tls_handshake_failed")
    assert "CERTIFICATE" in line["reason"]
    untrusted = pki.issue("mallory", ca="evil")
    async with VectorizerClient(
        srv.url,
        api_key=ADMIN,
        ca_file=str(pki.ca()),
        cert_file=str(untrusted[0]),
        key_file=str(untrusted[1]),
    ) as vz:
        with pytest.raises((OSError, aiohttp.ClientError)):
            await vz.stats()
    async with VectorizerClient(
        srv.url,
        api_key=ADMIN,
        ca_file=str(pki.ca()),
        cert_file=str(client[0]),
        key_file=str(client[1]),
    ) as vz:
        assert (await vz.stats())["sequence"] == 0


async def test_replication_over_mtls_with_credentials(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    (tmp_path / "replication.key").write_text(REPLICATION_KEY)
    repl = ["--replication-key-file", str(tmp_path / "replication.key")]
    cert, key = pki.issue("primary", ips=["127.0.0.1"])
    primary = server_factory(
        data_dir=tmp_path / "p",
        args=[
            *FAST,
            *AUTH,
            *repl,
            *tls_args(cert, key),
            *client_ca_args(pki.ca()),
        ],
        ca_file=pki.ca(),
    ).start()
    vp = VectorizerClient(primary.url, api_key=ADMIN, ca_file=str(pki.ca()))

    def replica(name: str, *extra: str) -> ServerProcess:
        return server_factory(
            data_dir=tmp_path / name,
            args=[
                *FAST,
                *AUTH,
                "--role",
                "replica",
                "--primary-url",
                primary.url,
                "--node-id",
                name,
                *extra,
            ],
        ).start()

    good_cert = pki.issue("replica-good")
    evil_cert = pki.issue("replica-evil", ca="evil")
    ca = ["--replication-tls-ca-file", str(pki.ca())]
    good = replica(
        "good",
        *repl,
        *ca,
        *replica_cert_args(good_cert),
    )
    evil = replica(
        "evil",
        *repl,
        *ca,
        *replica_cert_args(evil_cert),
    )
    certless = replica("certless", *repl, *ca)
    keyless = replica("keyless", *ca, *replica_cert_args(good_cert))
    clients = {
        n: VectorizerClient(s.url, api_key=ADMIN)
        for n, s in (("good", good), ("evil", evil), ("certless", certless), ("keyless", keyless))
    }
    try:
        await vp.create_collection("c", 4)
        await vp.upsert("c", [Point(i, [float(i), 1, 2, 3]) for i in range(20)])
        _, viewer = await vp.create_key("reader", "viewer")

        async def caught_up() -> bool:
            st = await clients["good"].replication_status()
            return bool(st["sequence"] == (await vp.replication_status())["sequence"])

        await eventually(caught_up)
        assert await clients["good"].count("c") == 20

        # The primary's keys reach the replica (hashes only): the viewer key works there.
        async def key_arrived() -> bool:
            async with VectorizerClient(good.url, api_key=viewer) as vz:
                return (await vz.whoami())["role"] == "viewer"

        await eventually(key_arrived)
        keys_file = (tmp_path / "good" / "security" / "keys.json").read_text()
        assert viewer not in keys_file

        # An untrusted certificate, no certificate, no credential: each refused and audited.
        await audited(primary, event="tls_handshake_failed")
        line = await audited(
            primary,
            event="authentication_failed",
            route="/replication/stream",
            reason="no verified client certificate",
        )
        assert line["status"] == 401
        line = await audited(
            primary,
            event="authentication_failed",
            route="/replication/stream",
            reason="certificate name not accepted",
        )
        assert line["status"] == 401
        for name in ("evil", "certless", "keyless"):
            st = await clients[name].replication_status()
            assert st["sequence"] == 0 and not st["connected"], (name, st)
            assert await clients[name].list_collections() == []
        reps = await vp.replicas()
        assert [r["id"] for r in reps] == ["good"]
    finally:
        await vp.close()
        for c in clients.values():
            await c.close()


async def test_a_certificate_can_be_the_replication_identity(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    cert, key = pki.issue("primary", ips=["127.0.0.1"])
    primary = server_factory(
        data_dir=tmp_path / "p",
        args=[
            *FAST,
            *AUTH,
            *tls_args(cert, key),
            *client_ca_args(pki.ca()),
            "--replication-cert-names",
            "vectorizer-replica",
        ],
        ca_file=pki.ca(),
    ).start()
    # The replica serves HTTPS itself and reuses its own certificate as its client cert.
    rcert, rkey = pki.issue("vectorizer-replica", ips=["127.0.0.1"])
    replica = server_factory(
        data_dir=tmp_path / "r",
        args=[
            *FAST,
            *AUTH,
            *tls_args(rcert, rkey),
            "--tls-client-ca-file",
            str(pki.ca()),
            "--role",
            "replica",
            "--primary-url",
            primary.url,
            "--node-id",
            "r",
        ],
        ca_file=pki.ca(),
    ).start()
    async with (
        VectorizerClient(primary.url, api_key=ADMIN, ca_file=str(pki.ca())) as vp,
        VectorizerClient(replica.url, api_key=ADMIN, ca_file=str(pki.ca())) as vr,
    ):
        await vp.create_collection("c", 4)
        await vp.upsert("c", [Point(1, [1.0, 0, 0, 0])])

        async def caught_up() -> bool:
            return bool((await vr.replication_status())["sequence"] == 2)

        await eventually(caught_up)
        st = await vr.replication_status()
        assert st["address"].startswith("https://")
    line = await audited(primary, event="stream_opened", route="/replication/stream")
    assert line["principal"] == "cert:vectorizer-replica" and line["role"] == "replication"


def hold(port: int, source: str, n: int, first: bytes = b"") -> list[socket.socket]:
    """``n`` connections from ``source`` that send ``first`` (by default nothing), then
    nothing more, as a client starving the listener would."""
    held = []
    for _ in range(n):
        sock = socket.socket()
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        if first:
            sock.sendall(first)
        held.append(sock)
    return held


def closed_by_node(held: list[socket.socket]) -> int:
    """How many of ``held`` the node has closed (EOF or reset waiting to be read)."""
    gone = 0
    for sock in held:
        sock.setblocking(False)
        try:
            gone += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            gone += 1
    return gone


def health_within(srv: ServerProcess, source: str, seconds: float) -> None:
    """``GET /health`` over HTTPS from ``source`` is answered, and in time."""
    began = time.monotonic()
    assert srv.request("GET", "/health", source=source)[0] == 200
    took = time.monotonic() - began
    assert took < seconds, f"/health from {source} took {took:.1f}s"


async def test_a_client_holding_silent_connections_keeps_no_one_out(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki
) -> None:
    """600 connections from one address that never send a byte (more than the 512 the
    listener takes into their handshake at once): before, every other client was refused
    for as long as they were held. Now that address keeps 128 (a newer one replaces its
    oldest silent one), each dropped after 3 s of silence, and audited."""
    cert, key = pki.issue("node", dns=["localhost"], ips=["127.0.0.1"])
    srv = server_factory(
        data_dir=tmp_path / "data", args=[*AUTH, *tls_args(cert, key)], ca_file=pki.ca()
    ).start()
    held = hold(srv.port, "127.0.0.1", 600)
    opened = time.monotonic()
    try:
        health_within(srv, "127.0.0.2", 5)  # another address
        health_within(srv, "127.0.0.1", 5)  # and the same one: a silent one makes room

        # All but the 128 newest were closed at once; those after 3 s of silence, not 10.
        async def all_closed() -> bool:
            return closed_by_node(held) == len(held)

        await eventually(all_closed, timeout=9)
        assert time.monotonic() - opened < 7
    finally:
        for sock in held:
            sock.close()

    async def dropped_and_audited() -> list[dict[str, Any]]:
        return [
            x
            for x in audit(srv)
            if x["event"] == "tls_handshake_failed" and "sent nothing" in x["reason"]
        ]

    lines = await eventually(dropped_and_audited, timeout=10)
    assert {x["source"] for x in lines} == {"127.0.0.1"}

    async def summarized() -> bool:
        return "TLS connections refused or dropped" in srv.log()

    await eventually(summarized, timeout=10)  # one summary, not a line per connection
    assert srv.log().count("TLS connections refused or dropped") <= 3


@pytest.mark.parametrize("first", [b"", b"\x16"], ids=["silent", "stalled-handshake"])
async def test_many_addresses_holding_connections_keep_no_one_out(
    server_factory: type[ServerProcess], tmp_path: Path, pki: Pki, first: bytes
) -> None:
    """540 connections from 9 addresses (60 each, under the per-address cap), silent or
    stalled after the first byte of a handshake: the listener is full, and a newcomer
    takes the place of the connection silent longest (else of the oldest of the
    address holding the most) instead of being refused."""
    cert, key = pki.issue("node", dns=["localhost"], ips=["127.0.0.1"])
    srv = server_factory(
        data_dir=tmp_path / "data", args=tls_args(cert, key), ca_file=pki.ca()
    ).start()
    held = [sock for i in range(10, 19) for sock in hold(srv.port, f"127.0.0.{i}", 60, first)]
    try:
        await asyncio.sleep(0.3)  # (all accepted)
        for _ in range(3):
            health_within(srv, "127.0.0.2", 5)
        assert closed_by_node(held) >= 3
    finally:
        for sock in held:
            sock.close()
