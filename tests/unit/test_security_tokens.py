"""JWT bearer tokens: HS256 and RS256 accepted; expired, forged, alg none and confused refused."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vectorizer.security.roles import Role
from vectorizer.security.secrets import MIN_HS256, Secret
from vectorizer.security.tokens import InvalidToken, JwtVerifier

SECRET = "s" * 64
ISS, AUD = "https://issuer.test", "vectorizer"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_pem(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "jwt.pub"
    path.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def verifier(public_pem: Path) -> JwtVerifier:
    return JwtVerifier(
        Secret(SECRET), Secret(path=str(public_pem)), issuer=ISS, audience=AUD, leeway_s=0
    )


def claims(**over: Any) -> dict[str, Any]:
    base = {"sub": "alice", "role": "editor", "iss": ISS, "aud": AUD, "exp": time.time() + 60}
    return {**base, **over}


def test_hs256_and_rs256(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    p = verifier.verify(jwt.encode(claims(collections=["a"]), SECRET, algorithm="HS256"))
    assert (p.id, p.role, p.kind, p.collections) == ("jwt:alice", Role.EDITOR, "jwt", {"a"})
    p = verifier.verify(jwt.encode(claims(role="admin"), rsa_key, algorithm="RS256"))
    assert p.role is Role.ADMIN and p.collections is None


def _unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(payload)}."


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda k: jwt.encode(claims(exp=time.time() - 5), SECRET, algorithm="HS256"), "expired"),
        (lambda k: jwt.encode(claims(), "x" * 64, algorithm="HS256"), "bad signature"),
        (lambda k: _unsigned(claims()), "algorithm 'none'"),
        (lambda k: _unsigned(claims(), alg="None"), "algorithm 'None'"),
        (lambda k: jwt.encode(claims(), SECRET, algorithm="HS512"), "algorithm 'HS512'"),
        (lambda k: jwt.encode(claims(iss="evil"), SECRET, algorithm="HS256"), "wrong issuer"),
        (lambda k: jwt.encode(claims(aud="other"), SECRET, algorithm="HS256"), "wrong audience"),
        (
            lambda k: jwt.encode(
                {k2: v for k2, v in claims().items() if k2 != "exp"}, SECRET, algorithm="HS256"
            ),
            "missing claim 'exp'",
        ),
        (lambda k: jwt.encode(claims(role="root"), SECRET, algorithm="HS256"), "'role'"),
        (lambda k: jwt.encode(claims(role=None), SECRET, algorithm="HS256"), "'role'"),
        (
            lambda k: jwt.encode(claims(collections=["../x"]), SECRET, algorithm="HS256"),
            "'collections'",
        ),
        (lambda k: jwt.encode(claims(nbf=time.time() + 60), SECRET, algorithm="HS256"), "not yet"),
        (
            lambda k: jwt.encode(claims(exp=str(int(time.time()) + 60)), SECRET, algorithm="HS256"),
            "'exp' must be a number",
        ),
        (
            lambda k: jwt.encode(claims(iat=str(int(time.time()))), SECRET, algorithm="HS256"),
            "'iat' must be a number",
        ),
        (lambda k: "not.a.token", "malformed"),
    ],
)
def test_refused(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey, make: Any, why: str) -> None:
    with pytest.raises(InvalidToken) as err:
        verifier.verify(make(rsa_key))
    assert why in str(err.value)


def test_rs256_public_key_cannot_be_used_as_an_hs256_secret(
    public_pem: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Algorithm confusion: sign HS256 with the public key's PEM text."""
    only_rs = JwtVerifier(Secret(), Secret(path=str(public_pem)), leeway_s=0)
    token = _hs256_with(public_pem.read_bytes())
    with pytest.raises(InvalidToken, match="algorithm 'HS256'"):
        only_rs.verify(token)


def _hs256_with(key: bytes) -> str:
    import hashlib
    import hmac

    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    signing = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims(role='admin'))}"
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def test_without_configured_audience_tokens_with_one_still_pass() -> None:
    v = JwtVerifier(Secret(SECRET), Secret(), leeway_s=0)
    assert v.verify(jwt.encode(claims(), SECRET, algorithm="HS256")).role is Role.EDITOR


def test_secret_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    secret = Secret(path=str(f), recheck_s=0)
    v = JwtVerifier(secret, Secret(), leeway_s=0)
    old = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert v.verify(old)
    f.write_text("t" * 64)
    with pytest.raises(InvalidToken, match="bad signature"):
        v.verify(old)
    assert v.verify(jwt.encode(claims(), "t" * 64, algorithm="HS256"))


def test_a_secret_file_too_short_is_not_used(tmp_path: Path) -> None:
    """As a short value given directly is refused at start-up: a short file is not
    taken, at start or when it changes (the last good value stays)."""
    f = tmp_path / "secret"
    f.write_text("b\n")
    assert Secret(path=str(f), recheck_s=0, min_length=MIN_HS256).get() is None
    f.write_text(SECRET)
    secret = Secret(path=str(f), recheck_s=0, min_length=MIN_HS256)
    assert secret.get() == SECRET
    f.write_text("short")
    assert secret.get() == SECRET
    f.write_text("u" * (MIN_HS256 + 1))
    assert secret.get() == "u" * (MIN_HS256 + 1)


def test_an_unusable_public_key_file_is_reported_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "jwt.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    with caplog.at_level("ERROR"):
        verifier = JwtVerifier(Secret(""), Secret(path=str(bad)))
    assert "jwt_public_key_file is not a PEM public key" in caplog.text
    with pytest.raises(InvalidToken):  # and no RS256 token passes
        verifier.verify(_unsigned(claims(), alg="RS256"))
