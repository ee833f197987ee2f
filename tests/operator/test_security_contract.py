"""The operator's security material, used by real `vectorizer serve` processes.

Two data-plane processes on 127.0.0.1 get exactly the settings a default
VectorizerCluster gives its pods (``security_settings``) and the files of the Secrets
``plan_security`` generates, at temporary paths instead of the Secret mounts. The
operator's own client drives them the way the reconciler does: to the address, verifying
the pod's DNS name against the cluster CA, with the generated admin key.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.operator.conftest import NS, OPTIONS, make_cluster
from tests.servers import ServerProcess, free_port, start_all
from vectorizer.client import Point, VectorizerClient
from vectorizer_operator import naming, pki
from vectorizer_operator.builders.security import security_settings
from vectorizer_operator.dataplane_client import Access, DataPlaneError, ReplicationClient
from vectorizer_operator.reconcile.cluster import trust_context
from vectorizer_operator.reconcile.security import SecretsSeen, SecurityPlan, plan_security

Json = dict[str, object]
CLUSTER = make_cluster(instances=2)


def pod_fqdn(name: str) -> str:
    return naming.pod_fqdn(CLUSTER.name, NS, name, OPTIONS.cluster_domain)


def write_secrets(plan: SecurityPlan, root: Path) -> None:
    """Each Secret's keys as files, laid out like the pod's mounts."""
    files = {
        naming.tls_secret(CLUSTER.name): ("tls", {}),
        naming.admin_key_secret(CLUSTER.name): ("credentials", {"api-key": "admin-key"}),
        naming.replication_key_secret(CLUSTER.name): (
            "credentials",
            {"api-key": "replication-key"},
        ),
    }
    for manifest in plan.apply:
        name = manifest["metadata"]["name"]
        if name not in files:
            continue
        folder, rename = files[name]
        (root / folder).mkdir(parents=True, exist_ok=True)
        for key, value in manifest["data"].items():
            target = root / folder / rename.get(key, key)
            scratch = target.with_suffix(".new")
            scratch.write_bytes(base64.b64decode(value))
            scratch.replace(target)  # atomically, as the kubelet swaps a Secret


def pod_env(root: Path) -> dict[str, str]:
    env = {}
    for setting, value in security_settings(CLUSTER).items():
        value = value.replace(naming.TLS_MOUNT_PATH, str(root / "tls"))
        value = value.replace(naming.CREDENTIALS_MOUNT_PATH, str(root / "credentials"))
        env[naming.env_name(setting)] = value
    return env


@dataclass
class Secure:
    plan: SecurityPlan
    root: Path
    a: ServerProcess
    b: ServerProcess

    @property
    def key(self) -> str:
        assert self.plan.admin_key is not None
        return self.plan.admin_key

    def access(self, name: str) -> Access:
        assert self.plan.trust is not None
        trust = trust_context(self.plan.trust)
        return Access(api_key=self.key, ssl=trust, server_hostname=pod_fqdn(name))


def start(root: Path, name: str, plan: SecurityPlan) -> ServerProcess:
    port = free_port()
    env = {
        **pod_env(root),
        "VECTORIZER_ROLE": "replica",
        "VECTORIZER_NODE_ID": name,
        # What replicas dial: a name the certificate carries ("localhost").
        "VECTORIZER_ADVERTISE_URL": f"https://localhost:{port}",
    }
    node = ServerProcess(data_dir=root / name, port=port, env=env, ca_file=root / "tls" / "ca.crt")
    node.api_key = plan.admin_key
    return node


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Secure]:
    plan = plan_security(CLUSTER, SecretsSeen(), OPTIONS, now=datetime.now(UTC))
    assert plan.problems == ()
    write_secrets(plan, tmp_path)
    a, b = start(tmp_path, "vz-0", plan), start(tmp_path, "vz-1", plan)
    start_all(a, b)
    yield Secure(plan, tmp_path, a, b)
    a.kill()
    b.kill()


def advertised(node: ServerProcess) -> str:
    return f"https://localhost:{node.port}"


@pytest.mark.timeout(120)
async def test_operator_bootstraps_replication_over_mutual_tls(secure: Secure) -> None:
    a, b = secure.a, secure.b
    client = ReplicationClient(timeout=5)
    try:
        await client.promote(a.url, 1, secure.access("vz-0"))
        await client.follow(b.url, advertised(a), 1, secure.access("vz-1"))
        async with VectorizerClient(
            a.url, api_key=secure.key, ssl=trust_context(secure.plan.trust or b"")
        ) as vz:
            await vz.create_collection("c", dimension=2, index="exact")
            await vz.upsert("c", [Point(i, [float(i), 1.0]) for i in range(20)])
        primary = await client.status(a.url, secure.access("vz-0"))
        for _ in range(150):
            replica = await client.status(b.url, secure.access("vz-1"))
            if replica.connected and replica.sequence == primary.sequence:
                break
            await asyncio.sleep(0.1)
        assert replica.connected and replica.sequence == primary.sequence, b.log()[-2000:]
    finally:
        await client.close()


@pytest.mark.timeout(60)
async def test_the_operator_needs_its_key_and_the_cluster_ca(secure: Secure) -> None:
    client = ReplicationClient(timeout=5)
    try:
        with pytest.raises(DataPlaneError) as err:
            no_key = Access(ssl=secure.access("vz-0").ssl, server_hostname=pod_fqdn("vz-0"))
            await client.status(secure.a.url, no_key)
        assert err.value.code == "unauthenticated"
        with pytest.raises(DataPlaneError) as err:  # the system store does not know our CA
            await client.status(secure.a.url, Access(api_key=secure.key))
        assert err.value.code == "unreachable" and "certificate" in str(err.value).lower()
        with pytest.raises(DataPlaneError) as err:  # a name the certificate does not carry
            wrong = Access(secure.key, secure.access("vz-0").ssl, "vz-0.other.db.svc.cluster.local")
            await client.status(secure.a.url, wrong)
        assert err.value.code == "unreachable"
        with pytest.raises(DataPlaneError):  # plaintext to the HTTPS port
            await client.status(secure.a.url.replace("https", "http"), Access(secure.key))
    finally:
        await client.close()


@pytest.mark.timeout(60)
async def test_a_replication_stream_without_the_cluster_certificate_is_refused(
    secure: Secure,
) -> None:
    replication_key = (secure.root / "credentials" / "replication-key").read_text()
    trust = trust_context(secure.plan.trust or b"")  # verifies the server, presents nothing
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(
                secure.a.url + "/replication/stream",
                headers={"X-API-Key": replication_key},
                ssl=trust,
            )
    assert err.value.status == 401


@pytest.mark.timeout(90)
async def test_a_renewed_certificate_is_served_without_a_restart(secure: Secure) -> None:
    a = secure.a
    pid = a.proc.pid if a.proc else None
    first = served_serial(a.port, secure.plan.trust or b"")
    seen = secrets_seen(secure.plan)
    # Reissued now (a reason other than time, which a live server cannot be moved through:
    # a certificate issued in the future is not valid yet); the renewal timing itself is
    # tested in test_security.py.
    moved = replace(OPTIONS, cluster_domain="renewed.example")
    renewal = plan_security(CLUSTER, seen, moved, now=datetime.now(UTC))
    assert [m["metadata"]["name"] for m in renewal.apply] == ["vz-tls"]
    write_secrets(renewal, secure.root)
    for _ in range(100):
        if served_serial(a.port, secure.plan.trust or b"") != first:
            break
        await asyncio.sleep(0.1)
    assert served_serial(a.port, secure.plan.trust or b"") != first
    assert a.proc is not None and a.proc.pid == pid and a.proc.poll() is None


def secrets_seen(plan: SecurityPlan) -> SecretsSeen:
    roles = {"vz-ca": "ca", "vz-tls": "tls", "vz-admin-key": "admin"}
    roles["vz-replication-key"] = "replication"
    return SecretsSeen(**{roles[m["metadata"]["name"]]: m for m in plan.apply})


def served_serial(port: int, trust: bytes) -> int:
    ctx = ssl.create_default_context(cadata=trust.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    info = pki.inspect(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    assert info is not None
    return info.serial
