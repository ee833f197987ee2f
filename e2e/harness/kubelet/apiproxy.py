"""Make the apiserver reachable from pods, the way kube-proxy would for the
`kubernetes` Service.

kube-apiserver listens on 127.0.0.1 only, which a pod's network namespace
cannot reach; it advertises the bridge gateway address instead. This forwards
TCP from <gateway>:<apiserver port> and <gateway>:443 to 127.0.0.1:<port>, so
in-cluster clients work both through KUBERNETES_SERVICE_HOST/PORT and through
https://kubernetes.default.svc (DNS resolves it to the gateway). The serving
certificate covers the advertise address, so TLS verification with the
projected ca.crt succeeds.
"""

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def run_proxy(listen: str, ports: list[int], target: tuple[str, int]) -> None:
    connections: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        connections.update(pipes)
        for pipe in pipes:
            pipe.add_done_callback(connections.discard)
        await asyncio.gather(*pipes)

    servers = [await asyncio.start_server(handle, listen, port) for port in ports]
    log.info("apiserver reachable from pods on %s ports %s", listen, ports)
    try:
        await asyncio.gather(*(s.serve_forever() for s in servers))
    finally:
        for task in connections:
            task.cancel()
