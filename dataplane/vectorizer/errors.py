"""Domain errors with stable codes, shared by the engine, the server and the SDK.

Every error a client can see has a snake_case ``code`` that never changes, an HTTP
status, and (where it makes sense) the request field that caused it.
"""

from __future__ import annotations

import errno
import math
from typing import Any, ClassVar


class VectorizerError(Exception):
    """Base of every error with a stable code."""

    # Each class's code; an instance carries another only in the SDK, as the error of a
    # code it does not know (a newer server's), which it keeps.
    code: str = "internal_error"
    status: ClassVar[int] = 500
    # A state of the node that the client is told about (not ready, fenced, full): a 5xx
    # the server logs as a warning, not as an error of its own.
    expected: ClassVar[bool] = False
    # False for the SDK's own errors (no server sends their codes): out of ``all_codes``
    # and ``error_class_for``, which else changed once the SDK was imported.
    sent_by_servers: ClassVar[bool] = True
    request_id: str | None = None  # the server's id of the failed request (set by the SDK)

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def headers(self) -> dict[str, str]:
        """HTTP headers the response must carry (e.g. ``Retry-After``)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            body["details"] = self.details
        return body


class MalformedJson(VectorizerError):
    code = "malformed_json"
    status = 400


class MalformedRequest(VectorizerError):
    """Not a valid HTTP request: a request line or header over the size limit, or bytes
    that are not HTTP (answered before any route is known)."""

    code = "malformed_request"
    status = 400


class JsonTooDeep(MalformedJson):
    """The body nests arrays and objects deeper than ``max_json_depth``."""

    code = "json_too_deep"


class TlsRequired(MalformedJson):
    """Plain HTTP sent to a port that speaks only HTTPS (answered before any TLS)."""

    code = "tls_required"


class Unauthenticated(VectorizerError):
    """No credentials, or credentials that prove nothing (unknown, wrong, expired, forged)."""

    code = "unauthenticated"
    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="vectorizer"'}


class Forbidden(VectorizerError):
    """A known principal asked for something its role or collection scope does not allow."""

    code = "forbidden"
    status = 403


# The longest wait a response announces (``Retry-After``, ``X-RateLimit-Reset``): 2**31 s,
# 68 years, the value RFC 9111 (1.2.2) has a cache use for a delta-seconds too large to
# represent. A longer wait, or one that is not a number, is announced as this: a header
# that overflows is a plain 500 instead of the answer.
MAX_WAIT_S = 2**31


class RateLimited(VectorizerError):
    code = "rate_limited"
    status = 429

    def headers(self) -> dict[str, str]:
        retry = float(self.details.get("retry_after_s", 1))
        seconds = max(1, math.ceil(retry)) if retry < MAX_WAIT_S else MAX_WAIT_S
        return {"Retry-After": str(seconds)}


class RequestTimeout(VectorizerError):
    """The body did not arrive within ``request_body_timeout_s``; the connection is closed."""

    code = "request_timeout"
    status = 408

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ValidationError(VectorizerError):
    code = "validation_error"
    status = 422


class DimensionMismatch(ValidationError):
    code = "dimension_mismatch"


class InvalidSnapshot(ValidationError):
    """A snapshot file to recover from that is damaged, or not one of ours."""

    code = "invalid_snapshot"

    def __init__(self, message: str, *, field: str | None = "snapshot", **details: Any) -> None:
        super().__init__(message, field=field, **details)


class PayloadTooLarge(VectorizerError):
    code = "payload_too_large"
    status = 413


class NotFound(VectorizerError):
    code = "not_found"
    status = 404


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class VectorNotFound(NotFound):
    code = "vector_not_found"


class SnapshotNotFound(NotFound):
    code = "snapshot_not_found"


class RouteNotFound(NotFound):
    code = "route_not_found"


class MethodNotAllowed(VectorizerError):
    code = "method_not_allowed"
    status = 405


class KeyNotFound(NotFound):
    code = "key_not_found"


class CollectionExists(VectorizerError):
    code = "collection_exists"
    status = 409


class NotReady(VectorizerError):
    code = "not_ready"
    expected = True
    status = 503


class ShuttingDown(NotReady):
    code = "shutting_down"


class NotPrimary(VectorizerError):
    """A write sent to a replica; ``details.primary`` names where to send it."""

    code = "not_primary"
    status = 409


class StaleEpoch(VectorizerError):
    code = "stale_epoch"
    status = 409


class NodeFenced(VectorizerError):
    code = "node_fenced"
    expected = True
    status = 503


class ReplicationTimeout(VectorizerError):
    """The write is durable here but too few replicas confirmed it in time."""

    code = "replication_timeout"
    expected = True
    status = 503


class StorageError(VectorizerError):
    code = "storage_error"
    status = 500

    @classmethod
    def refused(cls, exc: OSError, what: str) -> StorageError:
        """The error for a disk operation that failed and was undone: out of space (or
        over a file size limit or quota) is ``insufficient_storage``."""
        reason = exc.strerror or str(exc)
        if exc.errno in _OUT_OF_SPACE:
            return InsufficientStorage(f"{what}: {reason}; nothing of it was kept")
        return cls(f"{what}: {reason}; nothing of it was kept")


class CorruptLog(StorageError):
    """A write-ahead log record that does not read back as written (or an operation this
    version does not know)."""

    code = "corrupt_log"


class InsufficientStorage(StorageError):
    """The disk is full (or a quota or file size limit is reached): the write was undone
    and the node takes writes again once there is room; reads go on meanwhile."""

    code = "insufficient_storage"
    expected = True
    status = 507


class InsufficientMemory(VectorizerError):
    """Memory is at the node's high-water mark (a share of its cgroup's limit or of the
    machine's memory): the write was refused before anything of it was kept, so the
    kernel never has to kill the node; reads and deletes go on meanwhile."""

    code = "insufficient_memory"
    expected = True
    status = 507


class StorageFailed(StorageError):
    """The write-ahead log could not be made durable (a failed fsync): what the disk holds
    is no longer known, so the node takes no more writes and reports itself unhealthy
    until it restarts and recovers from what is on disk."""

    code = "storage_failed"
    status = 503


_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DataDirInUse(StorageError):
    """Another process holds the data directory (see ``engine.dirlock``)."""

    code = "data_dir_in_use"
    status = 503


class InternalError(VectorizerError):
    code = "internal_error"
    status = 500


def _all_subclasses(cls: type[VectorizerError]) -> list[type[VectorizerError]]:
    out: list[type[VectorizerError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _sent() -> list[type[VectorizerError]]:
    """The classes of the errors a server sends."""
    return [c for c in _all_subclasses(VectorizerError) if c.sent_by_servers]


def all_codes() -> list[str]:
    """Every stable error code a server sends (bounded: a label value set for metrics)."""
    return sorted({VectorizerError.code, *(c.code for c in _sent())})


def error_class_for(code: str) -> type[VectorizerError]:
    """The exception class for a wire code (used by the SDK); unknown codes map to the base."""
    for cls in _sent():
        if cls.code == code:
            return cls
    return VectorizerError
