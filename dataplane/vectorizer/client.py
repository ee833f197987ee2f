"""Async Python SDK for the native Vectorizer API.

    async with VectorizerClient("http://127.0.0.1:15002") as vz:
        await vz.create_collection("docs", dimension=384)
        await vz.upsert("docs", [Point(1, vector, {"lang": "en"})])
        hits = await vz.search("docs", vector, limit=5, filter={"must": [...]})

Server errors arrive as the exception classes of ``vectorizer.errors`` chosen by their
stable code (``CollectionNotFound``, ``DimensionMismatch``, …), with ``field`` set.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson
from yarl import URL

from vectorizer.engine.validation import PointId, point_id
from vectorizer.errors import ValidationError, VectorizerError, error_class_for
from vectorizer.observability import tracing
from vectorizer.security.tls import client_context

Payload = dict[str, Any]
Vector = Sequence[float] | npt.NDArray[np.floating[Any]]  # numbers, or a numpy row


@dataclass(frozen=True)
class Point:
    id: PointId
    vector: Vector
    payload: Payload | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "vector": self.vector, "payload": self.payload}


@dataclass(frozen=True)
class Hit:
    id: PointId
    score: float
    payload: Payload | None
    vector: list[float] | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Hit:
        return cls(raw["id"], raw["score"], raw.get("payload"), raw.get("vector"))


@dataclass(frozen=True)
class Record:
    id: PointId
    payload: Payload | None
    vector: list[float] | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Record:
        return cls(raw["id"], raw.get("payload"), raw.get("vector"))


class ClientError(VectorizerError):
    """A response that is not a structured Vectorizer error (e.g. a proxy's HTML page, or
    a redirect); ``http_status`` is the status it came with, and ``details["body"]``
    the JSON it held, if any."""

    code = "client_error"
    sent_by_servers = False

    def __init__(self, message: str, *, http_status: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.http_status = http_status


class VectorizerClient:
    """A node's API. Credentials: ``api_key`` (sent as ``X-API-Key``) or ``token`` (a JWT,
    sent as ``Authorization: Bearer``). TLS: ``ssl`` (a context, or False to skip
    verification), or ``ca_file`` to trust and ``cert_file``/``key_file`` to present;
    ``server_hostname``: the name to verify when the URL holds an IP address.

    Redirects are not followed: a 3xx raises ``ClientError`` (its ``details["location"]``
    says where to), so that the credentials go to ``url`` and nowhere else. aiohttp
    would send ``X-API-Key`` (and the caller's ``headers``) on to whatever host a
    redirect names, an ``https`` node's key over plain ``http`` too; and the node's API
    answers without redirects: one comes from something in between, or from a URL that
    is not the node's.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        api_key: str | None = None,
        token: str | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._base = str(URL(self.url))  # percent-encoded, as the paths added to it are
        # The name the certificate must carry when the URL holds an address (e.g. a pod IP).
        self._server_hostname = server_hostname
        auth: dict[str, str] = {}
        if api_key is not None:
            auth["X-API-Key"] = api_key
        if token is not None:
            auth["Authorization"] = f"Bearer {token}"
        self._headers = {"Content-Type": "application/json", **auth, **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        if ssl is None and (ca_file or cert_file):
            ssl = client_context(ca_file or "", cert_file or "", key_file or "")
        self._ssl: ssl_module.SSLContext | bool = True if ssl is None else ssl

    async def __aenter__(self) -> VectorizerClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session the client made; a caller's session stays open, and in use
        by this client if it is used again."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; returns the decoded JSON or raises the mapped error."""
        return (await self._exchange(method, path, body))[0]

    async def _exchange(self, method: str, path: str, body: Any) -> tuple[Any, str | None]:
        """``request``, with the server's id of the request (``X-Request-ID``)."""
        data = None if body is None else orjson.dumps(body, _numpy, orjson.OPT_SERIALIZE_NUMPY)
        headers = dict(self._headers)
        tracing.inject(headers)  # continue the caller's trace, when there is one
        async with self._client().request(
            method,
            URL(self._base + path, encoded=True),  # (no dot segments resolved: see _seg)
            data=data,
            headers=headers,
            ssl=self._ssl,
            server_hostname=self._server_hostname,
            allow_redirects=False,  # (the credentials stay with self.url: see the class)
            timeout=self._timeout,  # (a caller's session has its own default: not ours)
        ) as resp:
            raw = await resp.read()
        if 300 <= resp.status < 400:
            location = resp.headers.get("Location")
            raise ClientError(
                f"HTTP {resp.status}: redirected to {location}, not followed (the client "
                "sends its credentials only to the URL it was given): give it the node's own",
                http_status=resp.status,
                location=location,
            )
        try:
            decoded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise ClientError(f"HTTP {resp.status}: not JSON", http_status=resp.status) from None
        if resp.status < 400:
            return decoded, resp.headers.get("X-Request-ID")
        if not isinstance(decoded, dict) or not isinstance(decoded.get("error"), dict):
            # (a failed node's /health, say, or a proxy's JSON): kept as ``details["body"]``
            shown = raw.decode("utf-8", "replace")
            shown = shown if len(shown) <= 200 else f"{shown[:200]}…"
            raise ClientError(
                f"HTTP {resp.status}: {shown}" if raw else f"HTTP {resp.status}",
                http_status=resp.status,
                body=decoded,
            )
        raise _failure(decoded["error"], decoded.get("request_id"))

    # ---- node -------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """The node's liveness answer. A node whose storage failed answers 503: a
        ``ClientError`` whose ``details["body"]`` holds the answer (its ``reason``)."""
        return dict(await self.request("GET", "/health"))

    async def ready(self) -> bool:
        """Whether the node serves: False too when it cannot be reached."""
        try:
            await self.request("GET", "/ready")
        except (VectorizerError, aiohttp.ClientError, TimeoutError):
            return False
        return True

    async def stats(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/stats"))

    # ---- identity and API keys (Admin) ----------------------------------------------------

    async def whoami(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/auth/whoami"))

    async def create_key(
        self,
        name: str,
        role: str,
        *,
        collections: Sequence[str] | None = None,
        rate_limit_rps: float | None = None,
        rate_limit_burst: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[dict[str, Any], str]:
        """(the key's record, its secret); the secret is never shown again."""
        body: dict[str, Any] = {"name": name, "role": role}
        for field, value in (
            ("collections", None if collections is None else list(collections)),
            ("rate_limit_rps", rate_limit_rps),
            ("rate_limit_burst", rate_limit_burst),
            ("expires_at", expires_at),
        ):
            if value is not None:
                body[field] = value
        res = await self.request("POST", "/auth/keys", body)
        return dict(res["key"]), str(res["secret"])

    async def list_keys(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/auth/keys"))["keys"])

    async def get_key(self, key_id: str) -> dict[str, Any]:
        return dict((await self.request("GET", f"/auth/keys/{_seg(key_id)}"))["key"])

    async def rotate_key(self, key_id: str, *, grace_s: float = 0.0) -> tuple[dict[str, Any], str]:
        res = await self.request("POST", f"/auth/keys/{_seg(key_id)}/rotate", {"grace_s": grace_s})
        return dict(res["key"]), str(res["secret"])

    async def revoke_key(self, key_id: str) -> None:
        await self.request("DELETE", f"/auth/keys/{_seg(key_id)}")

    # ---- replication control (used by the operator) ----------------------------------------

    async def replication_status(self) -> dict[str, Any]:
        """``{role, epoch, sequence, primary, history, timelines, node_id, ready, lag_*}``."""
        return dict(await self.request("GET", "/replication/status"))

    async def replication_stats(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/replication/stats"))

    async def replicas(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/replication/replicas"))["replicas"])

    async def promote(self, epoch: int) -> dict[str, Any]:
        """Make this node primary at ``epoch`` (higher than any it has seen)."""
        return dict(await self.request("POST", "/replication/promote", {"epoch": epoch}))

    async def follow(self, primary_url: str, epoch: int) -> dict[str, Any]:
        body = {"primary_url": primary_url, "epoch": epoch}
        return dict(await self.request("POST", "/replication/follow", body))

    async def fence(self, epoch: int | None = None) -> dict[str, Any]:
        body = {} if epoch is None else {"epoch": epoch}
        return dict(await self.request("POST", "/replication/fence", body))

    # ---- collections --------------------------------------------------------------------

    async def list_collections(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/collections"))["collections"])

    async def create_collection(
        self,
        name: str,
        dimension: int,
        *,
        metric: str = "cosine",
        index: str = "hnsw",
        hnsw: dict[str, int] | None = None,
        payload_indexes: dict[str, str | dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "dimension": dimension,
            "metric": metric,
            "index": index,
        }
        if hnsw:
            body["hnsw"] = hnsw
        if payload_indexes:
            body["payload_indexes"] = payload_indexes
        return dict((await self.request("POST", "/collections", body))["collection"])

    async def get_collection(self, name: str) -> dict[str, Any]:
        return dict((await self.request("GET", f"/collections/{_seg(name)}"))["collection"])

    async def delete_collection(self, name: str) -> None:
        await self.request("DELETE", f"/collections/{_seg(name)}")

    async def create_payload_index(
        self, collection: str, key: str, schema: str | dict[str, Any]
    ) -> int:
        """Index the values at payload ``key`` (keyword, integer, float, bool, datetime,
        uuid, text or geo; or the object form, such as a text index's tokenizer
        ``{"type": "text", "tokenizer": "word", ...}``); returns the write's sequence."""
        path = f"/collections/{_seg(collection)}/payload_indexes/{_seg(key)}"
        return int(
            (await self.request("PUT", path, {"schema": schema}))["payload_index"]["sequence"]
        )

    async def delete_payload_index(self, collection: str, key: str) -> int:
        path = f"/collections/{_seg(collection)}/payload_indexes/{_seg(key)}"
        return int((await self.request("DELETE", path))["sequence"])

    async def snapshot(self, name: str) -> dict[str, Any]:
        return dict((await self.request("POST", f"/collections/{_seg(name)}/snapshot"))["snapshot"])

    # ---- aliases ------------------------------------------------------------------------

    async def aliases(self) -> dict[str, str]:
        """Every alias and the collection it names."""
        return dict((await self.request("GET", "/aliases"))["aliases"])

    async def update_aliases(self, actions: list[dict[str, Any]]) -> dict[str, str]:
        """Apply Qdrant-shaped alias actions (``{"create_alias": {"alias_name": ...,
        "collection_name": ...}}``, ``delete_alias``, ``rename_alias``) in one step, all
        or none; returns the aliases after."""
        return dict((await self.request("POST", "/aliases", {"actions": actions}))["aliases"])

    async def set_alias(self, alias: str, collection: str) -> dict[str, str]:
        """Point ``alias`` at ``collection`` (created, or moved there in one step)."""
        create = {"alias_name": alias, "collection_name": collection}
        return await self.update_aliases([{"create_alias": create}])

    async def delete_alias(self, alias: str) -> dict[str, str]:
        return await self.update_aliases([{"delete_alias": {"alias_name": alias}}])

    # ---- points -------------------------------------------------------------------------

    async def upsert(self, collection: str, points: Iterable[Point | dict[str, Any]]) -> int:
        """Insert or replace points; returns the log sequence of the write."""
        body = {"vectors": [p.to_json() if isinstance(p, Point) else p for p in points]}
        return int(
            (await self.request("POST", f"/collections/{_seg(collection)}/vectors", body))[
                "sequence"
            ]
        )

    async def get(self, collection: str, pid: PointId, *, with_vector: bool = True) -> Record:
        path = _point_path(collection, pid)
        return Record.from_json(
            await self.request("GET", f"{path}?with_vector={_flag(with_vector)}")
        )

    async def update(
        self,
        collection: str,
        pid: PointId,
        *,
        vector: Vector | None = None,
        payload: Payload | None = None,
    ) -> int:
        """Atomically replace the vector and/or payload of an existing point."""
        body: dict[str, Any] = {}
        if vector is not None:
            body["vector"] = vector
        if payload is not None:
            body["payload"] = payload
        return int((await self.request("PUT", _point_path(collection, pid), body))["sequence"])

    async def delete(self, collection: str, pid: PointId) -> None:
        await self.request("DELETE", _point_path(collection, pid))

    async def delete_many(
        self,
        collection: str,
        *,
        ids: Iterable[PointId] | None = None,
        filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the points ``ids`` names, or those ``filter`` matches (one of the two:
        the server refuses both, or neither); returns how many were deleted."""
        body: dict[str, Any] = {}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = filter
        path = f"/collections/{_seg(collection)}/vectors/delete"
        return int((await self.request("POST", path, body))["deleted"])

    async def list_points(
        self,
        collection: str,
        *,
        limit: int = 100,
        offset: PointId | None = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> tuple[list[Record], PointId | None]:
        query = (
            f"?limit={limit}&with_vector={_flag(with_vector)}&with_payload={_flag(with_payload)}"
        )
        if offset is not None:
            query += f"&offset={quote(str(offset), safe='')}"
        res = await self.request("GET", f"/collections/{_seg(collection)}/vectors{query}")
        return [Record.from_json(r) for r in res["vectors"]], res["next_offset"]

    async def count(self, collection: str, filter: dict[str, Any] | None = None) -> int:
        body = {"filter": filter} if filter is not None else {}
        return int(
            (await self.request("POST", f"/collections/{_seg(collection)}/count", body))["count"]
        )

    # ---- search -------------------------------------------------------------------------

    async def search(
        self,
        collection: str,
        vector: Vector,
        *,
        limit: int = 10,
        filter: dict[str, Any] | None = None,
        threshold: float | None = None,
        ef: int | None = None,
        exact: bool = False,
        offset: int = 0,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> list[Hit]:
        body = _search_body(
            vector, limit, filter, threshold, ef, exact, offset, with_payload, with_vector
        )
        res = await self.request("POST", f"/collections/{_seg(collection)}/search", body)
        return [Hit.from_json(h) for h in res["results"]]

    async def batch_search(
        self, collection: str, queries: Sequence[dict[str, Any]]
    ) -> list[list[Hit] | VectorizerError]:
        """One entry per query: its hits, or the error that query alone met."""
        res, request_id = await self._exchange(
            "POST", "/batch_search", {"collection": collection, "queries": list(queries)}
        )
        out: list[list[Hit] | VectorizerError] = []
        for item in res["results"]:
            if item["status"] == "ok":
                out.append([Hit.from_json(h) for h in item["results"]])
            else:
                out.append(_failure(item["error"], request_id))
        return out


def _failure(err: dict[str, Any], request_id: str | None) -> VectorizerError:
    """The exception for an error body: its class by code, with message, field, details
    and the id of the request that met it."""
    details = err.get("details")
    code = err.get("code")
    cls = error_class_for(str(code))  # (never the SDK's own ClientError: no server's)
    failure = cls(str(err.get("message")), field=err.get("field"))
    if cls is VectorizerError and isinstance(code, str) and code:
        failure.code = code  # (a code this SDK does not know is still the server's word)
    # (whatever keys they hold: a detail called "field" or "message" is a detail)
    failure.details = details if isinstance(details, dict) else {}
    failure.request_id = request_id
    return failure


def _search_body(
    vector: Vector,
    limit: int,
    filter: dict[str, Any] | None,
    threshold: float | None,
    ef: int | None,
    exact: bool,
    offset: int,
    with_payload: bool,
    with_vector: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vector": vector,
        "limit": limit,
        "offset": offset,
        "exact": exact,
        "with_payload": with_payload,
        "with_vector": with_vector,
    }
    if filter is not None:
        body["filter"] = filter
    if threshold is not None:
        body["threshold"] = threshold
    if ef is not None:
        body["ef"] = ef
    return body


def _numpy(value: Any) -> Any:
    """What orjson's numpy support leaves: arrays that are not C-contiguous (a column,
    a strided slice) and numpy scalars of other types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _point_path(collection: str, pid: PointId) -> str:
    """The path of point ``pid``, checked as the server checks ids (``point_id``): the
    path holds its text, so -1, True or 1.5 named the string ids "-1", "True" and
    "1.5", and a string of digits that integer's point."""
    if isinstance(pid, str) and pid.isascii() and pid.isdigit():
        raise ValidationError(
            "a string id must not be all digits (the integer id is meant?)", field="id"
        )
    return f"/collections/{_seg(collection)}/vectors/{_seg(str(point_id(pid)))}"


def _seg(value: str) -> str:
    """``value`` as one path segment: percent-encoded, and ``.`` and ``..`` (ids a point
    may have) spelled ``%2E`` so that no client or proxy takes them for dot segments."""
    seg = quote(value, safe="")
    return seg.replace(".", "%2E") if seg in (".", "..") else seg
