"""What a process says about its Temporal connection (runtime/temporal_connection.py): the one line naming why it
cannot connect, logged once and answered by /readyz, and its log lines as the connection changes. deploy/README.md
("Connecting to Temporal") lists the reasons as operators see them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

# the settings (Temporal's environment configuration) the reasons name
CLIENT_CERT, CLIENT_KEY, SERVER_CA = ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
                                      "TEMPORAL_TLS_SERVER_CA_CERT_PATH")
SERVER_NAME, TLS, API_KEY = "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS", "TEMPORAL_API_KEY"


def cannot_connect(address: str, reason: str) -> str:
    return f"cannot connect to Temporal at {address}: {reason}"


def connecting(address: str) -> str:
    return f"connecting to Temporal at {address}"


# --- the reasons ------------------------------------------------------------------------------------------------

def cannot_read(variable: str, filename: object, error: str | None) -> str:
    return f"cannot read {variable} ({filename}): {error}"


def server_not_issued_to(name: str) -> str:
    return f"the server's certificate is not issued to {name} (set {SERVER_NAME} to a name it is issued to)"


SERVER_CERTIFICATE_EXPIRED = "the server's certificate has expired"
SYSTEM_CAS = f"the system's CAs ({SERVER_CA} is not set)"


def server_not_trusted(trusted_by: str) -> str:
    """`trusted_by`: the CA setting and its file, or SYSTEM_CAS."""
    return f"the server's certificate is not trusted: it is not signed by {trusted_by}"


def key_does_not_match(key: str, cert: str) -> str:
    return f"the client key {key} does not match the client certificate {cert}"


def no_pem_certificate(cert: str) -> str:
    return f"the client certificate {cert} holds no PEM certificate"


CLIENT_CERTIFICATE_REQUIRED = f"the server requires a client certificate and none is set ({CLIENT_CERT}, {CLIENT_KEY})"


def client_certificate_refused(cert: str, why: str) -> str:
    return f"the server refused the client certificate {cert}: {why}"


def client_certificate_expired(until: datetime) -> str:
    return f"it has expired (valid until {until:%Y-%m-%d %H:%M:%S} UTC)"


def client_certificate_not_yet_valid(since: datetime) -> str:
    return f"it is not valid yet (valid from {since:%Y-%m-%d %H:%M:%S} UTC)"


CLIENT_CA_UNKNOWN = "it is not signed by a CA the server trusts"


def client_certificate_refused_asking(cert: str, alert: str | None) -> str:
    """A refusal that does not say why (a TLS alert, or the connection closed under the first call)."""
    said = f" ({alert})" if alert is not None else ""
    return f"the server refused the client certificate {cert}{said}: is it signed by a CA the server trusts?"


def api_key_refused(said: str) -> str:
    """The server refused the call the SDK makes on connecting, with an API key set: `said` is its message."""
    return f"the server refused the API key {API_KEY}: {said}"


def namespace_refused(namespace: str, said: str, api_key: bool) -> str:
    """Connected, but refused the namespace: the credentials lack its permission."""
    if api_key:
        return f"the server refused the API key {API_KEY} access to namespace {namespace}: {said}"
    return f"the server refused access to namespace {namespace}: {said} ({API_KEY} is not set)"


REQUIRES_TLS = (f"the server closed the connection: it likely requires TLS (set {TLS}=true, or {SERVER_CA}, "
                f"{CLIENT_CERT} and {CLIENT_KEY})")


# --- the log as the connection changes --------------------------------------------------------------------------

def connected(address: str, namespace: str, mutual_tls: bool) -> str:
    return f"connected to Temporal at {address}, namespace {namespace}{' (mutual TLS)' if mutual_tls else ''}"


def connected_anew(files: Iterable[object]) -> str:
    return f"connected to Temporal anew with the changed TLS files ({', '.join(str(path) for path in files)})"


def keeping_current_connection(problem: str) -> str:
    return f"keeping the current Temporal connection: the changed TLS files do not connect: {problem}"
