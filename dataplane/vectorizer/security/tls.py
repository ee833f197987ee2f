"""TLS contexts for the server and for replicas, and reloading them when files change.

The server's context is rebuilt from the files whenever their stat signature changes
(a Kubernetes Secret update swaps them atomically) and swapped in whole: every new
connection gets the newest certificate, key and client CA; open connections keep theirs.
A half-written update (a certificate without its matching key) fails to load and the
old context stays until the files agree again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass

from cryptography import x509

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTlsConfig:
    cert_file: str
    key_file: str
    client_ca_file: str = ""
    client_auth: str = "none"  # none | optional | require


def server_context(cfg: ServerTlsConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.client_auth != "none":
        ctx.load_verify_locations(cafile=cfg.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.client_auth == "require" else ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """Verifies the server against ``ca_file`` (or the system store); presents a cert if given."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


def certificate_serial(cert_file: str) -> int | None:
    try:
        with open(cert_file, "rb") as f:
            return x509.load_pem_x509_certificate(f.read()).serial_number
    except (OSError, ValueError):
        return None


class ServerTls:
    """The live server context; ``reload_if_changed`` swaps in a new one when files change."""

    def __init__(self, cfg: ServerTlsConfig) -> None:
        self.cfg = cfg
        self._signature = self._stat()
        self._failed: tuple[tuple[int, int, int], ...] | None = None
        self.context = server_context(cfg)
        self.serial = certificate_serial(cfg.cert_file)
        self.reloads = 0

    def _files(self) -> list[str]:
        files = [self.cfg.cert_file, self.cfg.key_file]
        return files + ([self.cfg.client_ca_file] if self.cfg.client_ca_file else [])

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in self._files():
            try:
                st = os.stat(path)  # follows the symlinks a mounted Secret is made of
                out.append((st.st_mtime_ns, st.st_ino, st.st_size))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def reload_if_changed(self) -> bool:
        signature = self._stat()
        if signature == self._signature:
            return False
        try:
            ctx = server_context(self.cfg)
        except (OSError, ssl.SSLError, ValueError) as exc:
            if signature != self._failed:  # say it once per state of the files
                log.error("TLS files changed but do not load (keeping the old ones): %s", exc)
                self._failed = signature
            return False
        self.context, self._signature, self._failed = ctx, signature, None
        self.serial = certificate_serial(self.cfg.cert_file)
        self.reloads += 1
        log.info("TLS certificate reloaded (serial %x)", self.serial or 0)
        return True

    async def watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.reload_if_changed()
