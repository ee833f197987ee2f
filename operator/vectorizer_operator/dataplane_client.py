"""Typed client of the data plane's replication control API (the operator's only way in).

It rides on the SDK (``vectorizer.client.VectorizerClient``) for transport and error
mapping, with the paths as constants here. Every failure, a refused connection as
much as a structured ``stale_epoch``, arrives as ``DataPlaneError`` with a ``code``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from vectorizer.client import VectorizerClient
from vectorizer.errors import VectorizerError

STATUS_PATH = "/replication/status"
PROMOTE_PATH = "/replication/promote"
FOLLOW_PATH = "/replication/follow"
FENCE_PATH = "/replication/fence"

ROLES = ("primary", "replica", "fenced")


class DataPlaneError(Exception):
    """A node did not do what was asked; ``code`` is the data plane's or ``unreachable``."""

    def __init__(self, message: str, *, code: str = "unreachable") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NodeStatus:
    """``GET /replication/status`` of one node."""

    role: str
    epoch: int
    sequence: int
    primary: str | None = None
    history: tuple[tuple[int, int], ...] = ()
    node_id: str = ""
    ready: bool = False
    lag_operations: int | None = None
    lag_ms: float | None = None
    connected: bool | None = None
    writes_refused: str | None = None  # the error code writes that add data get now

    @classmethod
    def from_json(cls, raw: Any) -> NodeStatus:
        try:
            if not isinstance(raw, dict) or raw.get("role") not in ROLES:
                raise ValueError(f"no valid role in {raw!r}")
            lag_ops, lag_ms = raw.get("lag_operations"), raw.get("lag_ms")
            connected, refused = raw.get("connected"), raw.get("writes_refused")
            return cls(
                role=str(raw["role"]),
                epoch=int(raw["epoch"]),
                sequence=int(raw["sequence"]),
                primary=str(raw["primary"]) if raw.get("primary") else None,
                history=tuple((int(e), int(s)) for e, s, *_ in raw.get("history") or ()),
                node_id=str(raw.get("node_id") or ""),
                ready=bool(raw.get("ready")),
                lag_operations=None if lag_ops is None else int(lag_ops),
                lag_ms=None if lag_ms is None else float(lag_ms),
                connected=None if connected is None else bool(connected),
                writes_refused=None if refused is None else str(refused),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataPlaneError(f"malformed replication status: {err}", code="malformed") from None


@dataclass(frozen=True)
class Access:
    """How to reach one node: its credential and, over HTTPS, whom to trust.

    ``server_hostname`` is the pod's DNS name: the operator connects to the pod IP, but
    the certificate names pods only by DNS (IPs change on every restart).
    """

    api_key: str | None = None
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


PLAIN = Access()


class DataPlane(Protocol):
    """What the reconciler needs from the nodes (a fake implements it in tests)."""

    async def status(self, url: str, access: Access = PLAIN) -> NodeStatus: ...

    async def promote(self, url: str, epoch: int, access: Access = PLAIN) -> None: ...

    async def follow(
        self, url: str, primary_url: str, epoch: int, access: Access = PLAIN
    ) -> None: ...

    async def fence(self, url: str, epoch: int, access: Access = PLAIN) -> None: ...


class ReplicationClient:
    """HTTP implementation of ``DataPlane``; one connection pool for every node."""

    def __init__(self, *, timeout: float = 3.0, session: aiohttp.ClientSession | None = None):
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def _call(
        self, url: str, access: Access, method: str, path: str, body: Any = None
    ) -> Any:
        node = VectorizerClient(
            url,
            session=self._pool(),
            api_key=access.api_key,
            ssl=access.ssl,
            server_hostname=access.server_hostname if access.ssl is not None else None,
        )
        try:
            return await node.request(method, path, body)
        except VectorizerError as err:
            raise DataPlaneError(f"{url}{path}: {err.message}", code=err.code) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            detail = str(err) or type(err).__name__
            raise DataPlaneError(f"{url}{path}: {detail}") from None

    async def status(self, url: str, access: Access = PLAIN) -> NodeStatus:
        return NodeStatus.from_json(await self._call(url, access, "GET", STATUS_PATH))

    async def promote(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        await self._call(url, access, "POST", PROMOTE_PATH, {"epoch": epoch})

    async def follow(self, url: str, primary_url: str, epoch: int, access: Access = PLAIN) -> None:
        body = {"primary_url": primary_url, "epoch": epoch}
        await self._call(url, access, "POST", FOLLOW_PATH, body)

    async def fence(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        await self._call(url, access, "POST", FENCE_PATH, {"epoch": epoch})
