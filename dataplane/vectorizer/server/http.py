"""Reading requests and writing responses: JSON in and out, with structured errors."""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import HttpVersion11, web

from vectorizer.errors import MalformedJson, PayloadTooLarge, RequestTimeout, ValidationError
from vectorizer.security.limits import check_json_depth
from vectorizer.server.exchange import EXCHANGE
from vectorizer.server.keys import SETTINGS, STORE

T = TypeVar("T")

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
# Decoded into Python objects, a JSON body of vectors takes 4-5 times its size (a float
# of ~10 characters becomes a 24-byte object and an 8-byte list slot); with the body
# itself and the vectors' float32 copy, about this many times its size while a write is
# worked on. Bodies below SMALL_BODY are not worth the check.
_DECODED_FACTOR = 6
SMALL_BODY = 1 << 20
# An answer's vectors while it is built: per component a Python float (24 bytes) and its
# list slot (8), then ~12 bytes of JSON. Answers below _SMALL_ANSWER are not measured.
_ANSWER_BYTES_PER_COMPONENT = 48
_SMALL_ANSWER = 16 << 20


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def struct_response(data: Any, status: int = 200) -> web.Response:
    """Like ``json_response``, for bodies holding the engine's result structs (msgspec
    encodes them natively; orjson is quicker for plain dicts and lists)."""
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


# Set while the client holds its body back: it waits for a ``100 Continue`` not sent (yet),
# or its announced body is refused unread (413). An answer sent before the body is all in
# then closes the connection: a client that (as RFC 9110 allows) never sends it would
# have its next request on the connection taken for the rest of this body.
HELD_BACK = web.RequestKey("vectorizer.body_held_back", bool)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def expect_continue(request: web.Request) -> None:
    """Answer ``Expect: 100-continue`` once the body is wanted: ``read_body`` sends the
    ``100 Continue`` when a view or admission first reads the body, that is after the
    route is resolved and the caller authenticated, so a refused call (401, 403, 429,
    413 for a body announced over ``max_body_bytes``) is answered before the client
    sends a byte of its body. A multipart body (a snapshot upload, read by aiohttp's
    multipart reader) is asked for at once. Other expectations are ignored, as RFC 9110
    allows (aiohttp answered them with a plain-text 417 before any middleware ran)."""
    if request.version != HttpVersion11:
        return
    if request.headers.get("Expect", "").lower() != "100-continue":
        return
    length = request.content_length
    within = length is None or length <= request.app[SETTINGS].max_body_bytes
    if within and request.content_type == "multipart/form-data":
        await _send_continue(request)
        return
    request[HELD_BACK] = True


async def _send_continue(request: web.Request) -> None:
    await request.writer.write(_CONTINUE)
    request.writer.output_size = 0  # (as aiohttp's own handler: no answer began)


def holds_body_back(request: web.BaseRequest) -> bool:
    """Whether an answer now leaves the client holding (some of) its body back: the
    connection cannot carry another request and is closed after the answer."""
    return not request.content.is_eof() and request.get(HELD_BACK, False)


async def read_body(request: web.Request) -> bytes:
    """The whole body, within ``max_body_bytes`` and ``request_body_timeout_s``.

    aiohttp waits for a body as long as the client keeps the connection open, so a
    client trickling bytes could hold a handler forever; past the timeout it gets a 408
    and the connection is closed (its unread bytes are not worth waiting for).
    """
    settings = request.app[SETTINGS]
    announced = request.content_length
    if announced is not None and announced > settings.max_body_bytes:  # (none of it read)
        request[HELD_BACK] = True  # not read: the 413 closes the connection
        limit = settings.max_body_bytes
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes", field="body")
    content = request.content
    if request.get(HELD_BACK, False):
        request[HELD_BACK] = False
        if not content.is_eof():  # (a client may send it without waiting)
            await _send_continue(request)
    if content.is_eof():  # all of it has arrived: take it, no wait to bound
        body = content.read_nowait()
    else:
        try:
            async with asyncio.timeout(settings.request_body_timeout_s):
                body = await request.read()
        except TimeoutError:
            raise RequestTimeout(
                f"the request body did not arrive within {settings.request_body_timeout_s:g}s",
                field="body",
            ) from None
        except web.HTTPRequestEntityTooLarge:
            body = None
    if body is None or len(body) > settings.max_body_bytes:
        limit = settings.max_body_bytes
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes", field="body")
    return body


