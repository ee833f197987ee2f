"""The reconciler's view of the Kubernetes API (a small port; a fake implements it in tests)."""

from __future__ import annotations

from typing import Any, Protocol

Json = dict[str, Any]


class KubeApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.reason = reason


class Kube(Protocol):
    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        """The object, or None when it does not exist."""

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Json]:
        """Objects matching a label selector."""

    async def apply(self, manifest: Json, *, dry_run: bool = False) -> Json:
        """Server-side apply (force) as the operator's field manager: creates or repairs.

        ``dry_run``: the API server validates and admits the change (``dryRun=All``) and
        answers with the object it would store, storing nothing; a refusal raises the
        same error the real apply would.
        """

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Json
    ) -> Json:
        """JSON merge patch."""

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Json
    ) -> None:
        """JSON merge patch of the status subresource (None values remove fields)."""

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        """Delete (background propagation), only the object with ``uid`` when given."""

    async def emit_event(self, involved: Json, type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event about ``involved`` (an object reference)."""

    async def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves ``kind`` in ``api_version`` (API discovery)."""
