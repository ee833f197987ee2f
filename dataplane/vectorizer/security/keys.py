"""API keys: issued once, stored only as SHA-256 digests, checked in constant time.

A key reads ``vz_<id>_<secret>``: the id (12 hex digits) finds the record, the secret
(32 random bytes, base64url) proves possession. Keys are high-entropy, so a plain
SHA-256 digest is enough (a slow hash protects guessable passwords, not random keys).
The file (``<data_dir>/security/keys.json``, mode 0600) is written atomically. On a
cluster the primary owns the keys and streams them to its replicas (hashes only), so a
key works on every node; changing keys on a replica is refused like any other write.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from vectorizer.engine.validation import collection_name
from vectorizer.errors import KeyNotFound, ValidationError
from vectorizer.security.ratelimit import MIN_RPS
from vectorizer.security.roles import Principal, RateLimit, Role

FILE = Path("security") / "keys.json"
_KEY = re.compile(r"vz_(?P<id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}")
KEY_NAME = re.compile(r"[\x20-\x7e]{1,128}")
# The most a key may be allowed (requests a second, and its burst; the least is the
# limiter's MIN_RPS); the most collections it may be scoped to.
MAX_KEY_RATE = 1_000_000
MAX_KEY_COLLECTIONS = 1000
_DUMMY = hashlib.sha256(b"no such key").hexdigest()
MAX_KEYS = 10_000
MAX_GRACE_S = 7 * 86400


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    role: str
    digest: str
    created_at: float
    collections: list[str] | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    expires_at: float | None = None
    rotated_at: float | None = None
    previous_digest: str | None = None  # the secret before the last rotation...
    previous_valid_until: float | None = None  # ...still accepted until then

    def public(self) -> dict[str, Any]:
        """What a client may see: never a secret or a digest."""
        return {
            "id": self.id,
            "prefix": f"vz_{self.id}_",
            "name": self.name,
            "role": self.role,
            "collections": self.collections,
            "rate_limit_rps": self.rate_limit_rps,
            "rate_limit_burst": self.rate_limit_burst,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "expires_at": self.expires_at,
            "previous_valid_until": self.previous_valid_until,
        }

    def principal(self) -> Principal:
        rate = None
        if self.rate_limit_rps is not None:
            burst = self.rate_limit_burst or max(1, int(self.rate_limit_rps))
            rate = RateLimit(self.rate_limit_rps, burst)
        scope = None if self.collections is None else frozenset(self.collections)
        return Principal(
            id=f"key:{self.id}",
            role=Role(self.role),
            kind="key",
            collections=scope,
            rate_limit=rate,
        )


class KeyFile(msgspec.Struct, kw_only=True):
    revision: int = 0
    keys: list[KeyRecord] = msgspec.field(default_factory=list)


def digest(key: str) -> str:
    """SHA-256 of the key's bytes (a header's bytes that are not UTF-8 come back as they
    were sent: aiohttp decodes them with ``surrogateescape``)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The id part of something shaped like an API key (safe to log), else None."""
    m = _KEY.fullmatch(presented)
    return m.group("id") if m else None


def _new_secret(key_id: str) -> str:
    return f"vz_{key_id}_{secrets.token_urlsafe(32)}"


class KeyStore:
    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = data_dir / FILE
        self._clock = clock
        self._file = KeyFile()
        self._stored = KeyFile()  # what the file holds (a replica's may lag: see adopt)
        self._by_id: dict[str, KeyRecord] = {}
        self._principals: dict[str, tuple[KeyRecord, Principal]] = {}  # by key id
        # Set by the replication manager: refuses changes on a replica (keys follow the primary).
        self.write_guard: Callable[[], None] = lambda: None
        self.on_change: list[Callable[[], None]] = []

    @property
    def revision(self) -> int:
        return self._file.revision

    def load(self) -> None:
        if self.path.exists():
            self._stored = msgspec.json.decode(self.path.read_bytes(), type=KeyFile)
            self._set(self._stored)

    # ---- checking a presented key ------------------------------------------------------

    def verify(self, presented: str, given: str | None = None) -> tuple[KeyRecord | None, str]:
        """(record, "") when the key is valid, else (None, why) — the reason is for the log.
        ``given``: the key's ``digest``, when the caller has it already."""
        key_id = key_id_of(presented)
        record = self._by_id.get(key_id) if key_id else None
        if given is None:
            given = digest(presented)
        if record is None:
            hmac.compare_digest(given, _DUMMY)  # the same work either way
            return None, "unknown key id" if key_id else "not an API key"
        now = self._clock()
        ok = hmac.compare_digest(given, record.digest)
        if not ok and record.previous_digest and (record.previous_valid_until or 0) > now:
            ok = hmac.compare_digest(given, record.previous_digest)
        if not ok:
            return None, "wrong secret"
        if record.expires_at is not None and record.expires_at <= now:
            return None, "key expired"
        return record, ""

    def principal(self, record: KeyRecord) -> Principal:
        """``record.principal()``, made once per record (a changed key is a new record)."""
        made = self._principals.get(record.id)
        if made is None or made[0] is not record:
            made = self._principals[record.id] = (record, record.principal())
        return made[1]

    # ---- management (Admin only; the route table sees to that) ---------------------------

    def list(self) -> list[KeyRecord]:
        return sorted(self._by_id.values(), key=lambda r: (r.created_at, r.id))

    def get(self, key_id: str) -> KeyRecord:
        record = self._by_id.get(key_id)
        if record is None:
            raise KeyNotFound(f"no API key with id {key_id[:32]!r}", field="key_id")
        return record

    def create(
        self,
        name: str,
        role: str,
        *,
        collections: Sequence[str] | None = None,
        rate_limit_rps: float | None = None,
        rate_limit_burst: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key; the secret is returned here and never again."""
        self.write_guard()
        now = self._clock()
        _check_fields(name, role, collections, rate_limit_rps, rate_limit_burst, expires_at, now)
        if len(self._by_id) >= MAX_KEYS:
            raise ValidationError(f"at most {MAX_KEYS} API keys", field="name")
        key_id = secrets.token_hex(6)
        while key_id in self._by_id:
            key_id = secrets.token_hex(6)
        secret = _new_secret(key_id)
        record = KeyRecord(
            id=key_id,
            name=name,
            role=role,
            digest=digest(secret),
            created_at=now,
            collections=None if collections is None else sorted(set(collections)),
            rate_limit_rps=rate_limit_rps,
            rate_limit_burst=rate_limit_burst,
            expires_at=expires_at,
        )
        self._commit({**self._by_id, key_id: record})
        return record, secret

    def rotate(self, key_id: str, grace_s: float = 0.0) -> tuple[KeyRecord, str]:
        """A new secret for the same key; the old one stays valid for ``grace_s`` seconds."""
        self.write_guard()
        record = self.get(key_id)
        if not 0 <= grace_s <= MAX_GRACE_S:
            raise ValidationError(f"grace_s must be in 0..{MAX_GRACE_S}", field="grace_s")
        now = self._clock()
        secret = _new_secret(key_id)
        rotated = msgspec.structs.replace(
            record,
            digest=digest(secret),
            rotated_at=now,
            previous_digest=record.digest if grace_s > 0 else None,
            previous_valid_until=now + grace_s if grace_s > 0 else None,
        )
        self._commit({**self._by_id, key_id: rotated})
        return rotated, secret

    def revoke(self, key_id: str) -> KeyRecord:
        self.write_guard()
        record = self.get(key_id)
        self._commit({k: r for k, r in self._by_id.items() if k != key_id})
        return record

    # ---- replication: the primary's keys, as they are ------------------------------------

    def export(self) -> dict[str, Any]:
        return msgspec.to_builtins(self._file)  # type: ignore[no-any-return]

    def adopt(self, raw: Any) -> None:
        """Replace this node's keys with its primary's (called on a replica): in memory
        first, so that a key revoked there is refused here even when the file cannot be
        written (a full disk; the error ends the link, and the keys sent again when it is
        back are written then)."""
        incoming = msgspec.convert(raw, type=KeyFile)
        if not _same(incoming, self._file):
            self._set(incoming)
        if not _same(incoming, self._stored):
            self._write(incoming)

    # ---- storage -------------------------------------------------------------------------

    def _commit(self, by_id: dict[str, KeyRecord]) -> None:
        new = KeyFile(revision=self._file.revision + 1, keys=list(by_id.values()))
        self._write(new)
        self._set(new)
        for callback in self.on_change:
            callback()

    def _set(self, new: KeyFile) -> None:
        self._file = new
        self._by_id = {r.id: r for r in new.keys}
        self._principals = {}

    def _write(self, new: KeyFile) -> None:
        """Temp file (0600), fsync, rename, fsync the folder."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(new))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._stored = new


def _same(a: KeyFile, b: KeyFile) -> bool:
    return a.revision == b.revision and a.keys == b.keys


def _check_fields(
    name: str,
    role: str,
    collections: Sequence[str] | None,
    rps: float | None,
    burst: int | None,
    expires_at: float | None,
    now: float,
) -> None:
    if KEY_NAME.fullmatch(name) is None:
        raise ValidationError("name must be 1-128 printable ASCII characters", field="name")
    if role not in {r.value for r in Role}:
        roles = ", ".join(r.value for r in Role)
        raise ValidationError(f"role must be one of {roles}", field="role")
    if collections is not None:
        if not 1 <= len(collections) <= MAX_KEY_COLLECTIONS:
            raise ValidationError(
                f"collections must list 1..{MAX_KEY_COLLECTIONS} names", field="collections"
            )
        for i, c in enumerate(collections):
            collection_name(c, field=f"collections[{i}]")
    if rps is not None and not MIN_RPS <= rps <= MAX_KEY_RATE:
        raise ValidationError(
            f"rate_limit_rps must be in {MIN_RPS:g}..{MAX_KEY_RATE} (the slowest: one "
            f"request in {1 / MIN_RPS:.0f} s)",
            field="rate_limit_rps",
        )
    if burst is not None and not 1 <= burst <= MAX_KEY_RATE:
        raise ValidationError(
            f"rate_limit_burst must be in 1..{MAX_KEY_RATE}", field="rate_limit_burst"
        )
    if burst is not None and rps is None:
        raise ValidationError("rate_limit_burst needs rate_limit_rps", field="rate_limit_burst")
    if expires_at is not None and expires_at <= now:
        raise ValidationError("expires_at must be in the future", field="expires_at")
