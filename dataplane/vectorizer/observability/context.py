"""Per-request values that logs pick up wherever they are written."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("vectorizer_request_id", default=None)
