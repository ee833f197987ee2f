"""Liveness, readiness and startup probes: httpGet, tcpSocket and exec."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from ..kube import JsonDict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go: the pod IP, its named ports, a way into its namespaces."""

    host: str
    ports: Mapping[str, int]
    exec_prefix: Callable[[], list[str] | None]
    env: Mapping[str, str]


def _port(value: object, target: ProbeTarget) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else target.ports[text]


async def _http(spec: JsonDict, target: ProbeTarget, limit: float) -> bool:
    scheme = str(spec.get("scheme", "HTTP")).lower()
    host = spec.get("host") or target.host
    url = f"{scheme}://{host}:{_port(spec['port'], target)}{spec.get('path', '/')}"
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders", [])}
    headers.setdefault("User-Agent", "kube-probe/process-kubelet")
    client_timeout = aiohttp.ClientTimeout(total=limit)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url, headers=headers, ssl=False, allow_redirects=False) as response,
    ):
        return 200 <= response.status < 400


async def _tcp(spec: JsonDict, target: ProbeTarget, limit: float) -> bool:
    host = spec.get("host") or target.host
    async with asyncio.timeout(limit):
        _, writer = await asyncio.open_connection(host, _port(spec["port"], target))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _exec(spec: JsonDict, target: ProbeTarget, limit: float) -> bool:
    prefix = target.exec_prefix()
    if prefix is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        *spec["command"],
        env=dict(target.env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(limit):
            return await proc.wait() == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


async def check(probe: JsonDict, target: ProbeTarget) -> bool:
    limit = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            return await _http(probe["httpGet"], target, limit)
        if "tcpSocket" in probe:
            return await _tcp(probe["tcpSocket"], target, limit)
        if "exec" in probe:
            return await _exec(probe["exec"], target, limit)
    except (OSError, TimeoutError, aiohttp.ClientError, KeyError, ValueError):
        return False
    log.warning("unsupported probe handler %s: treated as failing", sorted(probe))
    return False


async def run_probe(
    probe: JsonDict,
    target: ProbeTarget,
    on_result: Callable[[bool], Awaitable[None]],
    initial: bool,
) -> None:
    """Probe forever; call on_result each time the thresholded result flips."""
    period = float(probe.get("periodSeconds", 10))
    success_threshold = int(probe.get("successThreshold", 1))
    failure_threshold = int(probe.get("failureThreshold", 3))
    await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
    state, streak = initial, 0
    while True:
        ok = await check(probe, target)
        streak = streak + 1 if ok != state else 0
        if streak and streak >= (success_threshold if ok else failure_threshold):
            state, streak = ok, 0
            await on_result(ok)
        await asyncio.sleep(period)