async def read_json_bytes(request: web.Request) -> bytes:
    """The body, which must be present and nest no deeper than ``max_json_depth``. Read
    and checked once, then kept on the exchange (admission may read it before the view)."""
    ex = request[EXCHANGE]
    if ex.body is not None:
        return ex.body
    body = await read_body(request)
    if not body:
        raise MalformedJson("the request needs a JSON body", field="body")
    if len(body) > SMALL_BODY:
        request.app[STORE].check_transient(
            _DECODED_FACTOR * len(body), f"a request body of {len(body) >> 20} MiB", "body"
        )
    check_json_depth(body, request.app[SETTINGS].max_json_depth)
    ex.body = body
    return body


def check_answer_fits(request: web.Request, vectors: int, dimension: int) -> None:
    """Refuse an answer of up to ``vectors`` vectors (of ``dimension``) that would not fit
    in the memory the node has left, as a body too large to decode is refused: a page of
    10,000 vectors of 3,072 components is over a gigabyte while it is built."""
    nbytes = vectors * dimension * _ANSWER_BYTES_PER_COMPONENT
    if nbytes > _SMALL_ANSWER:
        request.app[STORE].check_transient(
            nbytes, f"an answer of up to {vectors} vectors of dimension {dimension}", "limit"
        )


async def read_json(request: web.Request) -> Any:
    """The body as plain JSON values; malformed JSON is a 400."""
    body = await read_json_bytes(request)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc}", field="body") from None


async def read_as(request: web.Request, kind: type[T]) -> T:
    """The body decoded straight into a msgspec type; unknown or mistyped fields are a 422.
    A type whose ``BODY_OPTIONAL`` is set may come without a body: all its defaults."""
    if getattr(kind, "BODY_OPTIONAL", False) and not request.can_read_body:
        return kind()
    return decode_as(await read_json_bytes(request), kind)


def decode_as(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        message, field = _message_and_field(str(exc))
        raise ValidationError(message, field=field or "body") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise _malformed(body) from None


def _malformed(body: bytes) -> MalformedJson:
    """What is wrong with a body msgspec could not decode, in orjson's words (which say
    where, and name surrogates and bad UTF-8 for what they are)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return MalformedJson(f"malformed JSON: {exc}", field="body")
    return MalformedJson("malformed JSON", field="body")


def convert_as(value: Any, kind: type[T], prefix: str = "") -> T:
    """Like ``decode_as`` for already-parsed JSON values."""
    try:
        return msgspec.convert(value, type=kind)
    except msgspec.ValidationError as exc:
        message, field = _message_and_field(str(exc))
        raise ValidationError(message, field=_join(prefix, field) or "body") from None


def _message_and_field(text: str) -> tuple[str, str | None]:
    m = _AT.search(text)
    path = m.group("path") if m else ""
    # msgspec writes the keys of a free-form object (a filter, a payload) as "[...]":
    # the field is named up to the first of them
    field = path.split("[...]", 1)[0].lstrip(".") or None
    # (a key that is "" names no more than the object holding it)
    unknown = re.search(r"unknown field `([^`]+)`", text)
    if unknown:
        field = _join(field or "", unknown.group(1))
    missing = re.search(r"missing required field `([^`]+)`", text)
    if missing:
        field = _join(field or "", missing.group(1))
    return (text[: m.start()] if m else text), field


def _join(prefix: str, field: str | None) -> str | None:
    if not prefix:
        return field
    if not field:
        return prefix
    return f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"
