"""The process's Temporal client over its whole life: connected at start, and connected anew whenever the files of
its TLS settings change (cert-manager renews a client certificate in place, in the mounted Secret), the new client
handed to everything that holds one (`users`: the Temporal workers, the dispatcher, the schedules, the gates). A
renewed or repaired certificate is used without a restart.

A connection that fails says why in one line naming the setting and its file (`connect_problem`), logged once per
reason; meanwhile /readyz answers 503 with that line and the process stays up. It connects again as soon as the
files change, or after a while: `period` seconds after a certificate problem (the server's side can change too: its
CA, its certificate), `retry` seconds after anything else (Temporal not up yet). A renewal that does not connect
keeps the working client, is logged once, and is tried again on the same schedule.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from temporalio.client import Client, Plugin
from temporalio.runtime import Runtime

from api import temporal_messages as says
from api.temporal_messages import CLIENT_CERT, CLIENT_KEY, SERVER_CA
from runtime.file_stamps import FileStamp, file_stamp
from runtime.settings import Settings
from runtime.temporal import NamespaceRefused, connect

log = logging.getLogger("vmsnap.temporal")

# a connection that failed for something else than its certificates is tried again this soon
RETRY_SECONDS = 10.0

# how the SDK says the server closed the connection during its first call
_CLOSED_UNDER_IT = re.compile(r"connection closed|broken pipe|connection reset", re.IGNORECASE)


class UsesTemporalClient(Protocol):
    """Anything that makes its calls through a client it holds (a `temporalio.worker.Worker` is one: its `client`
    setter moves its polls to the new client)."""

    client: Client


def _stamp(path: Path) -> FileStamp | None:
    """None for a file that cannot be read (a missing file is a problem connect_problem names)."""
    try:
        return file_stamp(path)
    except OSError:
        return None


class ConnectProblem:
    """What a failed connect says, as one line: `text`, and whether it is about the certificates (`certificates`)."""

    def __init__(self, text: str, certificates: bool):
        self.text, self.certificates = text, certificates


def _named(settings: Settings, variable: str) -> str:
    path = settings.temporal_tls_files.get(variable)
    return f"{variable} ({path})" if path is not None else variable


def connect_problem(error: BaseException, settings: Settings) -> ConnectProblem:
    """One line for a failed `Client.connect`, naming the setting and file at fault when the SDK's error (the Rust
    core's rustls and tonic text) tells which."""
    def problem(reason: str, certificates: bool = True) -> ConnectProblem:
        return ConnectProblem(says.cannot_connect(settings.temporal_address, reason), certificates)
    files = settings.temporal_tls_files
    if isinstance(error, OSError) and error.filename is not None:
        variable = next((name for name, path in files.items() if str(path) == str(error.filename)), "a TLS file")
        return problem(says.cannot_read(variable, error.filename, error.strerror))
    profile = settings.temporal_profile
    if isinstance(error, NamespaceRefused):
        return problem(says.namespace_refused(settings.temporal_namespace, error.said, bool(profile.api_key)))
    text = str(error)
    cert, key, ca = _named(settings, CLIENT_CERT), _named(settings, CLIENT_KEY), _named(settings, SERVER_CA)
    trusted_by = ca if SERVER_CA in files else says.SYSTEM_CAS
    if (name := re.search(r'NotValidForName\w* \{ expected: \w+\("([^"]+)"\)', text)) is not None:
        return problem(says.server_not_issued_to(name.group(1)))
    if "NotValidForName" in text:
        asked = settings.temporal_profile.tls.server_name if settings.temporal_profile.tls else None
        return problem(says.server_not_issued_to(asked or settings.temporal_address.rsplit(":", 1)[0]))
    if "InvalidCertificate(Expired" in text:
        return problem(says.SERVER_CERTIFICATE_EXPIRED)
    if "InvalidCertificate(" in text:  # UnknownIssuer, BadSignature...: not signed by a CA we trust
        return problem(says.server_not_trusted(trusted_by))
    if "KeyMismatch" in text or "InconsistentKeys" in text:
        return problem(says.key_does_not_match(key, cert))
    if "NoCertificatesPresented" in text:
        return problem(says.no_pem_certificate(cert))
    tls_on = bool(profile.api_key) or (profile.tls is not None and profile.tls.disabled is not True)
    refused = re.search(r'code: (?:PermissionDenied|Unauthenticated), message: "([^"]*)"', text)
    if profile.api_key and refused is not None:  # the key is checked per call: the first one is refused
        return problem(says.api_key_refused(refused.group(1)))
    # The server checks the client certificate after the client's side of the TLS 1.3 handshake: its refusal
    # arrives with the first call, as a TLS alert or (the same refusal, timing aside) a connection closed under it.
    alert = re.search(r"received fatal alert: (\w+)", text)
    if alert is not None or (tls_on and _CLOSED_UNDER_IT.search(text)):
        if CLIENT_CERT not in files or (alert is not None and alert.group(1) == "CertificateRequired"):
            return problem(says.CLIENT_CERTIFICATE_REQUIRED)
        if (validity := _validity_problem(files[CLIENT_CERT])) is not None:
            return problem(says.client_certificate_refused(cert, validity))
        if alert is not None and alert.group(1) == "UnknownCA":
            return problem(says.client_certificate_refused(cert, says.CLIENT_CA_UNKNOWN))
        return problem(says.client_certificate_refused_asking(cert, alert.group(1) if alert is not None else None))
    if not tls_on and (_CLOSED_UNDER_IT.search(text) or re.search(r"InvalidContentType|corrupt message", text)):
        return problem(says.REQUIRES_TLS)
    first = text.removeprefix("Failed client connect: ").splitlines()[0] if text else type(error).__name__
    return problem(first[:300], certificates=False)


