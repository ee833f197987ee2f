"""Qdrant's collection snapshots: make, list, download and delete snapshot files, and
recover a collection from one (uploaded, fetched from a URL, or a file of this node's);
and its full snapshots, of the whole node, restored with ``vectorizer restore``.

The files are this node's (``<data dir>/collection-snapshots/<collection>/``): they
outlive the collection, so a deleted collection can be recovered from its last one.
A recovery replaces the collection through the log (``Store.recover_collection``), so
it is durable and replicas follow it. With ``wait=false`` making a file or recovering
is answered at once (202, ``accepted``) and done in the background (its failure in
the log), as in Qdrant; an upload is received first either way. ``priority`` is
accepted and has nothing to choose between here (no peers share a collection's
shards).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from vectorizer.engine import collection_snapshots, validation
from vectorizer.engine.collection_snapshots import Description
from vectorizer.engine.files import make_dir_durably, sha256
from vectorizer.engine.store import Store
from vectorizer.errors import (
    InsufficientStorage,
    InvalidSnapshot,
    RequestTimeout,
    StorageError,
    ValidationError,
    VectorizerError,
)
from vectorizer.qdrant import schemas
from vectorizer.qdrant.errors import for_qdrant
from vectorizer.qdrant.responses import ACCEPTED
from vectorizer.qdrant.views import qdrant_view
from vectorizer.security.roles import Permission
from vectorizer.server.http import read_as
from vectorizer.server.keys import SETTINGS, STORE
from vectorizer.server.middlewares.auth import authorize_also
from vectorizer.settings import is_web_url

PRIORITIES = frozenset({"snapshot", "replica", "no_sync"})
_CHUNK = 1 << 20
_REDIRECTS = 5  # followed at most (aiohttp's default is 10)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_T = TypeVar("_T")


@qdrant_view
async def create_snapshot(request: web.Request) -> Any:
    """Snapshot the collection now into a new file; its description."""
    store, name = request.app[STORE], request.match_info["name"]
    store.collection(name)  # (refused now, even when not waited for)
    return await _then(request, lambda: store.snapshot_collection(name), f"snapshot of {name!r}")


@qdrant_view
async def list_snapshots(request: web.Request) -> Any:
    """The collection's snapshot files, oldest first."""
    return await _listed(_folder(request))


async def download_snapshot(request: web.Request) -> web.StreamResponse:
    """The snapshot file itself (not enveloped)."""
    try:
        path = collection_snapshots.find(_folder(request), request.match_info["snapshot_name"])
    except VectorizerError as err:
        raise for_qdrant(err, request.match_info["name"]) from None
    return _file(path)


def _file(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{path.name}"',
        },
    )


@qdrant_view
async def delete_snapshot(request: web.Request) -> Any:
    """Delete one snapshot file of the collection."""
    collection_snapshots.delete(_folder(request), request.match_info["snapshot_name"])
    return True


@qdrant_view
async def recover_snapshot(request: web.Request) -> Any:
    """Replace (or create) the collection from the snapshot file at ``location``: an
    http(s) URL, or ``file://`` naming a snapshot file of this node."""
    request.app[STORE].check_writable()  # (now, even when not waited for)
    body = await read_as(request, schemas.SnapshotRecover)
    _check_priority(body.priority, "priority")
    _waits(request)
    store = request.app[STORE]
    try:
        url = urlsplit(body.location)
    except ValueError:  # (an unbalanced IPv6 bracket, say: a bad location like any other)
        url = None
    if url is not None and url.scheme == "file":
        path = _own_file(request, store, unquote(url.path))
        await _check_sum(path, body.checksum)
        return await _recover(request, path, owned=False)
    if not is_web_url(body.location):
        raise ValidationError("an http(s):// URL or a file:// path", field="location")
    return await _recover_received(
        request, lambda path: _fetch(request, body.location, body.api_key, path), body.checksum
    )


@qdrant_view
async def upload_snapshot(request: web.Request) -> Any:
    """Replace (or create) the collection from a snapshot file sent as the multipart
    field ``snapshot``."""
    request.app[STORE].check_writable()  # (before receiving a file, even when not waited for)
    _check_priority(request.query.get("priority"), "priority")
    _waits(request)
    checksum = request.query.get("checksum")
    return await _recover_received(request, lambda path: _receive(request, path), checksum)


# ---- the whole node (restored with ``vectorizer restore``) ------------------------------------


