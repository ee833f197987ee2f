"""Security settings: everything from flags, env or files; unsafe combinations refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from vectorizer.errors import ValidationError
from vectorizer.settings import Settings, load


def test_defaults_leave_security_off_but_limits_on() -> None:
    s = load({}, env={})
    assert not s.auth_enabled and not s.tls_enabled and s.audit_path is None
    assert (s.rate_limit_rps, s.rate_limit_burst, s.max_json_depth) == (100.0, 200, 64)
    assert s.request_body_timeout_s == 30.0 and s.metrics_public


def test_from_the_environment_as_a_pod_would(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    admin.write_text("x" * 20)
    env = {
        "VECTORIZER_AUTH_ENABLED": "true",
        "VECTORIZER_AUTH_ADMIN_KEY_FILE": str(admin),
        "VECTORIZER_RATE_LIMIT_RPS": "12.5",
        "VECTORIZER_DATA_DIR": str(tmp_path / "d"),
    }
    s = load({}, env=env)
    assert s.auth_enabled and s.auth_admin_key_file == str(admin) and s.rate_limit_rps == 12.5
    assert s.audit_path == tmp_path / "d" / "audit" / "audit.jsonl"
    assert load({"audit_log_path": "off"}, env=env).audit_path is None


def test_secrets_stay_out_of_reprs() -> None:
    s = Settings(auth_admin_key="super-secret-admin-key", replication_key="r" * 20)
    assert "super-secret" not in repr(s) and "r" * 20 not in repr(s)


@pytest.mark.parametrize(
    "flags",
    [
        {"tls_cert_file": "CERT"},
        {"tls_client_auth": "maybe"},
        {"tls_client_auth": "require"},  # without TLS and a client CA
        {"tls_cert_file": "CERT", "tls_key_file": "KEY", "tls_client_auth": "require"},
        {"replication_require_mtls": "true"},
        {"auth_admin_key": "short"},
        {"auth_admin_key": "x" * 20, "auth_admin_key_file": "CERT"},
        {"jwt_hs256_secret": "too-short"},
        {"jwt_public_key_file": "/nonexistent/key.pem"},
        {"rate_limit_rps": "-1"},
        {"rate_limit_burst": "0"},
        {"max_json_depth": "0"},
        {"request_body_timeout_s": "0"},
        {"audit_backups": "0"},
    ],
)
def test_refused(tmp_path: Path, flags: dict[str, str]) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    key = tmp_path / "key.pem"
    key.write_text("x")
    resolved = {
        k: str(cert) if v == "CERT" else str(key) if v == "KEY" else v for k, v in flags.items()
    }
    with pytest.raises(ValidationError):
        load(resolved, env={})


def test_mtls_for_replication_is_accepted_when_complete(tmp_path: Path) -> None:
    files = {}
    for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        files[name] = str(tmp_path / name)
        (tmp_path / name).write_text("x")
    s = load({**files, "tls_client_auth": "optional", "replication_require_mtls": "true"}, env={})
    assert s.tls_enabled and s.replication_require_mtls
