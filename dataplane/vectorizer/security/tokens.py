"""JWT bearer tokens (PyJWT): HS256 with a shared secret, RS256 with a public key.

The key is chosen by the token's ``alg`` among the configured ones only, and PyJWT is
told to accept exactly that algorithm, so ``alg: none`` and algorithm confusion (an RS256
public key used as an HS256 secret) are refused. ``exp`` and ``sub`` are required;
``iss`` and ``aud`` are checked when configured. Claims: ``role`` (viewer, editor,
admin or replication) and optionally ``collections`` (a list of names).
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from vectorizer.engine.validation import COLLECTION_NAME_RE
from vectorizer.security.roles import Principal, Role
from vectorizer.security.secrets import Secret

log = logging.getLogger(__name__)


# Claims that are times: JSON numbers of seconds since the epoch (RFC 7519's NumericDate).
_TIMES = ("exp", "nbf", "iat")


class InvalidToken(Exception):
    """The token proves nothing; the message says why (for the client and the audit log)."""


class JwtVerifier:
    def __init__(
        self,
        hs256: Secret,
        rs256_public_key: Secret,
        *,
        issuer: str = "",
        audience: str = "",
        leeway_s: float = 10.0,
    ) -> None:
        self._hs256 = hs256
        self._rs256 = rs256_public_key
        self._issuer = issuer or None
        self._audience = audience or None
        self._leeway = leeway_s
        self._parsed: tuple[str, RSAPublicKey] | None = None
        if rs256_public_key.configured:
            self._public_key()  # (an unusable key file is reported at start-up, not later)

    @property
    def configured(self) -> bool:
        return self._hs256.configured or self._rs256.configured

    def verify(self, token: str) -> Principal:
        claims = self._decode(token)
        return _principal(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            alg = str(jwt.get_unverified_header(token).get("alg"))
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        key: str | RSAPublicKey | None = None
        if alg == "HS256":
            key = self._hs256.get()
        elif alg == "RS256":
            key = self._public_key()
        if key is None:
            raise InvalidToken(f"algorithm {alg[:16]!r} is not accepted")
        required = (
            ["exp", "sub"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim!r}") from None
        except jwt.PyJWTError:
            raise InvalidToken("invalid token") from None
        for name in _TIMES:  # (PyJWT also takes a string of digits)
            when = claims.get(name)
            if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
                raise InvalidToken(f"{name!r} must be a number (seconds since the epoch)")
        return claims

    def _public_key(self) -> RSAPublicKey | None:
        pem = self._rs256.get()
        if pem is None:
            return None
        if self._parsed is None or self._parsed[0] != pem:
            try:
                loaded = load_pem_public_key(pem.encode())
            except ValueError as exc:
                log.error("jwt_public_key_file is not a PEM public key: %s", exc)
                return None
            if not isinstance(loaded, RSAPublicKey):
                log.error("jwt_public_key_file must hold an RSA public key")
                return None
            self._parsed = (pem, loaded)
        return self._parsed[1]


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("'sub' must be a non-empty string")
    try:
        role = Role(claims.get("role"))
    except ValueError:
        raise InvalidToken("'role' must be viewer, editor, admin or replication") from None
    scope = claims.get("collections")
    if scope is not None and (
        not isinstance(scope, list)
        or not all(isinstance(c, str) and COLLECTION_NAME_RE.fullmatch(c) for c in scope)
    ):
        raise InvalidToken("'collections' must be a list of collection names")
    return Principal(
        id=f"jwt:{sub[:128]}",
        role=role,
        kind="jwt",
        collections=None if scope is None else frozenset(scope),
    )
