"""Unit tests of the harness's pure parts (no cluster, no root)."""

import re
import struct
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from e2e.harness.kubelet.config import IMAGE_ENV
from e2e.harness.kubelet.container import LOG_MARKER
from e2e.harness.kubelet.dns import Records, answer
from e2e.harness.kubelet.env import expand
from e2e.harness.kubelet.server import split_runs
from e2e.harness.network import AddressPool, ClusterNetwork


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped, $$ too", env) == "$(A) is escaped, $ too"


def test_address_plan_keeps_clusters_and_nodes_apart() -> None:
    net = ClusterNetwork(2)
    assert net.bridge == "vze2e2"
    assert str(net.gateway) == "10.244.32.1/20"
    assert net.node_cidr(0) == IPv4Network("10.244.33.0/24")
    assert net.node_cidr(1).subnet_of(net.subnet)
    assert not net.node_cidr(0).overlaps(ClusterNetwork(1).subnet)


def test_address_pool_does_not_reuse_a_freed_address_at_once() -> None:
    pool = AddressPool(IPv4Network("10.244.1.0/30"))
    first = pool.allocate()
    pool.release(first)
    assert pool.allocate() != first
    assert pool.allocate() == first  # after wrapping around
    assert first == IPv4Address("10.244.1.1")


def _query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def _records() -> Records:
    records = Records()
    records.services["ns/web"] = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {}}
    records.slices["ns/web-abc"] = {
        "metadata": {
            "name": "web-abc",
            "namespace": "ns",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.1"], "hostname": "web-0", "conditions": {"ready": True}},
            {"addresses": ["10.244.1.2"], "hostname": "web-1", "conditions": {"ready": False}},
        ],
    }
    records.rebuild()
    return records


def test_dns_answers_ready_endpoints_and_pod_hostnames() -> None:
    records = _records()
    response = answer(_query("web-0.web.ns.svc.cluster.local"), records)
    assert response is not None
    ident, flags, _, ancount = struct.unpack("!HHHH", response[:8])
    assert (ident, flags & 0xF, ancount) == (0x1234, 0, 1)
    assert response[-4:] == bytes([10, 244, 1, 1])
    assert records.lookup("web.ns.svc.cluster.local") == ["10.244.1.1"]  # web-1 is not ready
    assert records.lookup("web-1.web.ns.svc.cluster.local") is None


def test_dns_nxdomain_and_nodata() -> None:
    records = _records()
    outside = answer(_query("example.com"), records)
    assert outside is not None and struct.unpack("!H", outside[2:4])[0] & 0xF == 3
    aaaa = answer(_query("web.ns.svc.cluster.local", qtype=28), records)
    assert aaaa is not None
    assert struct.unpack("!H", aaaa[2:4])[0] & 0xF == 0
    assert struct.unpack("!H", aaaa[6:8])[0] == 0
    assert answer(b"\x00garbage", records) is None


def test_log_runs_split_on_markers() -> None:
    data = LOG_MARKER + b"#0 t0\nfirst\n" + LOG_MARKER + b"#1 t1\nsecond\nmore\n"
    assert split_runs(data) == [b"first\n", b"second\nmore\n"]


def test_containers_get_the_images_python_settings() -> None:
    """The process kubelet gives its containers what the image sets for Python (no
    __pycache__ written into the checkout a pod runs from), as the Dockerfile does."""
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    env = " ".join(re.findall(r"^ENV (.*)$", dockerfile.replace("\\\n", " "), re.M))
    python = dict(re.findall(r"(PYTHON\w+)=(\S+)", env))
    assert python and python == IMAGE_ENV
