"""TLS and credentials end to end: what a default VectorizerCluster gets without asking.

The operator generates a CA, a server certificate and two API keys into Secrets, and
the pods serve HTTPS with them: the certificate verifies against the generated CA for
every pod and Service name, plaintext and unauthenticated calls are refused, replication
runs over mutual TLS, and a reissued certificate reaches the pods without a restart.

On the local cluster the checks connect to pod IPs from this host; on an external one
(kind) pod IPs are not routable from the host, so they run inside a pod with kubectl exec.
"""

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from cryptography import x509

from e2e.harness.cluster import E2ECluster
from e2e.harness.kube import JsonDict, Kube, KubeError, path
from e2e.harness.waiting import eventually
from e2e.operator_fixtures import Kubectl, Operator, wait_established
from e2e.vzc import (
    COLLECTION,
    DIMENSION,
    PORT,
    Ledger,
    Nodes,
    live_pods,
    manifest,
    pod_fqdn,
    primary_endpoint,
    wait_all_data,
    wait_healthy,
    write_through_rw,
)
from vectorizer_operator import pki

NAME = "secure"
LEDGER = Ledger()

pytestmark = pytest.mark.timeout(300)

# Runs inside a data-plane pod (external clusters): verifies <host>:<port> against the
# mounted CA bundle and prints the serial the server presented.
IN_POD_CHECK = """
import socket, ssl, sys
ctx = ssl.create_default_context(cafile="/etc/vectorizer/tls/ca.crt")
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[1]) as tls:
        from cryptography import x509
        print(x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number)
"""


@pytest.fixture
async def nodes(
    e2e_cluster: E2ECluster, kube: Kube, module_namespace: str, operator: Operator
) -> AsyncIterator[Nodes]:
    del operator
    yield Nodes(e2e_cluster, kube, module_namespace)


async def secret_value(kube: Kube, ns: str, name: str, key: str) -> bytes:
    secret = await kube.get(path("secrets", ns, name))
    return base64.b64decode(secret["data"][key])


def handshake(ip: str, hostname: str, trust: ssl.SSLContext) -> int:
    """The serial of the certificate ``ip`` presents, verified for ``hostname``."""
    with (
        socket.create_connection((ip, PORT), timeout=5) as raw,
        trust.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


async def served_serial(
    nodes: Nodes, kubectl: Kubectl, pod: JsonDict, hostname: str, trust: ssl.SSLContext
) -> int:
    if nodes.cluster.local:
        return await asyncio.to_thread(handshake, str(pod["status"]["podIP"]), hostname, trust)
    name = str(pod["metadata"]["name"])
    out = kubectl.run(
        "exec", "-n", nodes.namespace, name, "--", "python", "-c", IN_POD_CHECK, hostname, str(PORT)
    ).stdout
    return int(out.strip())


async def test_a_default_cluster_serves_tls_that_verifies_against_the_generated_ca(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    ns = nodes.namespace
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(manifest(NAME, 2)))
    await wait_healthy(kube, nodes, NAME, 2, limit=180.0)

    ca = await secret_value(kube, ns, f"{NAME}-ca", "ca.crt")
    assert await secret_value(kube, ns, f"{NAME}-tls", "ca.crt") == ca
    trust = ssl.create_default_context(cadata=ca.decode())
    pods = await live_pods(kube, ns, NAME)
    for pod in pods:
        fqdn = pod_fqdn(NAME, ns, str(pod["metadata"]["name"]))
        assert await served_serial(nodes, kubectl, pod, fqdn, trust) > 0
        # The Service names are on the same certificate.
        assert await served_serial(nodes, kubectl, pod, f"{NAME}-rw.{ns}.svc", trust) > 0

    if not nodes.cluster.local:
        return  # the refusals below need the pod network, as the local cluster has it
    ip = str(pods[0]["status"]["podIP"])
    fqdn = pod_fqdn(NAME, ns, str(pods[0]["metadata"]["name"]))
    with pytest.raises(ssl.SSLCertVerificationError):  # the system store knows no such CA
        await asyncio.to_thread(handshake, ip, fqdn, ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):  # a name the certificate lacks
        await asyncio.to_thread(handshake, ip, f"{NAME}-rw.elsewhere.svc", trust)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        # Plaintext to the HTTPS port: refused with a structured error, never served.
        async with http.get(f"http://{ip}:{PORT}/collections") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "tls_required"
        # Liveness needs no credentials; data does.
        url = f"https://{ip}:{PORT}"
        async with http.get(f"{url}/health", ssl=trust, server_hostname=fqdn) as response:
            assert response.status == 200
        async with http.get(f"{url}/collections", ssl=trust, server_hostname=fqdn) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthenticated"
        wrong = {"X-API-Key": "not-the-admin-key-at-all"}
        async with http.get(
            f"{url}/collections", ssl=trust, server_hostname=fqdn, headers=wrong
        ) as response:
            assert response.status == 401


async def test_writes_replicate_over_mutual_tls_with_the_generated_keys(
    kube: Kube, nodes: Nodes
) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 2)
    ep = await primary_endpoint(kube, ns, NAME)
    async with nodes.client(ep.pod, ep.ip, ep.port) as vz:
        await vz.create_collection(COLLECTION, dimension=DIMENSION, index="exact")
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(50))
    pods = [str(p["metadata"]["name"]) for p in await live_pods(kube, ns, NAME)]
    await wait_all_data(nodes, pods, LEDGER.ids)


