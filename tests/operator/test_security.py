"""Certificates, keys and their wiring: pki, plan_security, the pod template, the reconciler."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import NS, OPTIONS, make_cluster
from tests.operator.fakes import Sim
from vectorizer_operator import naming, pki
from vectorizer_operator.builders.monitoring import build_pod_monitor
from vectorizer_operator.builders.security import security_settings
from vectorizer_operator.builders.statefulset import build_statefulset
from vectorizer_operator.model import Cluster, SpecError
from vectorizer_operator.reconcile.security import (
    PREVIOUS_CA_KEY,
    SecretsSeen,
    SecurityPlan,
    plan_security,
    secret_value,
)

Json = dict[str, Any]
NOW = datetime(2030, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def stored(plan: SecurityPlan, seen: SecretsSeen | None = None, uid: str = "uid-vz") -> SecretsSeen:
    """The Secrets as the API server would hold them after ``plan`` was applied."""
    roles = {
        naming.ca_secret("vz"): "ca",
        naming.tls_secret("vz"): "tls",
        naming.admin_key_secret("vz"): "admin",
        naming.replication_key_secret("vz"): "replication",
    }
    now = dict(vars(seen)) if seen else {}
    for manifest in plan.apply:
        if manifest["kind"] == "Secret":
            assert manifest["metadata"]["ownerReferences"][0]["uid"] == uid
            now[roles[manifest["metadata"]["name"]]] = manifest
    return SecretsSeen(**now)


def applied(plan: SecurityPlan) -> list[str]:
    return [m["metadata"]["name"] for m in plan.apply]


def fresh(cluster: Cluster | None = None, at: datetime = NOW) -> tuple[SecurityPlan, SecretsSeen]:
    plan = plan_security(cluster or make_cluster(), SecretsSeen(), OPTIONS, now=at)
    return plan, stored(plan)


def data(seen: SecretsSeen, role: str, key: str) -> bytes:
    value = secret_value(getattr(seen, role), key)
    assert value is not None
    return value


# ---- pki --------------------------------------------------------------------------------


def serve_once(pair: pki.KeyPair, tmp: Path) -> tuple[int, threading.Thread]:
    """A TLS server on 127.0.0.1 presenting ``pair`` to one client."""
    (tmp / "c.pem").write_bytes(pair.cert_pem)
    (tmp / "k.pem").write_bytes(pair.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def accept() -> None:
        conn, _ = sock.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
        finally:
            sock.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return port, thread


def handshake(port: int, bundle: bytes, hostname: str) -> None:
    ctx = ssl.create_default_context(cadata=bundle.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(b"x")


def test_server_certificate_verifies_for_every_pod_and_service_name(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = pki.new_ca("test CA", now=now, validity=30 * DAY)
    names = naming.server_dns_names("vz", NS, "cluster.local")
    pair = pki.issue(ca, common_name="vz-r", dns_names=names, now=now, validity=10 * DAY)
    for host in ("vz-7.vz-headless.db.svc.cluster.local", "vz-rw.db.svc", "vz-r"):
        port, thread = serve_once(pair, tmp_path)
        handshake(port, ca.cert_pem, host)
        thread.join(5)
    port, thread = serve_once(pair, tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, ca.cert_pem, "other-rw.db.svc")  # a name it does not carry
    thread.join(5)
    other = pki.new_ca("other", now=now, validity=30 * DAY)
    port, thread = serve_once(pair, tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, other.cert_pem, "vz-r")  # an untrusted CA
    thread.join(5)


def test_issued_certificates_serve_and_authenticate_clients_and_never_outlive_the_ca() -> None:
    ca = pki.new_ca("ca", now=NOW, validity=10 * DAY)
    pair = pki.issue(ca, common_name="x", dns_names=["x"], now=NOW, validity=90 * DAY)
    info = pki.inspect(pair.cert_pem)
    ca_info = pki.inspect(ca.cert_pem)
    assert info is not None and ca_info is not None
    assert ca_info.is_ca and not info.is_ca
    assert info.not_after == ca_info.not_after
    assert pki.signed_by(pair.cert_pem, ca.cert_pem)
    assert not pki.signed_by(ca.cert_pem, pair.cert_pem)
    assert pki.key_matches(pair)
    assert not pki.key_matches(pki.KeyPair(pair.cert_pem, ca.key_pem))
    assert pki.inspect(b"garbage") is None
    assert pki.split_bundle(pair.cert_pem + ca.cert_pem) == [pair.cert_pem, ca.cert_pem]


# ---- plan_security ----------------------------------------------------------------------


def test_a_new_cluster_gets_a_ca_a_server_certificate_and_two_keys() -> None:
    plan, seen = fresh()
    assert applied(plan) == ["vz-ca", "vz-tls", "vz-admin-key", "vz-replication-key"]
    assert plan.problems == ()
    tls = seen.tls
    assert tls is not None and tls["type"] == "kubernetes.io/tls"
    ca = data(seen, "ca", "ca.crt")
    assert plan.trust == ca == data(seen, "tls", "ca.crt")
    assert pki.signed_by(data(seen, "tls", "tls.crt"), ca)
    info = pki.inspect(data(seen, "tls", "tls.crt"))
    assert info is not None and info.not_after - NOW == 90 * DAY
    assert naming.ANNOTATION_NOT_AFTER in tls["metadata"]["annotations"]
    admin = data(seen, "admin", "api-key").decode()
    replication = data(seen, "replication", "api-key").decode()
    assert plan.admin_key == admin and len(admin) >= 32 and admin != replication


def test_valid_material_is_kept_as_it_is() -> None:
    first, seen = fresh()
    again = plan_security(make_cluster(), seen, OPTIONS, now=NOW + 10 * DAY)
    assert again.apply == () and again.problems == ()
    assert again.trust == first.trust and again.admin_key == first.admin_key


def test_the_server_certificate_is_renewed_before_it_expires_with_the_same_ca() -> None:
    _, seen = fresh()
    before = pki.inspect(data(seen, "tls", "tls.crt"))
    assert before is not None
    due = before.not_after - 30 * DAY  # renewBeforeDays
    assert plan_security(make_cluster(), seen, OPTIONS, now=due - DAY).apply == ()
    plan = plan_security(make_cluster(), seen, OPTIONS, now=due)
    assert applied(plan) == ["vz-tls"]
    assert "expires at" in plan.issued[0]
    renewed = stored(plan, seen)
    after = pki.inspect(data(renewed, "tls", "tls.crt"))
    assert (
        after is not None and after.serial != before.serial and after.not_after > before.not_after
    )
    assert data(renewed, "tls", "ca.crt") == data(seen, "ca", "ca.crt")


def test_renewal_leaves_the_pod_template_alone() -> None:
    cluster = make_cluster(instances=3)
    before = build_statefulset(cluster, OPTIONS, replicas=3)["spec"]["template"]
    _, seen = fresh(cluster)
    plan_security(cluster, seen, OPTIONS, now=NOW + 80 * DAY)
    assert build_statefulset(cluster, OPTIONS, replicas=3)["spec"]["template"] == before


def test_the_ca_is_rotated_early_and_the_old_one_stays_trusted_until_it_expires() -> None:
    _, seen = fresh()
    old_ca = data(seen, "ca", "ca.crt")
    ca_info = pki.inspect(old_ca)
    assert ca_info is not None
    rotate_at = ca_info.not_after - 90 * DAY  # validityDays left: a full-length cert still fits
    plan = plan_security(make_cluster(), seen, OPTIONS, now=rotate_at)
    assert applied(plan) == ["vz-ca", "vz-tls"]
    rotated = stored(plan, seen)
    new_ca = data(rotated, "ca", "ca.crt")
    assert new_ca != old_ca and data(rotated, "ca", PREVIOUS_CA_KEY) == old_ca
    bundle = data(rotated, "tls", "ca.crt")
    assert pki.split_bundle(bundle) == [new_ca, old_ca] and plan.trust == bundle
    assert pki.signed_by(data(rotated, "tls", "tls.crt"), new_ca)
    # Stable while both are valid; once the old CA expired it leaves the bundle.
    assert plan_security(make_cluster(), rotated, OPTIONS, now=rotate_at + DAY).apply == ()
    later = plan_security(make_cluster(), rotated, OPTIONS, now=ca_info.not_after + DAY)
    assert applied(later) == ["vz-tls"] and later.trust == new_ca


def test_a_torn_or_foreign_certificate_is_reissued() -> None:
    _, seen = fresh()
    assert seen.tls is not None and seen.ca is not None
    torn = {**seen.tls, "data": {**seen.tls["data"], "tls.key": seen.ca["data"]["ca.key"]}}
    plan = plan_security(
        make_cluster(), SecretsSeen(seen.ca, torn, seen.admin, seen.replication), OPTIONS, now=NOW
    )
    assert applied(plan) == ["vz-tls"] and "missing or unreadable" in plan.issued[0]
    _, other = fresh()
    plan = plan_security(
        make_cluster(),
        SecretsSeen(seen.ca, other.tls, seen.admin, seen.replication),
        OPTIONS,
        now=NOW,
    )
    assert applied(plan) == ["vz-tls"] and "not signed by the current CA" in plan.issued[0]


def test_new_names_reissue_the_certificate() -> None:
    _, seen = fresh()
    options = type(OPTIONS)(default_image="x", cluster_domain="corp.example")
    plan = plan_security(make_cluster(), seen, options, now=NOW)
    assert applied(plan) == ["vz-tls"] and "names changed" in plan.issued[0]
    info = pki.inspect(data(stored(plan, seen), "tls", "tls.crt"))
    assert info is not None and "*.vz-headless.db.svc.corp.example" in info.dns_names


def test_secrets_we_do_not_own_are_reported_never_overwritten() -> None:
    _, seen = fresh()
    assert seen.tls is not None
    foreign = {**seen.tls, "metadata": {"name": "vz-tls"}, "data": {"tls.crt": "bm90IGEgY2VydA=="}}
    plan = plan_security(
        make_cluster(),
        SecretsSeen(seen.ca, foreign, seen.admin, seen.replication),
        OPTIONS,
        now=NOW,
    )
    assert plan.apply == ()
    assert plan.problems == (
        "Secret vz-tls (server certificate) exists, is not valid and is not managed by this "
        "cluster: fix or delete it",
    )


def test_a_valid_key_the_user_put_at_the_generated_name_is_used() -> None:
    mine = {
        "metadata": {"name": "vz-admin-key"},
        "data": {"api-key": base64.b64encode(b"my-own-admin-key-123").decode()},
    }
    plan = plan_security(make_cluster(), SecretsSeen(admin=mine), OPTIONS, now=NOW)
    assert plan.admin_key == "my-own-admin-key-123"
    assert "vz-admin-key" not in applied(plan)
    short = {"metadata": {"name": "vz-admin-key"}, "data": {"api-key": "c2hvcnQ="}}
    plan = plan_security(make_cluster(), SecretsSeen(admin=short), OPTIONS, now=NOW)
    assert plan.admin_key is None and "vz-admin-key (admin API key)" in plan.problems[0]


def test_user_provided_admin_key_and_tls_secret() -> None:
    cluster = make_cluster(
        tls={"secretName": "my-tls"}, auth={"adminKeySecret": {"name": "ops", "key": "admin"}}
    )
    ca = pki.new_ca("mine", now=NOW, validity=100 * DAY)
    secret = {
        "metadata": {"name": "my-tls"},
        "data": {"ca.crt": base64.b64encode(ca.cert_pem).decode()},
    }
    key = {"metadata": {"name": "ops"}, "data": {"admin": base64.b64encode(b"x" * 20).decode()}}
    plan = plan_security(cluster, SecretsSeen(tls=secret, admin=key), OPTIONS, now=NOW)
    assert applied(plan) == ["vz-replication-key"]  # nothing of the user's is written
    assert plan.trust == ca.cert_pem and plan.admin_key == "x" * 20 and plan.problems == ()
    plan = plan_security(cluster, SecretsSeen(), OPTIONS, now=NOW)
    assert plan.trust is None and plan.admin_key is None
    assert plan.problems == (
        "spec.tls.secretName: Secret my-tls does not exist (yet)",
        "spec.auth.adminKeySecret: Secret ops has no key admin of at least 16 characters",
    )
    mounted = build_statefulset(cluster, OPTIONS, replicas=1)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in mounted["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "my-tls"
    sources = volumes["credentials"]["projected"]["sources"]
    assert sources[0] == {
        "secret": {"name": "ops", "items": [{"key": "admin", "path": "admin-key"}]}
    }


def test_cert_manager_issues_into_the_tls_secret_when_installed() -> None:
    cluster = make_cluster(
        tls={"certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}}
    )
    plan = plan_security(cluster, SecretsSeen(), OPTIONS, now=NOW)
    assert "install cert-manager" in plan.problems[0] and "vz-tls" not in applied(plan)
    plan = plan_security(cluster, SecretsSeen(), OPTIONS, now=NOW, cert_manager_served=True)
    [certificate] = [m for m in plan.apply if m["kind"] == "Certificate"]
    spec = certificate["spec"]
    assert spec["secretName"] == "vz-tls" and spec["duration"] == "2160h"
    assert spec["renewBefore"] == "720h" and "client auth" in spec["usages"]
    assert spec["issuerRef"] == {
        "name": "corp",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert set(spec["dnsNames"]) == set(naming.server_dns_names("vz", NS, "cluster.local"))
    assert "vz-ca" not in applied(plan)
    # Turned back to generated certificates: the Certificate goes (it would keep writing).
    back = plan_security(make_cluster(), SecretsSeen(), OPTIONS, now=NOW, cert_manager_served=True)
    assert [r.kind for r in back.remove] == ["Certificate"]


def test_everything_off_means_no_secrets_plain_http_and_no_mounts() -> None:
    cluster = make_cluster(tls={"enabled": False}, auth={"enabled": False})
    plan = plan_security(cluster, SecretsSeen(), OPTIONS, now=NOW)
    assert plan == SecurityPlan()
    assert security_settings(cluster) == {}
    pod = build_statefulset(cluster, OPTIONS, replicas=1)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VECTORIZER_ADVERTISE_URL"].startswith("http://")
    monitor = build_pod_monitor(cluster)
    assert monitor is not None and "tlsConfig" not in monitor["spec"]["podMetricsEndpoints"][0]


def test_default_pods_serve_https_with_auth_and_replication_mtls() -> None:
    cluster = make_cluster()
    assert security_settings(cluster) == {
        "tls_cert_file": "/etc/vectorizer/tls/tls.crt",
        "tls_key_file": "/etc/vectorizer/tls/tls.key",
        "replication_tls_ca_file": "/etc/vectorizer/tls/ca.crt",
        "tls_client_ca_file": "/etc/vectorizer/tls/ca.crt",
        "tls_client_auth": "optional",
        "replication_require_mtls": "true",
        "auth_enabled": "true",
        "auth_admin_key_file": "/etc/vectorizer/credentials/admin-key",
        "replication_key_file": "/etc/vectorizer/credentials/replication-key",
    }
    monitor = build_pod_monitor(cluster)
    assert monitor is not None
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"] == {"secret": {"name": "vz-tls", "key": "ca.crt"}}
    assert endpoint["tlsConfig"]["serverName"] == f"vz-r.{NS}.svc"


def test_jwt_keys_are_mounted_from_their_secrets() -> None:
    cluster = make_cluster(
        auth={"jwtSecret": {"name": "jwt", "key": "hs"}, "jwtPublicKeySecret": {"name": "pub"}}
    )
    settings = security_settings(cluster)
    assert settings["jwt_hs256_secret_file"] == "/etc/vectorizer/credentials/jwt-hs256-secret"
    assert settings["jwt_public_key_file"] == "/etc/vectorizer/credentials/jwt-public-key.pem"
    pod = build_statefulset(cluster, OPTIONS, replicas=1)["spec"]["template"]["spec"]
    [creds] = [v for v in pod["volumes"] if v["name"] == "credentials"]
    names = [s["secret"]["name"] for s in creds["projected"]["sources"]]
    assert names == ["vz-admin-key", "vz-replication-key", "jwt", "pub"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"tls": {"secretName": "a", "certManager": {"issuerRef": {"name": "b"}}}},
            "spec.tls.secretName: give secretName or certManager, not both",
        ),
        (
            {"tls": {"validityDays": 10, "renewBeforeDays": 10}},
            "spec.tls.renewBeforeDays: must be lower than validityDays",
        ),
        (
            {"tls": {"validityDays": 3650}},  # (the CA's default: renewed at every pass)
            "spec.tls.validityDays: must be lower than caValidityDays",
        ),
        (
            {"tls": {"validityDays": 60, "caValidityDays": 30}},
            "spec.tls.validityDays: must be lower than caValidityDays",
        ),
        (
            {"config": {"auth_enabled": False}},
            "spec.config.auth_enabled: is set by the operator from spec.tls and spec.auth",
        ),
        (
            {"config": {"tls_cert_file": "/x"}},
            "spec.config.tls_cert_file: is set by the operator from spec.tls and spec.auth",
        ),
    ],
)
def test_invalid_security_specs_name_their_field(spec: Json, message: str) -> None:
    with pytest.raises(SpecError) as err:
        make_cluster(**spec)
    assert str(err.value) == message


# ---- the reconciler -----------------------------------------------------------------------


async def test_the_operator_calls_nodes_over_https_with_the_admin_key() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    admin = sim.kube.find("v1", "Secret", "vz-admin-key")
    assert admin is not None
    key = base64.b64decode(admin["data"]["api-key"]).decode()
    url, access = sim.dp.accesses[-1]
    assert url.startswith("https://10.0.0.")
    assert access.api_key == key and access.ssl is not None
    assert access.server_hostname is not None
    assert access.server_hostname.endswith(".vz-headless.db.svc.cluster.local")
    # Replicas follow the primary at its https URL.
    assert all(p.startswith("https://vz-") for _, p in sim.dp.of("follow"))
    events = [reason for _, reason, _ in sim.kube.events]
    assert events.count("SecretIssued") == 4


async def test_a_due_certificate_is_renewed_without_touching_the_pods() -> None:
    sim = Sim(instances=2)
    await sim.settle()
    before = sim.kube.find("v1", "Secret", "vz-tls")
    pods = {p["metadata"]["uid"] for p in sim.pods()}
    assert before is not None
    sim.wall += timedelta(days=61)  # validity 90, renew 30 days early
    await sim.settle()
    after = sim.kube.find("v1", "Secret", "vz-tls")
    assert after is not None and after["data"]["tls.crt"] != before["data"]["tls.crt"]
    assert {p["metadata"]["uid"] for p in sim.pods()} == pods  # no pod was replaced


async def test_turning_tls_on_rolls_the_pods_and_keeps_replicas_following() -> None:
    sim = Sim(instances=3, tls={"enabled": False}, auth={"enabled": False})
    await sim.settle()
    assert all(u.startswith("http://") for u, _ in sim.dp.accesses)
    assert all(a.api_key is None for _, a in sim.dp.accesses)
    sim.edit_spec(tls={"enabled": True})
    await sim.settle(80)
    primary = sim.status["currentPrimary"]
    for ordinal in range(3):
        name = naming.pod("vz", ordinal)
        node = sim.node(ordinal)
        if name != primary:
            assert node.primary is not None and node.primary.startswith("https://")
            assert node.connected
    assert sim.dp.accesses[-1][0].startswith("https://")


async def test_security_problems_degrade_the_cluster_with_an_event() -> None:
    sim = Sim(instances=1, tls={"secretName": "missing"})
    for _ in range(4):
        await sim.step()
    assert sim.status["phase"] != "Healthy"
    warnings = [m for t, r, m in sim.kube.events if r == "SecurityMaterial"]
    assert warnings == ["spec.tls.secretName: Secret missing does not exist (yet)"]


# ---- turning TLS or auth off, or moving them to other Secrets --------------------------


async def roll_out(sim: Sim, max_steps: int = 60) -> list[str]:
    """Step until Healthy; the pods deleted, in order. Checks at every pass that at most
    one instance is being replaced and that no instance Ready per Kubernetes is ever
    reported unreachable (the operator keeps reaching pods on the old revision)."""
    deleted: list[str] = []
    for _ in range(max_steps):
        sim.kube.calls.clear()
        result = await sim.step()
        now = [c[2] for c in sim.kube.calls if c[0] == "delete" and c[1] == "Pod"]
        assert len(now) <= 1, f"deleted {now} in one pass"
        deleted += now
        unreachable = [
            (i["name"], i.get("message"))
            for i in sim.status.get("instancesStatus") or ()
            if i.get("ready") and i.get("message") and "not connected" not in i["message"]
        ]
        assert not unreachable, unreachable
        if result.phase == "Healthy" and not now:
            return deleted
    raise AssertionError(f"not Healthy: {sim.status.get('phase')}: {sim.status.get('phaseReason')}")


def user_tls_secret(name: str, ca_name: str = "user CA") -> Json:
    now = datetime.now(UTC)
    ca = pki.new_ca(ca_name, now=now, validity=3650 * DAY)
    pair = pki.issue(
        ca,
        common_name="vz-r",
        dns_names=naming.server_dns_names("vz", NS, "cluster.local"),
        now=now,
        validity=90 * DAY,
    )
    b64 = {
        "tls.crt": pair.cert_pem,
        "tls.key": pair.key_pem,
        "ca.crt": ca.cert_pem,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": NS},
        "data": {k: base64.b64encode(v).decode() for k, v in b64.items()},
    }


def user_key_secret(name: str, key: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"api-key": base64.b64encode(key.encode()).decode()},
    }


@pytest.mark.parametrize(
    "change",
    [
        {"tls": {"enabled": False}},
        {"auth": {"enabled": False}},
        {"tls": {"enabled": False}, "auth": {"enabled": False}},
        {"tls": {"secretName": "mine-tls"}},
        {"auth": {"adminKeySecret": {"name": "mine-key"}}},
    ],
    ids=["tls-off", "auth-off", "both-off", "tls-secret", "admin-key-secret"],
)
async def test_changing_tls_or_auth_rolls_one_pod_at_a_time_primary_last(change: Json) -> None:
    sim = Sim(instances=3)
    sim.kube.put(user_tls_secret("mine-tls"))
    sim.kube.put(user_key_secret("mine-key", "k" * 24))
    await sim.settle()
    sim.write(5)
    sim.edit_spec(**change)
    deleted = await roll_out(sim)
    assert deleted == ["vz-2", "vz-1", "vz-0"]
    assert sim.status["currentPrimary"] == "vz-0" and sim.dp.of("promote") == [("vz-0", 1)]
    events = [m for _, r, m in sim.kube.events if r == "RollingUpdate"]
    assert not [m for m in events if "does not serve" in m], events


def test_a_ready_pod_the_operator_cannot_reach_is_not_broken() -> None:
    """Unreachable is not "not serving": Kubernetes says the pods are Ready."""
    from tests.operator.decisions import healthy_status, inst, observe
    from vectorizer_operator.reconcile.rolling import plan_broken

    obs = observe(inst(0, None), inst(1, None), inst(2, None), update_revision="rev2")
    assert plan_broken(obs, "vz-0") is None
    # A primary Kubernetes says is not Ready is replaced, even while a replica is
    # outdated: it serves nothing, and the rollout would wait for it for good.
    obs = observe(
        inst(0, None, ready=False), inst(1, None), update_revision="rev2", status=healthy_status()
    )
    deleted = plan_broken(obs, "vz-0")
    assert deleted is not None and deleted.pod == "vz-0"
    # One at a time: nothing while another pod is being replaced.
    obs = observe(
        inst(0, None, ready=False),
        inst(1, None, ready=False),
        inst(2, None, revision="rev2", terminating=True),
        update_revision="rev2",
    )
    assert plan_broken(obs, None) is None


@pytest.mark.parametrize("change", [{"tls": {"enabled": True}}, {"auth": {"enabled": True}}])
async def test_switchover_update_turning_tls_or_auth_on_replaces_the_old_primary(
    change: Json,
) -> None:
    sim = Sim(
        instances=3,
        primaryUpdateMethod="switchover",
        tls={"enabled": False},
        auth={"enabled": False},
    )
    await sim.settle()
    sim.write(5)
    sim.edit_spec(**change)
    stale_lag: list[Any] = []
    for _ in range(80):
        result = await sim.step()
        for i in sim.status.get("instancesStatus") or ():
            if "not connected to its primary" in (i.get("message") or ""):
                stale_lag.append(i.get("lagOperations"))
        if result.phase == "Healthy":
            break
    assert sim.status["phase"] == "Healthy", sim.status.get("phaseReason")
    assert sim.status["currentPrimary"] != "vz-0"
    assert all(i["updated"] for i in sim.status["instancesStatus"])
    for ordinal in range(3):
        node = sim.node(ordinal)
        assert node.role == "primary" or node.connected, (ordinal, node)
    # A replica not connected to its primary never reports lag 0 (it is behind by an
    # unknown amount), which it did while the old primary could not follow.
    assert stale_lag and all(lag is None for lag in stale_lag)
