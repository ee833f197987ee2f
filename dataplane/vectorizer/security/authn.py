"""Authentication: turn what a request presents into a Principal, or refuse it.

Credentials, in order: ``X-API-Key`` (or Qdrant's ``api-key``), then ``Authorization:
Bearer`` (a JWT when it has the JWT shape, else an API key, which lets tools that only
speak bearer tokens — Prometheus — use a key), then a verified client certificate
(the replication identity, only for names listed in ``replication_cert_names``). Every
comparison of secrets is ``hmac.compare_digest`` on SHA-256 digests, so timing says
nothing about how much of a guess was right.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from typing import Any

from vectorizer.security.keys import KeyStore, digest, key_id_of
from vectorizer.security.roles import Principal, Role
from vectorizer.security.secrets import Secret
from vectorizer.security.tokens import InvalidToken, JwtVerifier

MAX_CREDENTIAL = 4096
BOOTSTRAP_ADMIN = Principal(id="bootstrap-admin", role=Role.ADMIN, kind="bootstrap")
REPLICATION = Principal(id="replication", role=Role.REPLICATION, kind="replication")


class AuthenticationFailed(Exception):
    """``message`` goes to the client; ``reason`` and ``claimed`` only to the audit log."""

    def __init__(self, message: str, reason: str, claimed: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.claimed = claimed


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = None
    bearer: str | None = None
    peer_cert: dict[str, Any] | None = None  # only a certificate the TLS layer verified


# A static secret's digest, made once per value (a few: a secret file may change).
_static_digest = functools.lru_cache(maxsize=8)(digest)


def certificate_names(cert: dict[str, Any]) -> list[str]:
    """The subject CN and DNS subject-alternative names of a decoded peer certificate."""
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    names += [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    return names


class Authenticator:
    def __init__(
        self,
        keys: KeyStore,
        *,
        admin_key: Secret,
        replication_key: Secret,
        jwt: JwtVerifier,
        replication_cert_names: frozenset[str] = frozenset(),
    ) -> None:
        self.keys = keys
        self._static = [(admin_key, BOOTSTRAP_ADMIN), (replication_key, REPLICATION)]
        self._jwt = jwt
        self._cert_names = replication_cert_names

    @property
    def has_static_credentials(self) -> bool:
        """Whether anyone can get in without an issued API key."""
        return self._jwt.configured or any(secret.configured for secret, _ in self._static)

    def authenticate(self, creds: Credentials) -> Principal:
        if creds.api_key is not None:
            return self._key(creds.api_key)
        if creds.bearer is not None:
            if creds.bearer.count(".") == 2:
                return self._token(creds.bearer)
            return self._key(creds.bearer)
        if creds.peer_cert:
            found = self.certificate_principal(creds.peer_cert)
            if found is not None:
                return found
            raise AuthenticationFailed(
                "this client certificate is not a replication identity",
                "certificate name not accepted",
                claimed=_cert_id(creds.peer_cert),
            )
        raise AuthenticationFailed(
            "credentials required: an X-API-Key header or an Authorization: Bearer token",
            "no credentials",
        )

    def certificate_principal(self, cert: dict[str, Any]) -> Principal | None:
        """The replication identity, when the certificate carries one of the accepted names."""
        if not self._cert_names.intersection(certificate_names(cert)):
            return None
        return Principal(id=_cert_id(cert), role=Role.REPLICATION, kind="certificate")

    def _key(self, presented: str) -> Principal:
        if not presented or len(presented) > MAX_CREDENTIAL:
            raise AuthenticationFailed("invalid API key", "malformed key")
        given = digest(presented)
        matched: Principal | None = None
        for secret, principal in self._static:  # compare with every one: no early exit
            value = secret.get()
            if value and hmac.compare_digest(_static_digest(value), given) and matched is None:
                matched = principal
        if matched is not None:
            return matched
        record, reason = self.keys.verify(presented, given)
        if record is None:
            key_id = key_id_of(presented)
            raise AuthenticationFailed(
                "invalid API key", reason, claimed=f"key:{key_id}" if key_id else None
            )
        return self.keys.principal(record)

    def _token(self, token: str) -> Principal:
        if not self._jwt.configured:
            raise AuthenticationFailed("bearer tokens are not accepted here", "jwt not configured")
        if len(token) > MAX_CREDENTIAL:
            raise AuthenticationFailed("invalid bearer token: too long", "token too long")
        if not token.isascii():  # (a JWT is base64url and dots)
            raise AuthenticationFailed("invalid bearer token: malformed token", "malformed token")
        try:
            return self._jwt.verify(token)
        except InvalidToken as exc:
            raise AuthenticationFailed(f"invalid bearer token: {exc}", str(exc)) from None


def _cert_id(cert: dict[str, Any]) -> str:
    names = certificate_names(cert)
    return f"cert:{names[0] if names else '?'}"
