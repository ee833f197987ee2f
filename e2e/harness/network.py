"""Pod networking: one Linux bridge per cluster, one network namespace per pod.

Address plan for cluster slot k (0..15), all inside 10.244.0.0/16:
  bridge  vze2e<k>   10.244.(16k).1/20   (the host's address; pods' gateway)
  node n  podCIDR    10.244.(16k+1+n).0/24
Pods get an address from their node's /24 but a /20 prefix, so every pod of the
cluster is on-link on the bridge. IP forwarding stays off: packets from a pod
reach the host and other pods, nothing beyond.
"""

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

SUPERNET = IPv4Network("10.244.0.0/16")
MAX_SLOTS = 16
MAX_NODES = 15
log = logging.getLogger(__name__)


class NetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class ClusterNetwork:
    slot: int

    @property
    def bridge(self) -> str:
        return f"vze2e{self.slot}"

    @property
    def prefix(self) -> str:
        """Prefix of netns and veth names: lets cleanup find only this cluster's leftovers."""
        return f"vz{self.slot}"

    @property
    def subnet(self) -> IPv4Network:
        return IPv4Network(f"10.244.{16 * self.slot}.0/20")

    @property
    def gateway(self) -> IPv4Interface:
        return IPv4Interface(f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}")

    def node_cidr(self, node_index: int) -> IPv4Network:
        if not 0 <= node_index < MAX_NODES:
            msg = f"node index {node_index} out of range 0..{MAX_NODES - 1}"
            raise NetworkError(msg)
        return IPv4Network(f"10.244.{16 * self.slot + 1 + node_index}.0/24")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


OWNERS = Path("/run/vectorizer-e2e")


def _owner_file(net: ClusterNetwork) -> Path:
    return OWNERS / f"{net.bridge}.owner"


def create_cluster_network(owner: str, stale: Callable[[str], bool]) -> ClusterNetwork:
    """Claim the first free slot by creating its bridge (creation is atomic).

    `owner` is stored beside the bridge; a later caller whose `stale(owner)`
    says its cluster is dead (e.g. a killed test run) reclaims the slot.
    """
    for slot in range(MAX_SLOTS):
        net = ClusterNetwork(slot)
        result = _ip("link", "add", net.bridge, "type", "bridge")
        if result.returncode != 0 and "File exists" in result.stderr:
            try:
                previous = _owner_file(net).read_text()
            except OSError:
                continue  # being set up right now, or not ours
            if not stale(previous):
                continue
            log.warning("reclaiming %s from a dead cluster", net.bridge)
            delete_cluster_network(net)
            result = _ip("link", "add", net.bridge, "type", "bridge")
            if result.returncode != 0 and "File exists" in result.stderr:
                continue
        if result.returncode != 0:
            why = result.stderr.strip()
            msg = f"cannot create bridge {net.bridge}: {why} (needs root and iproute2)"
            raise NetworkError(msg)
        for args in (
            ("addr", "add", str(net.gateway), "dev", net.bridge),
            ("link", "set", net.bridge, "up"),
        ):
            result = _ip(*args)
            if result.returncode != 0:
                delete_cluster_network(net)
                msg = f"ip {' '.join(args)}: {result.stderr.strip()}"
                raise NetworkError(msg)
        OWNERS.mkdir(parents=True, exist_ok=True)
        _owner_file(net).write_text(owner)
        return net
    msg = f"all {MAX_SLOTS} bridge slots (vze2e0..) are taken; `ip link` lists leftovers"
    raise NetworkError(msg)


def delete_cluster_network(net: ClusterNetwork) -> None:
    """Remove the bridge and every pod namespace of the cluster that is left."""
    # `ip netns list` prints "name (id: N)"; kubelet prefixes are <prefix>n<node>.
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(f"{net.prefix}n"):
            _ip("netns", "delete", name)
    _ip("link", "delete", net.bridge)
    _owner_file(net).unlink(missing_ok=True)


async def _aip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        msg = f"ip {' '.join(args)}: {err.decode().strip()}"
        raise NetworkError(msg)


@dataclass(frozen=True)
class PodSandbox:
    """A pod's network namespace, wired to the bridge through a veth pair."""

    netns: str
    host_veth: str
    address: IPv4Address

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"


async def create_sandbox(
    bridge: str, prefix: str, key: str, address: IPv4Address, gateway: IPv4Interface
) -> PodSandbox:
    """Namespace <prefix>-<key>: lo, eth0 with `address`, default route via `gateway`."""
    sandbox = PodSandbox(f"{prefix}-{key}", f"{prefix}h{key}", address)
    await delete_sandbox(sandbox)  # leftovers of a crashed run with the same key
    await _aip("netns", "add", sandbox.netns)
    try:
        await _aip(
            "link",
            "add",
            sandbox.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            sandbox.netns,
        )
        await _aip("link", "set", sandbox.host_veth, "master", bridge, "up")
        ns = ("-n", sandbox.netns)
        await _aip(*ns, "link", "set", "lo", "up")
        await _aip(*ns, "addr", "add", f"{address}/{gateway.network.prefixlen}", "dev", "eth0")
        await _aip(*ns, "link", "set", "eth0", "up")
        await _aip(*ns, "route", "add", "default", "via", str(gateway.ip))
    except BaseException:  # also cancellation: leave no half-built namespace
        await delete_sandbox(sandbox)
        raise
    return sandbox


async def delete_sandbox(sandbox: PodSandbox) -> None:
    # Deleting the namespace destroys eth0 and with it the host end of the pair.
    with contextlib.suppress(NetworkError):
        await _aip("netns", "delete", sandbox.netns)
    with contextlib.suppress(NetworkError):
        await _aip("link", "delete", sandbox.host_veth)


class AddressPool:
    """Pod addresses of one node's /24, handed out round-robin.

    Round-robin keeps a just-freed address unused for a while, so a stale
    EndpointSlice or ARP entry never points at the pod's successor.
    """

    def __init__(self, cidr: IPv4Network) -> None:
        self._hosts = list(cidr.hosts())
        self._used: set[IPv4Address] = set()
        self._next = 0

    def allocate(self) -> IPv4Address:
        for _ in self._hosts:
            addr = self._hosts[self._next]
            self._next = (self._next + 1) % len(self._hosts)
            if addr not in self._used:
                self._used.add(addr)
                return addr
        msg = "node pod CIDR exhausted"
        raise NetworkError(msg)

    def release(self, addr: IPv4Address) -> None:
        self._used.discard(addr)
