"""Authenticate the caller and check the route's permission: the one place RBAC happens.

The rule comes from ``security.permissions`` by route template; views never check
roles. Failures raise ``Unauthenticated`` (401: no or bad credentials) or ``Forbidden``
(403: a known principal without the permission) and leave the reason for the audit log.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.errors import Forbidden, Unauthenticated
from vectorizer.security.authn import AuthenticationFailed, Credentials
from vectorizer.security.permissions import Rule, rule_for
from vectorizer.security.roles import ANONYMOUS, Permission, Principal
from vectorizer.server.http import read_json_bytes
from vectorizer.server.keys import (
    AUDIT_CLAIMED,
    AUDIT_COLLECTION,
    AUDIT_REASON,
    GUARD,
    PRINCIPAL,
    RULE,
)
from vectorizer.server.middlewares.metrics import UNMATCHED, route_template

log = logging.getLogger(__name__)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    template = route_template(request)
    rule = rule_for(request.method, None if template == UNMATCHED else template)
    if rule is None:  # fail closed; tests/unit/test_security_rbac.py keeps this from happening
        log.error("route %s %s has no permission rule; refusing it", request.method, template)
        request[AUDIT_REASON] = "route without a permission rule"
        raise Forbidden("no permission is defined for this route")
    request[RULE] = rule
    if is_public(rule, guard.settings.metrics_public):
        return await handler(request)
    cert = verified_peer_certificate(request)
    if (
        rule.permission is Permission.REPLICATION_STREAM
        and guard.settings.replication_require_mtls
        and cert is None
    ):
        request[AUDIT_REASON] = "no verified client certificate"
        raise Unauthenticated("the replication stream needs a verified client certificate")
    if not guard.enabled:
        request[PRINCIPAL] = ANONYMOUS
        return await handler(request)
    try:
        principal = guard.authenticator.authenticate(credentials(request, cert))
    except AuthenticationFailed as exc:
        request[AUDIT_REASON] = exc.reason
        if exc.claimed is not None:
            request[AUDIT_CLAIMED] = exc.claimed
        raise Unauthenticated(exc.message) from None
    request[PRINCIPAL] = principal
    await authorize(request, principal, rule)
    return await handler(request)


def is_public(rule: Rule, metrics_public: bool) -> bool:
    return rule.permission is Permission.PUBLIC or (
        rule.permission is Permission.METRICS and metrics_public
    )


async def authorize(request: web.Request, principal: Principal, rule: Rule) -> None:
    permission = rule.permission
    collection = await target_collection(request, rule)
    if principal.allows(permission, collection):
        return
    if not principal.granted(permission):
        request[AUDIT_REASON] = f"role {principal.role.value} lacks {permission.value}"
        raise Forbidden(f"the {principal.role.value} role may not do this ({permission.value})")
    request[AUDIT_REASON] = "outside the credential's collection scope"
    what = f"collection {collection!r}" if collection else "node-wide calls"
    raise Forbidden(f"this credential is not allowed {what}")


async def target_collection(request: web.Request, rule: Rule) -> str | None:
    """The collection a call targets: from the path, or from a field of the body."""
    if rule.path:
        return request.match_info.get("name")
    if rule.body is None or not request.can_read_body:
        return None
    body = await read_json_bytes(request)  # cached: the view reads the same bytes again
    try:  # the one field only: msgspec skips the rest without building it
        name = msgspec.json.decode(body, type=_target_type(rule.body)).value
    except msgspec.DecodeError:
        return None  # the view will say what is wrong with the body
    if isinstance(name, str):
        request[AUDIT_COLLECTION] = name
        return name
    return None


@functools.cache
def _target_type(field: str) -> Any:
    return msgspec.defstruct(
        "Target", [("value", Any, None)], rename={"value": field}, forbid_unknown_fields=False
    )


def credentials(request: web.Request, cert: dict[str, Any] | None) -> Credentials:
    api_key = request.headers.get("X-API-Key") or request.headers.get("api-key")
    bearer = None
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        bearer = value.strip()
    return Credentials(api_key=api_key, bearer=bearer, peer_cert=cert)


def verified_peer_certificate(request: web.Request) -> dict[str, Any] | None:
    """The client's certificate when TLS verified one (an unverified one is never seen)."""
    transport = request.transport
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    return cert if isinstance(cert, dict) and cert else None
