"""The kubelet's HTTPS endpoint, just enough for `kubectl logs [-f] [-p] [--tail]`.

kube-apiserver proxies pods/log to https://<node InternalIP>:<kubeletEndpoint
port>/containerLogs/...; without --kubelet-certificate-authority it does not
verify the serving certificate, so a throwaway self-signed one will do.
exec, attach and port-forward are not implemented (501).
"""

import asyncio
import logging
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .container import LOG_MARKER
from .pod import PodWorker

log = logging.getLogger(__name__)


def _self_signed(directory: Path, address: str) -> ssl.SSLContext:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365"]
            + ["-subj", "/CN=process-kubelet", "-addext", f"subjectAltName=IP:{address}"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def split_runs(data: bytes) -> list[bytes]:
    """The log of each run of the container, oldest first, without the marker lines."""
    runs = []
    for chunk in data.split(LOG_MARKER)[1:]:
        _, _, body = chunk.partition(b"\n")
        runs.append(body)
    return runs


def _tail(data: bytes, lines: int | None) -> bytes:
    if lines is None:
        return data
    kept = data.splitlines(keepends=True)
    return b"".join(kept[-lines:]) if lines > 0 else b""


class KubeletServer:
    def __init__(self, find: Callable[[str, str], PodWorker | None], state_dir: Path) -> None:
        self.find = find
        self.state_dir = state_dir
        self.port = 0

    async def start(self, address: str) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/{tail:.*}", self._unsupported)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = await asyncio.to_thread(_self_signed, self.state_dir / "pki", address)
        sock = socket.socket()
        sock.bind((address, 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(runner, sock, ssl_context=ctx).start()
        log.info("kubelet API (logs only) on https://%s:%d", address, self.port)
        return runner

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _unsupported(self, request: web.Request) -> web.Response:
        text = f"{request.path}: not supported by the process kubelet (only containerLogs)\n"
        return web.Response(status=501, text=text)

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        worker = self.find(ns, name)
        if worker is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{name} is not on this node\n")
        log_path = worker.dir / "logs" / f"{container}.log"
        data = await asyncio.to_thread(log_path.read_bytes) if log_path.exists() else b""
        runs = split_runs(data) if data else [b""]
        previous = request.query.get("previous") == "true"
        if previous and len(runs) < 2:
            raise web.HTTPBadRequest(text=f"previous terminated container {container} not found\n")
        body = runs[-2] if previous else runs[-1]
        tail = request.query.get("tailLines")
        body = _tail(body, int(tail) if tail else None)
        if previous or request.query.get("follow") != "true":
            return web.Response(body=body, content_type="text/plain")
        return await self._follow(request, worker, log_path, body, len(data))

    async def _follow(
        self, request: web.Request, worker: PodWorker, log_path: Path, first: bytes, offset: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(first)
        while not worker.terminating:
            await asyncio.sleep(0.5)
            with log_path.open("rb") as f:
                f.seek(offset)
                more = f.read()
            if LOG_MARKER in more:  # the container restarted: the stream ends, as with the kubelet
                await response.write(more.split(LOG_MARKER, 1)[0])
                break
            offset += len(more)
            if more:
                await response.write(more)
        await response.write_eof()
        return response