@qdrant_view
async def create_full_snapshot(request: web.Request) -> Any:
    """Snapshot every collection and alias now into a new file; its description."""
    return await _then(request, request.app[STORE].snapshot_node, "full snapshot")


@qdrant_view
async def list_full_snapshots(request: web.Request) -> Any:
    """The node's full snapshot files, oldest first."""
    return await _listed(request.app[STORE].full_snapshots_dir)


async def _listed(folder: Path) -> list[dict[str, Any]]:
    """The snapshot files in ``folder`` as Qdrant describes them (read off the loop:
    a file without its checksum beside it is hashed)."""
    files = await asyncio.to_thread(collection_snapshots.listed, folder)
    return [d.to_dict() for d in files]


async def download_full_snapshot(request: web.Request) -> web.StreamResponse:
    """The full snapshot file itself (not enveloped)."""
    folder = request.app[STORE].full_snapshots_dir
    return _file(collection_snapshots.find(folder, request.match_info["snapshot_name"]))


@qdrant_view
async def delete_full_snapshot(request: web.Request) -> Any:
    """Delete one full snapshot file."""
    folder = request.app[STORE].full_snapshots_dir
    collection_snapshots.delete(folder, request.match_info["snapshot_name"])
    return True


# ----------------------------------------------------------------------------------------------


async def _recover_received(
    request: web.Request, receive: Callable[[Path], Awaitable[None]], checksum: str | None
) -> Any:
    """Receive a snapshot file into a fresh path, check its checksum, and recover from
    it (the file removed afterwards, or at once if it does not arrive whole)."""
    path = _incoming(request.app[STORE])
    try:
        await receive(path)
        await _check_sum(path, checksum)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return await _recover(request, path, owned=True)


async def _recover(request: web.Request, path: Path, *, owned: bool) -> Any:
    """Recover the path's collection from the file at ``path`` (removed afterwards when
    ``owned``): before answering, or (``wait=false``) after."""
    store, name = request.app[STORE], request.match_info["name"]
    return await _then(
        request,
        lambda: _removing(store.recover_collection(name, path), path if owned else None),
        f"recovery of {name!r}",
    )


async def _then(
    request: web.Request, work: Callable[[], Coroutine[Any, Any, Any]], what: str
) -> Any:
    """What ``work()`` gives (a description: its dict; else true), or, with
    ``wait=false``, ``ACCEPTED`` at once and the work done in the background."""
    if not _waits(request):
        request.app[STORE].in_background(work(), what)
        return ACCEPTED
    result = await work()
    return result.to_dict() if isinstance(result, Description) else True


async def _removing(work: Awaitable[object], path: Path | None) -> None:
    try:
        await work
    finally:
        if path is not None:
            await asyncio.to_thread(path.unlink, missing_ok=True)


def _waits(request: web.Request) -> bool:
    """Qdrant's ``wait`` (true unless ``false``)."""
    wait = request.query.get("wait", "true")
    if wait not in ("true", "false"):
        raise ValidationError("true or false", field="wait")
    return wait == "true"


def _folder(request: web.Request) -> Path:
    """The folder of the snapshot files of the path's collection (or of the one it is
    an alias of); the name is checked, so the path stays in the node's folder."""
    store = request.app[STORE]
    name = validation.collection_name(request.match_info["name"], field="collection")
    return store.collection_snapshots_dir / store.resolve(name)


def _check_priority(priority: str | None, field: str) -> None:
    if priority is not None and priority not in PRIORITIES:
        raise ValidationError(f"one of {', '.join(sorted(PRIORITIES))}", field=field)


def _own_file(request: web.Request, store: Store, raw: str) -> Path:
    """A ``file://`` location: only a snapshot file of this node's (no other file of the
    machine is read on a client's word), of a collection the caller may read (its data
    is what the recovered collection will hold). Refused before it is looked for, and
    in words that name no folder of the node: no probing for other files."""
    base = store.collection_snapshots_dir.resolve()
    path = Path(raw).resolve()
    inside = path.is_relative_to(base) and len(path.relative_to(base).parts) == 2
    if not inside or path.suffix != collection_snapshots.SUFFIX:
        raise ValidationError(
            "a file:// location must be a collection's snapshot file on this node (as "
            "the snapshot listing names it, under the node's collection snapshot folder)",
            field="location",
        )
    authorize_also(request, Permission.READ, path.relative_to(base).parts[0])
    if not path.is_file():
        raise ValidationError(
            f"no snapshot file {path.name!r} of collection {path.parent.name!r}",
            field="location",
        )
    return path


