"""The Temporal connection's one-line reasons (runtime/temporal_connection.py), from the errors the SDK raised on
`Client.connect` against the test bed's mutual-TLS cluster (tests/e2e/test_temporal_mtls.py shows the same with the
real server), and its following of the TLS files: connecting anew on a change only, handing the new client to its
users, keeping the working one when the changed files do not connect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from temporalio.client import Client

from runtime import temporal_connection
from runtime.settings import TEMPORAL_ENVIRONMENT, Settings
from runtime.temporal import NamespaceRefused
from runtime.temporal_connection import TemporalConnection, connect_problem
from testbed.pki import CertificateAuthority

ADDRESS = "temporal.example:7233"
AT = f"cannot connect to Temporal at {ADDRESS}: "
# what temporalio 1.35 raised, word for word
UNKNOWN_ISSUER = ("Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError("
                  "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))")
WRONG_NAME = ("Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError(Custom "
              "{ kind: InvalidData, error: InvalidCertificate(NotValidForNameContext { expected: DnsName(\"nothere\"), "
              "presented: [\"DnsName(\\\"localhost\\\")\", \"IpAddress(127.0.0.1)\"] }) }))")
ALERT = ("Failed client connect: `get_system_info` call error after connection: Status { code: Unknown, message: "
         "\"transport error\", source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Custom { kind: "
         "InvalidData, error: \"received fatal alert: {alert}\" }))) }")
CLOSED = ("Failed client connect: `get_system_info` call error after connection: Status { code: Cancelled, message: "
          "\"operation was canceled\", source: Some(tonic::transport::Error(Transport, hyper::Error(Canceled, "
          "\"connection closed\"))) }")
BROKEN_PIPE = ("Failed client connect: `get_system_info` call error after connection: Status { code: Unknown, "
               "message: \"transport error\", source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Custom "
               "{ kind: BrokenPipe, error: \"stream closed because of a broken pipe\" }))) }")
KEY_MISMATCH = ("Failed client connect: Server connection error: tonic::transport::Error(Transport, "
                "InconsistentKeys(KeyMismatch))")
# an API key (a JWT) the server's claim mapper does not accept: the connect's first call refused
KEY_REFUSED = ("Failed client connect: `get_system_info` call error after connection: Status { code: "
               "PermissionDenied, message: \"Request unauthorized.\", details: b\"\\x08\\x07\\x12\\x15Request "
               "unauthorized.\\x1aJ\\nHtype.googleapis.com/temporal.api.errordetails.v1.PermissionDeniedFailure\", "
               "metadata: MetadataMap { headers: {\"content-type\": \"application/grpc\"} }, source: None }")
REFUSED = ("Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError("
           "ConnectError(\"tcp connect error\", 127.0.0.1:1, Os { code: 111, kind: ConnectionRefused, message: "
           "\"Connection refused\" })))")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = CertificateAuthority()
    cert, key = ca.issue("vmsnap").write(tmp_path, "client")
    expired_cert, _ = ca.issue("vmsnap", expired=True).write(tmp_path, "expired")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return {"cert": cert, "key": key, "expired": expired_cert, "ca": ca_file}


@pytest.fixture
def settings_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    def make(**env: str | Path) -> Settings:
        for name in TEMPORAL_ENVIRONMENT:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-profile.toml"))
        monkeypatch.setenv("TEMPORAL_ADDRESS", ADDRESS)
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        return Settings()
    return make


def mtls(files: dict[str, Path], cert: str = "cert") -> dict[str, Path]:
    return {"TEMPORAL_TLS_CLIENT_CERT_PATH": files[cert], "TEMPORAL_TLS_CLIENT_KEY_PATH": files["key"],
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": files["ca"]}


def test_a_server_certificate_not_signed_by_the_configured_ca_names_the_ca_file(settings_with, files):
    problem = connect_problem(RuntimeError(UNKNOWN_ISSUER), settings_with(**mtls(files)))
    assert problem.text == AT + ("the server's certificate is not trusted: it is not signed by "
                                 f"TEMPORAL_TLS_SERVER_CA_CERT_PATH ({files['ca']})")
    assert problem.certificates
    without_ca = settings_with(TEMPORAL_TLS="true")
    assert connect_problem(RuntimeError(UNKNOWN_ISSUER), without_ca).text == AT + (
        "the server's certificate is not trusted: it is not signed by the system's CAs "
        "(TEMPORAL_TLS_SERVER_CA_CERT_PATH is not set)")


def test_a_server_certificate_for_another_name_says_which_name(settings_with, files):
    assert connect_problem(RuntimeError(WRONG_NAME), settings_with(**mtls(files))).text == AT + (
        "the server's certificate is not issued to nothere (set TEMPORAL_TLS_SERVER_NAME to a name it is issued to)")
    # rustls before NotValidForNameContext did not say the name: the one asked for is the address's host
    older = WRONG_NAME.split("NotValidForNameContext")[0] + "NotValidForName) }))"
    assert connect_problem(RuntimeError(older), settings_with(**mtls(files))).text == AT + (
        "the server's certificate is not issued to temporal.example (set TEMPORAL_TLS_SERVER_NAME to a name it is "
        "issued to)")


@pytest.mark.parametrize("error", [ALERT.replace("{alert}", "CertificateExpired"), CLOSED, BROKEN_PIPE])
def test_an_expired_client_certificate_says_so_whichever_way_the_server_refused_it(settings_with, files, error):
    # the refusal comes as a TLS alert or as a closed connection, depending on timing: the certificate's own dates
    # say why either way
    text = connect_problem(RuntimeError(error), settings_with(**mtls(files, "expired"))).text
    assert text.startswith(AT + f"the server refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH "
                                f"({files['expired']}): it has expired (valid until ")


@pytest.mark.parametrize("error", [ALERT.replace("{alert}", "CertificateRequired"), CLOSED, BROKEN_PIPE])
def test_no_client_certificate_where_the_server_requires_one(settings_with, files, error):
    settings = settings_with(TEMPORAL_TLS_SERVER_CA_CERT_PATH=files["ca"])
    assert connect_problem(RuntimeError(error), settings).text == AT + (
        "the server requires a client certificate and none is set (TEMPORAL_TLS_CLIENT_CERT_PATH, "
        "TEMPORAL_TLS_CLIENT_KEY_PATH)")


def test_a_valid_client_certificate_the_server_refuses(settings_with, files):
    settings = settings_with(**mtls(files))
    assert connect_problem(RuntimeError(ALERT.replace("{alert}", "UnknownCA")), settings).text == AT + (
        f"the server refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH ({files['cert']}): it is not "
        "signed by a CA the server trusts")
    assert connect_problem(RuntimeError(CLOSED), settings).text == AT + (
        f"the server refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH ({files['cert']}): is it signed by "
        "a CA the server trusts?")


def test_a_key_that_does_not_match_names_both_files(settings_with, files):
    assert connect_problem(RuntimeError(KEY_MISMATCH), settings_with(**mtls(files))).text == AT + (
        f"the client key TEMPORAL_TLS_CLIENT_KEY_PATH ({files['key']}) does not match the client certificate "
        f"TEMPORAL_TLS_CLIENT_CERT_PATH ({files['cert']})")


def test_a_file_that_cannot_be_read_names_its_setting(settings_with, files, tmp_path):
    gone = tmp_path / "gone.crt"
    settings = settings_with(**{**mtls(files), "TEMPORAL_TLS_CLIENT_CERT_PATH": gone})
    error = FileNotFoundError(2, "No such file or directory", str(gone))
    assert connect_problem(error, settings).text == AT + (
        f"cannot read TEMPORAL_TLS_CLIENT_CERT_PATH ({gone}): No such file or directory")


def test_an_api_key_the_server_refuses_says_so(settings_with, files):
    settings = settings_with(TEMPORAL_API_KEY="not-a-key-it-knows", TEMPORAL_TLS_SERVER_CA_CERT_PATH=files["ca"])
    assert connect_problem(RuntimeError(KEY_REFUSED), settings).text == AT + (
        "the server refused the API key TEMPORAL_API_KEY: Request unauthorized.")


def test_a_namespace_the_credentials_may_not_use_names_them(settings_with, files):
    with_key = settings_with(TEMPORAL_API_KEY="a-key-for-another-namespace", TEMPORAL_NAMESPACE="prod")
    problem = connect_problem(NamespaceRefused("Request unauthorized."), with_key)
    assert problem.certificates and problem.text == AT + (
        "the server refused the API key TEMPORAL_API_KEY access to namespace prod: Request unauthorized.")
    without_key = settings_with(**mtls(files))
    assert connect_problem(NamespaceRefused("Request unauthorized."), without_key).text == AT + (
        "the server refused access to namespace default: Request unauthorized. (TEMPORAL_API_KEY is not set)")


def test_plain_text_to_a_tls_server_suggests_tls(settings_with):
    assert connect_problem(RuntimeError(BROKEN_PIPE), settings_with()).text == AT + (
        "the server closed the connection: it likely requires TLS (set TEMPORAL_TLS=true, or "
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)")


def test_an_unreachable_server_is_not_a_certificate_problem(settings_with, files):
    problem = connect_problem(RuntimeError(REFUSED), settings_with(**mtls(files)))
    assert problem.text.startswith(AT + "Server connection error: ") and "Connection refused" in problem.text
    assert not problem.certificates


# --- following the files ----------------------------------------------------------------------------------------

class FakeServer:
    """Stands for `runtime.temporal.connect`: accepts the certificate files whose text it was told to accept."""

    def __init__(self, cert: Path):
        self.cert, self.accepted, self.connects = cert, {"good-1", "good-2"}, 0

    async def connect(self, settings: Settings, runtime: Any = None, plugins: Any = None) -> Client:
        self.connects += 1
        if self.cert.read_text() not in self.accepted:
            raise RuntimeError(ALERT.replace("{alert}", "BadCertificate"))
        return mock.Mock(spec=Client, name=self.cert.read_text())


class User:
    def __init__(self) -> None:
        self.client: Any = None


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not seen within 10 s: {what}") from None


async def test_a_connection_follows_its_files(settings_with, tmp_path, monkeypatch, caplog):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("bad")
    key.write_text("key")
    server = FakeServer(cert)
    monkeypatch.setattr(temporal_connection, "connect", server.connect)
    settings = settings_with(TEMPORAL_TLS_CLIENT_CERT_PATH=cert, TEMPORAL_TLS_CLIENT_KEY_PATH=key)
    connection = TemporalConnection(settings, period=3600, check_every=0.01)
    caplog.set_level(logging.INFO, "vmsnap.temporal")

    connecting = asyncio.ensure_future(connection.connected())
    await until(lambda: server.connects == 1, "the first connect")
    refused = AT + f"the server refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH ({cert}) (BadCertificate)"
    assert (connection.not_ready() or "").startswith(refused)
    await asyncio.sleep(0.2)  # twenty file checks: nothing changed, nothing tried again
    assert server.connects == 1 and not connecting.done()
    assert [r.message for r in caplog.records].count(connection.not_ready()) == 1

    cert.write_text("good-1")  # renewed: connected without a restart
    client = await asyncio.wait_for(connecting, 10)
    assert connection.not_ready() is None and connection.client is client

    user = User()
    connection.users.append(user)
    connection.start()
    cert.write_text("good-2")  # renewed again: a new client, handed to the users
    await until(lambda: user.client is not None, "the new client handed over")
    assert user.client is connection.client and connection.client is not client

    handed = user.client
    cert.write_text("bad")  # a renewal that does not connect: the working client stays
    await until(lambda: any("keeping the current Temporal connection" in r.message for r in caplog.records),
                "the refusal logged")
    assert user.client is handed and connection.client is handed and connection.not_ready() is None
    connects = server.connects
    await asyncio.sleep(0.2)
    assert server.connects == connects, "not tried again while the files stay the same"
    await connection.stop()


async def test_a_renewal_that_met_an_outage_is_tried_again_without_another_change(settings_with, tmp_path,
                                                                                   monkeypatch):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("good-1")
    key.write_text("key")
    server = FakeServer(cert)
    monkeypatch.setattr(temporal_connection, "connect", server.connect)
    connection = TemporalConnection(settings_with(TEMPORAL_TLS_CLIENT_CERT_PATH=cert, TEMPORAL_TLS_CLIENT_KEY_PATH=key),
                                    period=3600, check_every=0.01, retry=0.05)
    first = await connection.connected()
    user = User()
    connection.users.append(user)

    async def unreachable(*_: Any, **__: Any) -> Client:
        server.connects += 1
        raise RuntimeError(REFUSED)
    monkeypatch.setattr(temporal_connection, "connect", unreachable)
    connection.start()
    cert.write_text("good-2")
    await until(lambda: server.connects >= 3, "tried again while Temporal is unreachable")
    assert connection.client is first and user.client is None

    monkeypatch.setattr(temporal_connection, "connect", server.connect)  # Temporal is back: the renewal goes through
    await until(lambda: user.client is not None, "the renewed client handed over")
    assert user.client is connection.client and connection.client is not first
    await connection.stop()