def _validity_problem(cert_file: Path) -> str | None:
    """`it has expired (...)` or `it is not valid before ...` when the certificate's dates say so now."""
    try:
        found = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return None
    now = datetime.now(UTC)
    if found.not_valid_after_utc < now:
        return says.client_certificate_expired(found.not_valid_after_utc)
    if found.not_valid_before_utc > now:
        return says.client_certificate_not_yet_valid(found.not_valid_before_utc)
    return None


class TemporalConnection:
    """`client` once connected; `not_ready()` says why not meanwhile. `connected()` waits for the first client,
    `start()` follows the TLS files, `stop()` ends that."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None, plugins: Sequence[Plugin] = (), *,
                 period: float, check_every: float, retry: float = RETRY_SECONDS):
        self.settings, self.runtime, self.plugins = settings, runtime, list(plugins)
        self.period, self.check_every, self.retry = period, check_every, retry
        self.client: Client | None = None
        self.users: list[UsesTemporalClient] = []
        self._problem: str | None = None
        self._logged: str | None = None
        self._stamps = self._file_stamps()
        self._task: asyncio.Task[None] | None = None

    def not_ready(self) -> str | None:
        if self.client is not None:
            return None
        return self._problem or says.connecting(self.settings.temporal_address)

    def _file_stamps(self) -> tuple[FileStamp | None, ...]:
        return tuple(_stamp(path) for path in self.settings.temporal_tls_files.values())

    async def _attempt(self) -> Client | ConnectProblem:
        self._stamps = self._file_stamps()  # before reading them: a change while connecting is seen next time
        try:
            return await connect(self.settings, self.runtime, self.plugins)
        except Exception as e:  # noqa: BLE001 - every failure to connect is told in one line, not a traceback
            return connect_problem(e, self.settings)

    def _changed(self) -> bool:
        return self._file_stamps() != self._stamps

    async def _until_changed(self, seconds: float) -> None:
        """Return when the TLS files change, or after `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._changed() and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self.check_every, left))

    async def connected(self) -> Client:
        """The first client: connect, and while that fails, again when the TLS files change or after a while."""
        while True:
            outcome = await self._attempt()
            if isinstance(outcome, Client):
                self.client, self._problem = outcome, None
                log.info("%s", says.connected(self.settings.temporal_address, self.settings.temporal_namespace,
                                              CLIENT_CERT in self.settings.temporal_tls_files))
                return outcome
            self._problem = outcome.text
            if outcome.text != self._logged:
                log.error("%s", outcome.text)
                self._logged = outcome.text
            await self._until_changed(self.period if outcome.certificates else self.retry)

    def start(self) -> None:
        """Connect anew whenever the TLS files change, and hand the new client to every user."""
        self._task = asyncio.create_task(self._follow_files(), name="follow Temporal's TLS files")

    async def _follow_files(self) -> None:
        loop = asyncio.get_running_loop()
        again_at: float | None = None  # changed files that did not connect are tried again then
        while True:
            await asyncio.sleep(self.check_every)
            if not (self._changed() or (again_at is not None and loop.time() >= again_at)):
                continue
            outcome = await self._attempt()
            if isinstance(outcome, ConnectProblem):
                if outcome.text != self._logged:
                    log.warning("%s", says.keeping_current_connection(outcome.text))
                    self._logged = outcome.text
                again_at = loop.time() + (self.period if outcome.certificates else self.retry)
                continue
            self.client, self._logged, again_at = outcome, None, None
            for user in self.users:
                user.client = outcome
            log.info("%s", says.connected_anew(self.settings.temporal_tls_files.values()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
