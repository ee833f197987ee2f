"""A minimal cluster DNS (A records under cluster.local), the stand-in for CoreDNS.

Served on the bridge gateway, port 53/udp; every pod's resolv.conf points here.
Names, from Services and EndpointSlices as CoreDNS builds them:
  <service>.<ns>.svc.cluster.local            -> ready endpoint IPs
  <hostname>.<service>.<ns>.svc.cluster.local -> that endpoint (StatefulSet pods)
There is no kube-proxy here, so a ClusterIP is not routable: a ClusterIP
Service resolves to its ready endpoints as if it were headless. Everything
outside cluster.local is NXDOMAIN: pods have no network beyond the bridge.
"""

import asyncio
import logging
import struct
from collections import defaultdict
from typing import cast

from ..kube import JsonDict, Kube, path

DOMAIN = "cluster.local"
TTL = 5
_A, _ANY = 1, 255
log = logging.getLogger(__name__)


class Records:
    """Name -> IPs, rebuilt from the watched Services and EndpointSlices."""

    def __init__(self) -> None:
        self.services: dict[str, JsonDict] = {}  # "ns/name"
        self.slices: dict[str, JsonDict] = {}  # "ns/name" of the slice
        self.names: dict[str, list[str]] = {}

    def rebuild(self) -> None:
        names: dict[str, list[str]] = defaultdict(list)
        for s in self.slices.values():
            meta = s["metadata"]
            service = meta.get("labels", {}).get("kubernetes.io/service-name")
            svc = self.services.get(f"{meta['namespace']}/{service}")
            if not svc or s.get("addressType") != "IPv4":
                continue
            not_ready_ok = bool(svc.get("spec", {}).get("publishNotReadyAddresses"))
            base = f"{service}.{meta['namespace']}.svc.{DOMAIN}"
            for endpoint in s.get("endpoints") or []:
                if not (endpoint.get("conditions", {}).get("ready", True) or not_ready_ok):
                    continue
                for address in endpoint.get("addresses", []):
                    names[base].append(address)
                    if endpoint.get("hostname"):
                        names[f"{endpoint['hostname']}.{base}"].append(address)
        for key in self.services:
            ns, name = key.split("/", 1)
            names.setdefault(f"{name}.{ns}.svc.{DOMAIN}", [])
        self.names = {k: sorted(set(v)) for k, v in names.items()}

    def lookup(self, name: str) -> list[str] | None:
        """IPs for a name; [] for a known name without addresses; None for NXDOMAIN."""
        return self.names.get(name.lower().rstrip("."))


def _parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, qname, qtype, offset after the question)."""
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        msg = "exactly one question expected"
        raise ValueError(msg)
    labels, offset = [], 12
    while (length := packet[offset]) != 0:
        if length & 0xC0:
            msg = "compressed question name"
            raise ValueError(msg)
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype, _qclass = struct.unpack("!HH", packet[offset + 1 : offset + 5])
    return ident, flags, ".".join(labels), qtype, offset + 5


def answer(packet: bytes, records: Records) -> bytes | None:
    """The response to one query packet, or None for garbage."""
    try:
        ident, flags, name, qtype, end = _parse_question(packet)
    except (ValueError, IndexError, struct.error):
        return None
    question = packet[12:end]
    ips = records.lookup(name) if name.lower().rstrip(".").endswith(DOMAIN) else None
    rcode = 3 if ips is None else 0  # NXDOMAIN / NOERROR
    answers = [ip for ip in (ips or []) if qtype in (_A, _ANY)]
    # QR=1, opcode and RD copied from the query, AA=1, RA=0.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0400 | rcode
    header = struct.pack("!HHHHHH", ident, out_flags, 1, len(answers), 0, 0)
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, _A, 1, TTL, 4) + bytes(int(o) for o in ip.split("."))
        for ip in answers
    )
    return header + question + body


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, records: Records) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport is not registered as a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        response = answer(data, self.records)
        if response and self.transport:
            self.transport.sendto(response, addr)


class ClusterDNS:
    def __init__(self, kube: Kube, address: str) -> None:
        self.kube = kube
        self.address = address
        self.records = Records()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.records), local_addr=(self.address, 53)
        )
        log.info("cluster DNS on %s:53", self.address)
        try:
            await asyncio.gather(
                self._watch(path("services"), self.records.services),
                self._watch(path("endpointslices", group="discovery.k8s.io"), self.records.slices),
            )
        finally:
            transport.close()

    async def _watch(self, url: str, store: dict[str, JsonDict]) -> None:
        async for event, obj in self.kube.watch(url, on_list=lambda _: store.clear()):
            key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
            if event == "DELETED":
                store.pop(key, None)
            else:
                store[key] = obj
            self.records.rebuild()
