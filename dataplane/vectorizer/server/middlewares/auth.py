"""Admit a request: authenticate the caller, check the route's permission (the one place
RBAC happens) and the caller's rate (before the permission: a refused call counts too).

The rule comes from ``security.permissions`` by route template; views never check
roles. Failures raise ``Unauthenticated`` (401: no or bad credentials) or ``Forbidden``
(403: a known principal without the permission) and leave the reason for the audit log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.errors import Forbidden, RateLimited, Unauthenticated
from vectorizer.security.authn import AuthenticationFailed, Credentials
from vectorizer.security.guard import Guard
from vectorizer.security.permissions import Rule, rule_for
from vectorizer.security.roles import ANONYMOUS, Permission, Principal
from vectorizer.server.exchange import EXCHANGE, Exchange
from vectorizer.server.http import read_json_bytes
from vectorizer.server.keys import GUARD, STORE
from vectorizer.server.middlewares.metrics import UNMATCHED
from vectorizer.server.middlewares.ratelimit import check_rate

log = logging.getLogger(__name__)


async def admit(request: web.Request, ex: Exchange, guard: Guard, template: str) -> None:
    """Let the request through or raise: its rule, then who it is, whether it is within
    its rate, and what it may do. Sets the rule (and the principal once authenticated)."""
    rule = rule_for(request.method, None if template == UNMATCHED else template)
    if rule is None:  # fail closed; tests/unit/test_security_rbac.py keeps this from happening
        log.error("route %s %s has no permission rule; refusing it", request.method, template)
        ex.audit_reason = "route without a permission rule"
        raise Forbidden("no permission is defined for this route")
    ex.rule = rule
    if is_public(rule, guard.settings.metrics_public):
        return
    stream = rule.permission is Permission.REPLICATION_STREAM
    if not guard.enabled and not stream:
        ex.principal = ANONYMOUS
        return
    cert = peer_certificate(request.transport)
    if stream and guard.settings.replication_require_mtls and cert is None:
        ex.audit_reason = "no verified client certificate"
        raise Unauthenticated("the replication stream needs a verified client certificate")
    if not guard.enabled:
        ex.principal = ANONYMOUS
        return
    try:
        principal = guard.authenticator.authenticate(credentials(request.headers, cert))
    except AuthenticationFailed as exc:
        ex.audit_reason = exc.reason
        ex.audit_claimed = exc.claimed
        raise Unauthenticated(exc.message) from None
    ex.principal = principal
    # The rate first: a call the principal may not make costs it a request too (else a
    # limited key could send refused calls, each an audit line, without end).
    check_rate(ex, guard, principal)
    await authorize(request, ex, principal, rule)


def caller_at_once(
    guard: Guard,
    store: Store,
    headers: Mapping[str, str],
    transport: asyncio.BaseTransport | None,
    rule: Rule,
    collection: str,
) -> Principal | None:
    """``admit``'s verdict, the rate aside (``within_rate_at_once``), on a request
    aiohttp does not handle (the fast path's) to a route whose ``rule`` names its
    collection in the path and is neither public nor the replication stream: who asks,
    when it may do ``rule`` to ``collection``; None when ``admit`` would refuse it (401,
    403), for the pipeline to refuse again, with its error and audit line. Only the
    credentials are looked at, before the body is read or the store asked (a refusal
    then costs what the pipeline's does, and its time tells nothing of the collection),
    and nothing is spent: the pipeline takes the token a refused request costs."""
    if not guard.enabled:
        return ANONYMOUS
    try:
        principal = guard.authenticator.authenticate(
            credentials(headers, peer_certificate(transport))
        )
    except AuthenticationFailed:
        return None
    return principal if allowed(store, principal, rule.permission, collection) else None


def within_rate_at_once(ex: Exchange, guard: Guard, principal: Principal) -> bool:
    """Take ``principal``'s token for the request ``ex`` (its decision then on ``ex`` for
    the headers); False, taking none, when it is over its rate (the pipeline says 429)."""
    try:
        check_rate(ex, guard, principal)
    except RateLimited:
        ex.rate = None
        return False
    ex.principal = principal
    return True


def still_admitted(request: web.Request) -> Callable[[], bool] | None:
    """For a stream that outlives its admission (the replication stream): whether the
    credentials it was opened with would still be admitted to it now (not revoked, not
    expired, not rotated past their grace). None when nothing is checked (no auth)."""
    guard = request.app[GUARD]
    if not guard.enabled:
        return None
    given = credentials(request.headers, peer_certificate(request.transport))

    def admitted() -> bool:
        try:
            principal = guard.authenticator.authenticate(given)
        except AuthenticationFailed:
            return False
        return principal.granted(Permission.REPLICATION_STREAM)

    return admitted


def is_public(rule: Rule, metrics_public: bool) -> bool:
    return rule.permission is Permission.PUBLIC or (
        rule.permission is Permission.METRICS and metrics_public
    )


async def authorize(request: web.Request, ex: Exchange, principal: Principal, rule: Rule) -> None:
    check_allowed(
        request, ex, principal, rule.permission, await target_collection(request, ex, rule)
    )


def authorize_also(request: web.Request, permission: Permission, collection: str) -> None:
    """For a view whose request reaches a second collection (a group lookup reads one):
    the caller must be allowed that one too, as admission checked the first."""
    ex = request[EXCHANGE]
    if ex.principal is not None:  # else a public route, or no admission (cannot happen)
        check_allowed(request, ex, ex.principal, permission, collection)


def check_allowed(
    request: web.Request,
    ex: Exchange,
    principal: Principal,
    permission: Permission,
    collection: str | None,
) -> None:
    if allowed(request.app[STORE], principal, permission, collection):
        return
    if collection is not None:  # (a second collection a view reaches: the one refused)
        ex.audit_collection = collection
    if not principal.granted(permission):
        ex.audit_reason = f"role {principal.role.value} lacks {permission.value}"
        raise Forbidden(f"the {principal.role.value} role may not do this ({permission.value})")
    ex.audit_reason = "outside the credential's collection scope"
    what = f"collection {collection!r}" if collection else "node-wide calls"
    raise Forbidden(f"this credential is not allowed {what}")


def allowed(
    store: Store, principal: Principal, permission: Permission, collection: str | None
) -> bool:
    """Whether ``principal`` may do ``permission`` to ``collection`` (node-wide: None).
    An alias is allowed what its collection is (a scope may also name the alias itself)."""
    return principal.allows(permission, collection) or (
        collection is not None and principal.allows(permission, store.resolve(collection))
    )


async def target_collection(request: web.Request, ex: Exchange, rule: Rule) -> str | None:
    """The collection a call targets: from the path, or from a field of the body."""
    if rule.path:
        return request.match_info.get("name")
    if rule.body is None or not request.can_read_body:
        return None
    body = await read_json_bytes(request)  # cached: the view reads the same bytes again
    try:  # the one field only: msgspec skips the rest without building it
        name = msgspec.json.decode(body, type=_target_type(rule.body)).value
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None  # the view will say what is wrong with the body
    if isinstance(name, str):
        ex.audit_collection = name
        return name
    return None


@functools.cache
def _target_type(field: str) -> Any:
    return msgspec.defstruct(
        "Target", [("value", Any, None)], rename={"value": field}, forbid_unknown_fields=False
    )


def credentials(headers: Mapping[str, str], cert: dict[str, Any] | None) -> Credentials:
    """What a request's headers (case-insensitive) and its TLS layer present."""
    api_key = headers.get("X-API-Key") or headers.get("api-key")
    bearer = None
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        bearer = value.strip()
    return Credentials(api_key=api_key, bearer=bearer, peer_cert=cert)


def peer_certificate(transport: asyncio.BaseTransport | None) -> dict[str, Any] | None:
    """The client's certificate when TLS verified one (an unverified one is never seen)."""
    if transport is None:
        return None
    cert = transport.get_extra_info("peercert")
    return cert if isinstance(cert, dict) and cert else None
