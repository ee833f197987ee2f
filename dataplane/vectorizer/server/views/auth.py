"""API keys and the caller's identity. Who may call these is the route table's business."""

from __future__ import annotations

from aiohttp import web

from vectorizer.server.exchange import exchange
from vectorizer.server.http import json_response, read_as
from vectorizer.server.keys import GUARD
from vectorizer.server.schemas import CreateKey, RotateKey


async def whoami(request: web.Request) -> web.Response:
    """The principal this request acts as: id, kind, role, collection scope, permissions."""
    principal = exchange(request).principal
    assert principal is not None  # admission authenticated it
    return json_response(principal.describe())


async def list_keys(request: web.Request) -> web.Response:
    """Every API key (never a secret)."""
    keys = request.app[GUARD].keys.list()
    return json_response({"keys": [k.public() for k in keys], "count": len(keys)})


async def get_key(request: web.Request) -> web.Response:
    """One API key (never its secret)."""
    record = request.app[GUARD].keys.get(request.match_info["key_id"])
    return json_response({"key": record.public()})


async def create_key(request: web.Request) -> web.Response:
    """A new API key; the response holds its secret, which is shown this once only."""
    body = await read_as(request, CreateKey)
    record, secret = request.app[GUARD].keys.create(
        body.name,
        body.role,
        collections=body.collections,
        rate_limit_rps=body.rate_limit_rps,
        rate_limit_burst=body.rate_limit_burst,
        expires_at=body.expires_at,
    )
    exchange(request).audit_target = record.id
    return json_response({"key": record.public(), "secret": secret}, status=201)


async def rotate_key(request: web.Request) -> web.Response:
    """A new secret for a key; the old one works for ``grace_s`` more seconds (default 0)."""
    body = await read_as(request, RotateKey)
    record, secret = request.app[GUARD].keys.rotate(request.match_info["key_id"], body.grace_s)
    return json_response({"key": record.public(), "secret": secret})


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key at once."""
    record = request.app[GUARD].keys.revoke(request.match_info["key_id"])
    return json_response({"revoked": record.id})
