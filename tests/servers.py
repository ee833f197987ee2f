"""Start real ``vectorizer serve`` processes on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sitecustomize(folder: Path, source: str) -> dict[str, str]:
    """The environment that makes a server process run ``source`` as it starts (a
    ``sitecustomize`` module in ``folder``): how a test reaches into the process at the
    edge of the world, e.g. ``os.fsync`` failing or observed. ``python -P`` (see
    ``ServerProcess.start``) still honours ``PYTHONPATH``; the folder goes before the
    one the tests were given (which says where the code under test is)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(source)
    given = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), given) if p)}


@dataclass
class ServerProcess:
    """One data-plane process; stop it with ``terminate`` (SIGTERM) or ``kill`` (SIGKILL).

    For a node with TLS set ``ca_file`` (and ``client_cert`` when it requires client
    certificates): ``url`` becomes https and the helpers verify against that CA. With
    auth on, ``api_key`` is what ``request`` sends (``/ready`` needs none).
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    ca_file: Path | None = None
    client_cert: tuple[Path, Path] | None = None  # (certificate, key) this client presents
    api_key: str | None = None
    cgroup: Path | None = None  # a cgroup directory the process starts in (tests/cgroups.py)
    cwd: Path | None = None  # the directory it starts in (else the tests')
    # python -P: the package is found where it is installed, not in ``cwd``; False: as
    # ``python -m vectorizer`` from a source folder finds it
    isolated: bool = True

    @property
    def scheme(self) -> str:
        return "https" if self.ca_file is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return ctx

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> ServerProcess:
        self.log_path = self.log_path or self.data_dir.parent / f"server-{self.port}.log"
        cmd = [
            sys.executable,
            *(["-P"] if self.isolated else []),  # (the installed package, whatever lies in cwd)
            "-m",
            "vectorizer",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            # (preexec_fn only when needed: it makes the child run Python between fork and
            # exec, which is unsafe while other threads hold locks)
            join = self._join_cgroup if self.cgroup is not None else None
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=join, cwd=self.cwd
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _join_cgroup(self) -> None:
        """In the child, before exec: move into ``cgroup``, so that everything the server
        allocates counts there from its first byte."""
        assert self.cgroup is not None
        (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(
                    self.url + "/ready", timeout=1, context=self.ssl_context()
                ) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def terminate(self, timeout: float = 30.0) -> int:
        return self._stop(signal.SIGTERM, timeout)

    def kill(self) -> int:
        return self._stop(signal.SIGKILL, 10.0)

    def _stop(self, sig: int, timeout: float) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        source: str | None = None,
    ) -> tuple[int, Any]:
        """A blocking JSON request (for quick checks in sync tests); ``source``: the local
        address to send it from (any of 127.0.0.0/8: the node tells sources apart)."""
        import orjson

        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        if source is not None:
            return self._request_from(source, method, path, data, headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.api_key is not None:
            req.add_header("X-API-Key", self.api_key)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_context()) as r:
                return r.status, orjson.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, orjson.loads(raw) if raw else None

    def _request_from(
        self, source: str, method: str, path: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        import http.client

        import orjson

        host, port, at = "127.0.0.1", self.port, (source, 0)
        conn: http.client.HTTPConnection
        if self.ca_file is not None:
            conn = http.client.HTTPSConnection(
                host, port, timeout=30, source_address=at, context=self.ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=30, source_address=at)
        sent = {"Content-Type": "application/json", **headers}
        if self.api_key is not None:
            sent.setdefault("X-API-Key", self.api_key)
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, orjson.loads(raw) if raw else None
        finally:
            conn.close()


class Pki:
    """Test certificates made with ``cryptography``: CAs and the certificates they sign.

    ``Pki(root).issue("server", ca="ca", dns=["localhost"], ips=["127.0.0.1"])`` writes
    ``server.pem`` and ``server.key`` under ``root`` and returns their paths; a CA is made
    on first use (``ca.pem``/``ca.key``). Every leaf is good for both server and client
    authentication.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._cas: dict[str, tuple[Any, Any]] = {}

    def ca(self, name: str = "ca") -> Path:
        self._ca(name)
        return self.root / f"{name}.pem"

    def _ca(self, name: str) -> tuple[Any, Any]:
        if name not in self._cas:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{name} root")])
            cert = (
                self._builder(subject, subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        key_cert_sign=True,
                        crl_sign=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            self._write(name, cert, key)
            self._cas[name] = (cert, key)
        return self._cas[name]

    def issue(
        self,
        name: str,
        *,
        ca: str = "ca",
        dns: list[str] | None = None,
        ips: list[str] | None = None,
        days: int = 30,
    ) -> tuple[Path, Path]:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        ca_cert, ca_key = self._ca(ca)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
        builder = self._builder(subject, ca_cert.subject, key.public_key(), days=days)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return self._write(name, cert, key)

    @staticmethod
    def _builder(subject: Any, issuer: Any, public_key: Any, days: int = 365) -> Any:
        import datetime as dt

        from cryptography import x509

        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
        )

    def _write(self, name: str, cert: Any, key: Any) -> tuple[Path, Path]:
        from cryptography.hazmat.primitives import serialization

        cert_path, key_path = self.root / f"{name}.pem", self.root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


def start_all(*servers: ServerProcess) -> None:
    """Start every server; if one cannot start, kill them all and fail the test."""
    import pytest

    try:
        for server in servers:
            server.start()
    except (RuntimeError, TimeoutError) as err:
        for server in servers:
            server.kill()
        pytest.fail(f"data plane did not start: {err}")


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Run ``app`` (a stand-in for a remote source) on 127.0.0.1 at a free port, which
    is yielded (with ``ssl_context``: over TLS); stopped after."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        assert site._server is not None
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()
