"""Everything the security middlewares consult, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vectorizer.security.audit import AuditLog
from vectorizer.security.authn import Authenticator
from vectorizer.security.keys import KeyStore
from vectorizer.security.ratelimit import RateLimiter
from vectorizer.security.roles import Principal, RateLimit, Role
from vectorizer.security.secrets import MIN_HS256, MIN_KEY, Secret
from vectorizer.security.tokens import JwtVerifier
from vectorizer.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Guard:
    settings: Settings
    keys: KeyStore
    authenticator: Authenticator
    limiter: RateLimiter = field(default_factory=RateLimiter)
    audit: AuditLog | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        keys = KeyStore(settings.data_dir)
        jwt = JwtVerifier(
            Secret(settings.jwt_hs256_secret, settings.jwt_hs256_secret_file, min_length=MIN_HS256),
            Secret(path=settings.jwt_public_key_file),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
        )
        names = frozenset(
            n.strip() for n in settings.replication_cert_names.split(",") if n.strip()
        )
        authenticator = Authenticator(
            keys,
            admin_key=Secret(
                settings.auth_admin_key, settings.auth_admin_key_file, min_length=MIN_KEY
            ),
            replication_key=Secret(
                settings.replication_key, settings.replication_key_file, min_length=MIN_KEY
            ),
            jwt=jwt,
            replication_cert_names=names,
        )
        return cls(settings=settings, keys=keys, authenticator=authenticator)

    @property
    def enabled(self) -> bool:
        return self.settings.auth_enabled

    def open(self) -> None:
        """Load the keys and open the audit log (when the server starts)."""
        self.keys.load()
        path = self.settings.audit_path
        if path is not None:
            self.audit = AuditLog(path, self.settings.audit_max_bytes, self.settings.audit_backups)
        if self.enabled:
            log.info(
                "authentication on: %d API keys, audit log %s", len(self.keys.list()), path or "off"
            )
            if not (self.authenticator.has_static_credentials or self.keys.list()):
                log.warning(
                    "authentication is on but no admin key, JWT key or API key is configured: "
                    "no one can get in (set auth_admin_key_file)"
                )

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()

    def rate_for(self, principal: Principal) -> RateLimit | None:
        """The principal's own limit, else the node's; None when unlimited. The node's
        limit is for applications: the bootstrap admin key (the operator's) and the
        replication role (replicas) are not held to it. A limit set low, or an application
        using the admin key at more than the limit, made the operator's own calls 429:
        the cluster was never set up, or its status said the primary did not answer."""
        if principal.rate_limit is not None:
            return principal.rate_limit
        if principal.kind == "bootstrap" or principal.role is Role.REPLICATION:
            return None
        s = self.settings
        return RateLimit(s.rate_limit_rps, s.rate_limit_burst) if s.rate_limit_rps > 0 else None