async def test_a_reissued_certificate_reaches_the_pods_without_a_restart(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 2)
    trust = ssl.create_default_context(
        cadata=(await secret_value(kube, ns, f"{NAME}-ca", "ca.crt")).decode()
    )
    pods = await live_pods(kube, ns, NAME)
    before = {
        str(p["metadata"]["name"]): (
            str(p["metadata"]["uid"]),
            await served_serial(nodes, kubectl, p, f"{NAME}-r", trust),
        )
        for p in pods
    }
    old = await secret_value(kube, ns, f"{NAME}-tls", "tls.crt")
    kubectl.run("delete", "secret", f"{NAME}-tls", "-n", ns)

    async def reissued() -> bool:
        try:
            return await secret_value(kube, ns, f"{NAME}-tls", "tls.crt") != old
        except Exception:  # noqa: BLE001 - not there yet
            return False

    await eventually(reissued, "the operator reissues the server certificate", limit=60.0)
    for name, (uid, serial) in before.items():

        async def renewed(name: str = name, serial: int = serial) -> bool:
            pod = await kube.get(path("pods", ns, name))
            return await served_serial(nodes, kubectl, pod, f"{NAME}-r", trust) != serial

        # The kubelet rewrites the mounted Secret, the data plane reloads it.
        await eventually(renewed, f"{name} serves the new certificate", limit=90.0, interval=1.0)
        pod = await kube.get(path("pods", ns, name))
        assert pod["metadata"]["uid"] == uid
        restarts = [c.get("restartCount", 0) for c in pod["status"]["containerStatuses"]]
        assert restarts == [0], restarts
    # And replication still verifies (the replica reconnects with the new certificate).
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(20))
    await wait_all_data(nodes, list(before), LEDGER.ids)


# ---- the alternatives to the generated CA ----------------------------------------------

CERT_MANAGER_CRD: JsonDict = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {
        "group": "cert-manager.io",
        "names": {
            "kind": "Certificate",
            "listKind": "CertificateList",
            "plural": "certificates",
            "singular": "certificate",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def tls_secret(name: str, ca: pki.KeyPair, dns_names: list[str]) -> JsonDict:
    """A kubernetes.io/tls Secret as cert-manager (or a platform team) would write it."""
    now = datetime.now(UTC)
    pair = pki.issue(
        ca, common_name=dns_names[0], dns_names=dns_names, now=now, validity=timedelta(days=30)
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": encode(pair.cert_pem),
            "tls.key": encode(pair.key_pem),
            "ca.crt": encode(ca.cert_pem),
        },
    }


async def serves_cert_of(
    kube: Kube, kubectl: Kubectl, nodes: Nodes, name: str, ca: pki.KeyPair
) -> None:
    await wait_healthy(kube, nodes, name, 1, limit=120.0)
    trust = ssl.create_default_context(cadata=ca.cert_pem.decode())
    [pod] = await live_pods(kube, nodes.namespace, name)
    fqdn = pod_fqdn(name, nodes.namespace, str(pod["metadata"]["name"]))
    assert await served_serial(nodes, kubectl, pod, fqdn, trust) > 0


async def test_a_user_secret_is_served_as_it_is(kube: Kube, kubectl: Kubectl, nodes: Nodes) -> None:
    ns, name = nodes.namespace, "byo"
    ca = pki.new_ca("platform team CA", now=datetime.now(UTC), validity=timedelta(days=365))
    names = [f"*.{name}-headless.{ns}.svc.cluster.local", f"{name}-r.{ns}.svc"]
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(tls_secret("byo-cert", ca, names)))
    spec = manifest(name, 1, tls={"secretName": "byo-cert"})
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(spec))
    await serves_cert_of(kube, kubectl, nodes, name, ca)
    secrets = {s["metadata"]["name"] for s in (await kube.get(path("secrets", ns)))["items"]}
    assert f"{name}-ca" not in secrets and f"{name}-tls" not in secrets  # nothing generated
    kubectl.run("delete", "vzc", name, "-n", ns, "--wait=false")


async def test_cert_manager_issues_when_installed(
    kube: Kube, kubectl: Kubectl, nodes: Nodes, operator: Operator
) -> None:
    """cert-manager's controller is not here: the test issues what its Certificate asks for."""
    ns, name = nodes.namespace, "issued"
    kubectl.run("apply", "-f", "-", stdin=json.dumps(CERT_MANAGER_CRD))
    try:
        wait_established(kubectl, "certificates.cert-manager.io")
        operator.kill()  # discovery is cached for minutes: a restart notices the CRD at once
        operator.restart()
        spec = manifest(
            name, 1, tls={"certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}}
        )
        kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(spec))

        async def certificate() -> JsonDict | None:
            try:  # a new CRD's storage answers 429 for a moment
                listing = await kube.get(
                    path("certificates", ns, group="cert-manager.io", version="v1")
                )
            except KubeError:
                return None
            found = [c for c in listing["items"] if c["metadata"]["name"] == f"{name}-tls"]
            return found[0] if found else None

        cert = await eventually(certificate, "the operator creates the Certificate", limit=60.0)
        wanted = cert["spec"]
        assert wanted["secretName"] == f"{name}-tls"
        assert wanted["issuerRef"] == {
            "name": "corp",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        }
        assert f"*.{name}-headless.{ns}.svc.cluster.local" in wanted["dnsNames"]
        ca = pki.new_ca("corp issuer", now=datetime.now(UTC), validity=timedelta(days=365))
        issued = tls_secret(wanted["secretName"], ca, list(wanted["dnsNames"]))
        kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(issued))
        await serves_cert_of(kube, kubectl, nodes, name, ca)
        kubectl.run("delete", "vzc", name, "-n", ns, "--wait=false")
    finally:
        kubectl.run("delete", "crd", "certificates.cert-manager.io", "--wait=false", check=False)
