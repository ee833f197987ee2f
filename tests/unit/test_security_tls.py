"""The server's TLS context follows its files; a half-written update keeps the old one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.servers import Pki
from vectorizer.security.authn import certificate_names
from vectorizer.security.tls import ServerTls, ServerTlsConfig, certificate_serial


def test_reload_when_files_change_and_only_when_they_agree(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    first, second = pki.issue("one", ips=["127.0.0.1"]), pki.issue("two", ips=["127.0.0.1"])
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)
    tls = ServerTls(ServerTlsConfig(str(cert), str(key)))
    assert tls.serial == certificate_serial(str(first[0]))
    old_context = tls.context
    assert not tls.reload_if_changed()

    shutil.copy(second[0], cert)  # the certificate first: it does not match the old key
    assert not tls.reload_if_changed()
    assert tls.context is old_context and tls.serial == certificate_serial(str(first[0]))
    shutil.copy(second[1], key)
    assert tls.reload_if_changed()
    assert tls.context is not old_context and tls.serial == certificate_serial(str(second[0]))
    assert tls.reloads == 1


def test_client_ca_and_modes(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    cert, key = pki.issue("node", dns=["node.local"], ips=["127.0.0.1"])
    import ssl

    for mode, verify in (("optional", ssl.CERT_OPTIONAL), ("require", ssl.CERT_REQUIRED)):
        tls = ServerTls(ServerTlsConfig(str(cert), str(key), str(pki.ca()), mode))
        assert tls.context.verify_mode == verify
        assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        ServerTls(ServerTlsConfig(str(cert), str(pki.issue("other")[1])))


def test_certificate_names() -> None:
    cert = {
        "subject": ((("organizationName", "x"),), (("commonName", "replica-0"),)),
        "subjectAltName": (("DNS", "vz-0.vz"), ("IP Address", "10.0.0.1")),
    }
    assert certificate_names(cert) == ["replica-0", "vz-0.vz"]
