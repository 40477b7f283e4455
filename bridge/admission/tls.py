"""The webhook's TLS: TLS 1.2 or newer, a certificate and key read from files and re-read when they change
(cert-manager renews the certificate in the mounted Secret; the process must not need a restart).

Each new pair is loaded into a fresh SSLContext, and only a pair that loads completely replaces the served
one. The listening context hands every incoming handshake over to the newest context from its server-name
callback, which OpenSSL calls for every ClientHello, with or without SNI (the apiserver sends none when it
calls a webhook by IP address). Connections already open keep the certificate they started with.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

from runtime.file_stamps import FileStamp, file_stamp

log = logging.getLogger("vmsnap.admission.tls")



def _server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class ReloadingCertificate:
    def __init__(self, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]):
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._stamps = (file_stamp(self.cert_file), file_stamp(self.key_file))
        # The first load must succeed: a webhook without a certificate cannot serve at all.
        self._current = _server_context(self.cert_file, self.key_file)
        self._rejected: tuple[FileStamp, FileStamp] | None = None
        self._listening = _server_context(self.cert_file, self.key_file)
        self._listening.sni_callback = self._hand_over

    @property
    def listening_context(self) -> ssl.SSLContext:
        return self._listening

    def _hand_over(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                   context: ssl.SSLContext) -> None:
        connection.context = self._current

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed since the last load. True if a new pair is now served.

        A pair that does not load (half-written, or cert and key not matching) is logged once and the old pair
        stays in service until the files change again.
        """
        try:
            stamps = (file_stamp(self.cert_file), file_stamp(self.key_file))
        except OSError as error:
            log.warning("cannot stat the webhook certificate files: %s", error)
            return False
        if stamps == self._stamps or stamps == self._rejected:
            return False
        try:
            context = _server_context(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            log.warning("keeping the current webhook certificate: %s and %s do not load: %s",
                        self.cert_file, self.key_file, error)
            self._rejected = stamps
            return False
        self._current, self._stamps, self._rejected = context, stamps, None
        log.info("webhook certificate reloaded from %s", self.cert_file)
        return True
