"""Authentication's per-call shortcuts never outlive what they stand for: a principal is
made once per key record (a changed key is a new record), a static secret's digest once
per value (a secret file may change under a running node)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from vectorizer.security import authn
from vectorizer.security.authn import (
    BOOTSTRAP_ADMIN,
    AuthenticationFailed,
    Authenticator,
    Credentials,
)
from vectorizer.security.keys import KeyStore
from vectorizer.security.roles import Role
from vectorizer.security.secrets import Secret
from vectorizer.security.tokens import JwtVerifier

ADMIN = "a" * 32


def _authenticator(keys: KeyStore, admin: Secret) -> Authenticator:
    return Authenticator(
        keys, admin_key=admin, replication_key=Secret("r" * 32), jwt=JwtVerifier(Secret(), Secret())
    )


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path)
    store.load()
    return store


def test_a_keys_principal_is_made_once_and_follows_the_key(keys: KeyStore, tmp_path: Path) -> None:
    auth = _authenticator(keys, Secret(ADMIN))
    record, secret = keys.create("app", "viewer", collections=["a"], rate_limit_rps=5.0)
    first = auth.authenticate(Credentials(api_key=secret))
    assert first.role is Role.VIEWER and first.collections == frozenset({"a"})
    assert first.rate_limit is not None and first.rate_limit.rps == 5.0
    assert auth.authenticate(Credentials(bearer=secret)) is first  # (made once)
    # The primary changes the key (a wider scope, another role): the replica adopts it.
    primary = KeyStore(tmp_path / "primary")
    primary.adopt(keys.export())
    # (no route changes a key's scope or role; the file a primary sends may)
    primary._commit({record.id: msgspec.structs.replace(record, role="editor", collections=None)})
    keys.adopt(primary.export())
    changed = auth.authenticate(Credentials(api_key=secret))
    assert changed.role is Role.EDITOR and changed.collections is None
    keys.revoke(record.id)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(Credentials(api_key=secret))


def test_a_stale_record_gets_its_own_principal(keys: KeyStore, tmp_path: Path) -> None:
    record, _ = keys.create("app", "viewer")
    primary = KeyStore(tmp_path / "primary")
    primary.adopt(keys.export())
    primary._commit({record.id: msgspec.structs.replace(record, role="admin")})
    keys.adopt(primary.export())
    [current] = keys.list()
    assert keys.principal(current) is keys.principal(current)
    assert keys.principal(current).role is Role.ADMIN
    assert keys.principal(record).role is Role.VIEWER  # (what that record says)
    keys.revoke(record.id)
    assert not keys._principals  # (a revoked key's principal is not kept)


def test_a_changed_admin_key_file_takes_effect(keys: KeyStore, tmp_path: Path) -> None:
    path = tmp_path / "admin-key"
    path.write_text(ADMIN)
    auth = _authenticator(keys, Secret(path=str(path), recheck_s=0))
    assert auth.authenticate(Credentials(api_key=ADMIN)) is BOOTSTRAP_ADMIN
    new = "n" * 40
    path.write_text(new)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(Credentials(api_key=ADMIN))
    assert auth.authenticate(Credentials(api_key=new)) is BOOTSTRAP_ADMIN
    for i in range(20):  # (rotated again and again: the digests kept stay few)
        value = "k" * (32 + i)  # (each a size of its own: a file's mtime may not move)
        path.write_text(value)
        assert auth.authenticate(Credentials(api_key=value)) is BOOTSTRAP_ADMIN
    assert authn._static_digest.cache_info().currsize <= 8


def test_a_removed_admin_key_file_withdraws_the_key(
    keys: KeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(The key read before stayed valid, as if the file could not be read for a moment,
    and "cannot read" was logged every two seconds.) One that comes back is used again."""
    path = tmp_path / "admin-key"
    path.write_text(ADMIN)
    auth = _authenticator(keys, Secret(path=str(path), recheck_s=0))
    assert auth.authenticate(Credentials(api_key=ADMIN)) is BOOTSTRAP_ADMIN
    path.unlink()
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(Credentials(api_key=ADMIN))
    assert caplog.text.count("does not exist") == 1  # (said once)
    path.write_text(ADMIN)
    assert auth.authenticate(Credentials(api_key=ADMIN)) is BOOTSTRAP_ADMIN
