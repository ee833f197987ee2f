"""Small helpers the native views share."""

from __future__ import annotations

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.engine.validation import PointId, parse_path_id
from vectorizer.errors import ValidationError
from vectorizer.server.keys import SETTINGS, STORE
from vectorizer.settings import Settings


def store(request: web.Request) -> Store:
    return request.app[STORE]


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def path_id(request: web.Request) -> PointId:
    return parse_path_id(request.match_info["id"])


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not lo <= int(raw) <= hi:
        raise ValidationError(f"{name} must be an integer in {lo}..{hi}", field=name)
    return int(raw)


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError(f"{name} must be true or false", field=name)


def check_range(value: int, name: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be in {lo}..{hi}", field=name)
    return value
