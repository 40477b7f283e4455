"""The webhook's serving certificate is re-read when its files change, as cert-manager renews it into a mounted
Secret (kubelet swaps the volume's `..data` symlink to a new directory): new handshakes get the new certificate
without a restart, and a pair that does not load leaves the old one in service."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client

from bridge.admission import AdmissionServer
from runtime.kube import Kube
from testbed.pki import CertificateAuthority, KeyPair
from tests.admission.server_thread import ServerThread
from tests.admission.webhook_client import https_request

RELOAD_DEADLINE_SECONDS = 30


class SecretVolume:
    """A directory laid out like a Secret volume: tls.crt and tls.key link through `..data` to the current
    version's directory; `publish` writes a new version and swaps the link atomically."""

    def __init__(self, root: Path):
        self.root = root
        self.versions = 0

    @property
    def cert_file(self) -> Path:
        return self.root / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.root / "tls.key"

    def publish(self, pair: KeyPair, key_pem: bytes | None = None) -> None:
        self.versions += 1
        version = self.root / f"..version-{self.versions}"
        version.mkdir(parents=True)
        (version / "tls.crt").write_bytes(pair.cert_pem)
        (version / "tls.key").write_bytes(key_pem if key_pem is not None else pair.key_pem)
        staging = self.root / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.root / "..data")
        for name in ("tls.crt", "tls.key"):
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(f"..data/{name}")


def issue(authority: CertificateAuthority) -> KeyPair:
    return authority.issue("vmsnap-webhook", dns=("localhost",), ips=("127.0.0.1",), server=True)


def served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def serial_of(pair: KeyPair) -> int:
    return x509.load_pem_x509_certificate(pair.cert_pem).serial_number


@pytest.fixture
def volume(tmp_path: Path) -> SecretVolume:
    return SecretVolume(tmp_path / "webhook-tls")


@pytest.fixture
def first_authority() -> CertificateAuthority:
    return CertificateAuthority("first-ca")


@pytest.fixture
def serving(kube_api: client.ApiClient, volume: SecretVolume,
            first_authority: CertificateAuthority) -> Iterator[ServerThread]:
    volume.publish(issue(first_authority))
    # A long check interval: these tests trigger the re-read themselves, except the one that waits for it.
    thread = ServerThread(AdmissionServer(Kube(kube_api), volume.cert_file, volume.key_file, "127.0.0.1", 0,
                                          certificate_check_seconds=3600)).start()
    yield thread
    thread.stop()


def test_a_renewed_certificate_is_served_without_restart(serving: ServerThread, volume: SecretVolume,
                                                         first_authority: CertificateAuthority, tmp_path: Path):
    port = serving.server.port
    before = served_serial(port)
    renewed_authority = CertificateAuthority("renewed-ca")
    renewed = issue(renewed_authority)

    volume.publish(renewed)
    assert serving.call(serving.server.reload_certificate_if_changed()) is True

    assert before != serial_of(renewed) and served_serial(port) == serial_of(renewed)
    renewed_ca = tmp_path / "renewed-ca.crt"
    renewed_ca.write_bytes(renewed_authority.cert_pem)
    assert https_request(f"https://127.0.0.1:{port}", "/healthz", renewed_ca).status == 200
    # unchanged files: nothing to do
    assert serving.call(serving.server.reload_certificate_if_changed()) is False


def test_a_pair_that_does_not_load_leaves_the_old_certificate_in_service(serving: ServerThread,
                                                                          volume: SecretVolume):
    port = serving.server.port
    before = served_serial(port)
    mismatched = issue(CertificateAuthority("other-ca"))

    volume.publish(mismatched, key_pem=issue(CertificateAuthority("third-ca")).key_pem)

    assert serving.call(serving.server.reload_certificate_if_changed()) is False
    assert served_serial(port) == before


def test_the_server_notices_renewed_files_by_itself(kube_api: client.ApiClient, volume: SecretVolume,
                                                    first_authority: CertificateAuthority):
    volume.publish(issue(first_authority))
    thread = ServerThread(AdmissionServer(Kube(kube_api), volume.cert_file, volume.key_file, "127.0.0.1", 0,
                                          certificate_check_seconds=0.1)).start()
    try:
        renewed = issue(CertificateAuthority("renewed-ca"))
        volume.publish(renewed)
        deadline = time.monotonic() + RELOAD_DEADLINE_SECONDS
        while served_serial(thread.server.port) != serial_of(renewed):
            assert time.monotonic() < deadline, "the renewed certificate was never served"
            time.sleep(0.1)
    finally:
        thread.stop()


def test_a_tls_1_2_client_is_served(serving: ServerThread, first_authority: CertificateAuthority, tmp_path: Path):
    # (TLS 1.1 and older are refused by the server's minimum version; OpenSSL 3 clients refuse them as well, so
    # a test offering TLS 1.1 could not tell the two apart.)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(first_authority.cert_pem)
    tls12_only = ssl.create_default_context(cafile=str(ca_file))
    tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2

    with socket.create_connection(("127.0.0.1", serving.server.port)) as raw, \
            tls12_only.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.2"