def _incoming(store: Store) -> Path:
    """A fresh path in the node's snapshot folder to receive a file into (a leftover
    of a crash is removed at start-up)."""
    path = store.collection_snapshots_dir / f".tmp-incoming-{uuid.uuid4().hex}"
    try:  # (durably: the collections' snapshot files are made in it later)
        make_dir_durably(path.parent)
    except OSError as exc:
        raise StorageError.refused(exc, "receiving the snapshot file") from exc
    return path


async def _receive(request: web.Request, path: Path) -> None:
    """The multipart field ``snapshot`` written to ``path``."""
    wanted = ValidationError(
        "a multipart/form-data body with the file in the field 'snapshot'", field="snapshot"
    )
    if request.content_type != "multipart/form-data":
        raise wanted
    try:
        async for part in await request.multipart():
            if isinstance(part, aiohttp.BodyPartReader) and part.name == "snapshot":
                await _write(request, path, _chunks(part))
                return
    except (ValueError, KeyError, AssertionError, RuntimeError):  # aiohttp's malformed form
        raise wanted from None
    raise wanted


async def _chunks(part: aiohttp.BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK):
        yield chunk


async def _fetch(request: web.Request, url: str, api_key: str | None, path: Path) -> None:
    settings = request.app[SETTINGS]
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.request_body_timeout_s, sock_read=None
    )
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            target = URL(url)
            origin = target.origin()
            for _ in range(_REDIRECTS + 1):
                # The source's api_key goes to the source's origin only, not to wherever
                # it redirects (aiohttp would send every header on).
                same = target.origin() == origin
                headers = {"api-key": api_key} if api_key and same else None
                async with session.get(target, headers=headers, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECT_STATUSES and location:
                        target = target.join(URL(location))
                        if target.scheme not in ("http", "https"):
                            raise ValidationError(
                                f"fetching the snapshot: {url} redirected to {target.scheme}:",
                                field="location",
                            )
                        continue
                    if response.status != 200:
                        raise ValidationError(
                            f"fetching the snapshot: {target} answered {response.status}",
                            field="location",
                        )
                    await _write(request, path, response.content.iter_chunked(_CHUNK))
                    return
            raise ValidationError(
                f"fetching the snapshot: {url} redirected more than {_REDIRECTS} times",
                field="location",
            )
    except VectorizerError:  # (the node's own disk failing is a StorageError, not the client's)
        raise
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # (a Location yarl cannot read)
        raise ValidationError(
            f"fetching the snapshot from {url}: {exc or type(exc).__name__}", field="location"
        ) from None


async def _write(request: web.Request, path: Path, chunks: AsyncIterator[bytes]) -> None:
    """Write the file as it arrives: within the disk's room (less the node's reserve),
    and with no pause between pieces longer than ``request_body_timeout_s``. Every
    error of the node's disk is a ``StorageError`` (a full one: ``insufficient_storage``),
    the last piece's too, which reaches the disk only when the file is closed."""
    store = request.app[STORE]
    idle = request.app[SETTINGS].request_body_timeout_s
    room = max(store.disk_free() - store.disk_reserve(), 0)
    written = 0
    f = await _on_disk(path.open, "wb")
    try:
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(chunks, None)
            except TimeoutError:
                raise RequestTimeout(
                    f"the snapshot stopped arriving for {idle:g}s", field="snapshot"
                ) from None
            if chunk is None:
                break
            written += len(chunk)
            if written > room:
                raise InsufficientStorage(
                    f"the snapshot file is larger than the {room >> 20} MiB of room on the "
                    "node's disk (its reserve kept)"
                )
            await _on_disk(f.write, chunk)
        await _on_disk(f.close)  # (what is still buffered is written now)
    finally:
        with contextlib.suppress(OSError):  # (failed already: that error is the one said)
            f.close()


async def _on_disk(work: Callable[..., _T], *args: Any) -> _T:
    """``work(*args)`` off the loop, its ``OSError`` the ``StorageError`` it is."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, work, *args)
    except OSError as exc:
        raise StorageError.refused(exc, "receiving the snapshot file") from exc


async def _check_sum(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = await asyncio.get_running_loop().run_in_executor(None, sha256, path)
    if actual != expected.lower():
        raise InvalidSnapshot(
            f"the snapshot's SHA-256 is {actual}, not {expected}", field="checksum"
        )
