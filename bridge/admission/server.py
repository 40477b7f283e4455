"""The admission webhook's HTTPS server, embedded in the bridge process.

It serves as soon as `start()` returns: admission needs no watch or cache (the few reads it makes go straight
to the apiserver), so it never waits for the bridge's informers, and a bridge that is still listing never
blocks users' writes.

Routes: the three webhooks of `webhooks.py`, /healthz and /readyz. A body that is not JSON or not an
AdmissionReview gets HTTP 400, a body over the limit 413, a wrong content type 415; a failure inside a webhook
is answered as a refusal with code 500 (the configurations' failurePolicy is Fail anyway), never as a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api import admission_messages
from runtime.kube import Kube

from . import field_errors as fe
from .cluster import ClusterReader
from .group_validation import GroupSnapshotValidator, MemberDeletionValidator
from .review import AdmissionRequest, MalformedReview, Verdict, bad_request_response, parse_review, review_response
from .schedule_validation import validate_schedule
from .snapshot_mutation import mutate_snapshot
from .snapshot_validation import SnapshotValidator
from .tls import ReloadingCertificate
from .vm_validation import VirtualMachineValidator
from .webhooks import (
    GROUP_SNAPSHOT_VALIDATING,
    HEALTHZ_PATH,
    MEMBER_DELETE_VALIDATING,
    READYZ_PATH,
    SCHEDULE_VALIDATING,
    SNAPSHOT_MUTATING,
    SNAPSHOT_VALIDATING,
    VM_VALIDATING,
    Webhook,
)

log = logging.getLogger("vmsnap.admission")

# An AdmissionReview holds the object and, on UPDATE, the old object: two objects of at most ~1.5 MiB (etcd's
# limit) and their JSON overhead. VM Operator uses the same limit for its webhook bodies.
MAX_BODY_BYTES = 7 * 1024 * 1024
CERTIFICATE_CHECK_SECONDS = 10.0

Judge = Callable[[AdmissionRequest], Awaitable[Verdict]]


async def _mutate_snapshot(request: AdmissionRequest) -> Verdict:
    return mutate_snapshot(request)


class AdmissionServer:
    """`await start()` binds host:port (port 0 picks a free one, see `port`) and serves; `await stop()` ends."""

    def __init__(self, kube: Kube, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str],
                 host: str = "0.0.0.0", port: int = 9443, *,
                 certificate_check_seconds: float = CERTIFICATE_CHECK_SECONDS,
                 max_body_bytes: int = MAX_BODY_BYTES, reuse_port: bool = False,
                 standing_aside: Callable[[], bool] = lambda: False):
        self.host = host
        # True while the bridge stands aside for VM Operator's own snapshot controller (runtime/coexistence.py):
        # every well-formed review is then admitted unchanged (bridge/main.py says why it fails open)
        self._standing_aside = standing_aside
        self._reuse_port = reuse_port
        self._requested_port = port
        self._bound_port: int | None = None
        self._certificate = ReloadingCertificate(cert_file, key_file)
        self._certificate_check_seconds = certificate_check_seconds
        cluster = ClusterReader(kube)
        self._judges: dict[Webhook, Judge] = {
            SNAPSHOT_MUTATING: _mutate_snapshot,
            SNAPSHOT_VALIDATING: SnapshotValidator(cluster),
            VM_VALIDATING: VirtualMachineValidator(cluster),
            SCHEDULE_VALIDATING: validate_schedule,
            GROUP_SNAPSHOT_VALIDATING: GroupSnapshotValidator(cluster),
            MEMBER_DELETE_VALIDATING: MemberDeletionValidator(cluster),
        }
        self._app = self._build_app(max_body_bytes)
        self._runner: web.AppRunner | None = None
        self._certificate_watch: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the admission server is not started")
        return self._bound_port

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self._requested_port), family=family,
                                        reuse_port=self._reuse_port)
        self._bound_port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener, ssl_context=self._certificate.listening_context).start()
        self._certificate_watch = asyncio.create_task(self._watch_certificate(), name="webhook-certificate")
        log.info("admission webhook serving on https://%s:%d", self.host, self._bound_port)

    async def stop(self) -> None:
        if self._certificate_watch is not None:
            self._certificate_watch.cancel()
            await asyncio.gather(self._certificate_watch, return_exceptions=True)
            self._certificate_watch = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reload_certificate_if_changed(self) -> bool:
        """Re-read the certificate files now (also done every `certificate_check_seconds`)."""
        return self._certificate.reload_if_changed()

    async def _watch_certificate(self) -> None:
        while True:
            await asyncio.sleep(self._certificate_check_seconds)
            await self.reload_certificate_if_changed()

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _build_app(self, max_body_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_body_bytes)
        for webhook in self._judges:
            app.router.add_post(webhook.path, self._handler(webhook))
        app.router.add_get(HEALTHZ_PATH, _ok)
        # Ready as soon as it listens: admission depends on nothing the bridge builds up.
        app.router.add_get(READYZ_PATH, _ok)
        return app

    def _handler(self, webhook: Webhook) -> Callable[[web.Request], Awaitable[web.Response]]:
        judge = self._judges[webhook]

        async def handle(http_request: web.Request) -> web.Response:
            if http_request.content_type != admission_messages.JSON_CONTENT_TYPE:
                return _plain(415, admission_messages.content_type_not_json(http_request.content_type))
            try:
                body = json.loads(await http_request.read())
            except web.HTTPRequestEntityTooLarge:
                raise
            except (ValueError, UnicodeDecodeError) as error:
                return _plain(400, admission_messages.body_not_json(error))
            try:
                request = parse_review(body)
            except MalformedReview as error:
                return _plain(400, str(error))
            return web.json_response(await self._judge(webhook, judge, request))

        return handle

    async def _judge(self, webhook: Webhook, judge: Judge, request: AdmissionRequest) -> dict[str, Any]:
        if request.kind.kind != webhook.kind:
            return bad_request_response(request, admission_messages.kind_not_admitted(webhook.kind, request.kind.kind))
        if request.kind.group != webhook.group or request.kind.version not in webhook.served_versions:
            # Every served version has the same schema, so each is judged alike; any other is not ours to judge.
            return bad_request_response(request, admission_messages.version_not_admitted(
                webhook.kind, request.kind.group, request.kind.version))
        if self._standing_aside():
            return review_response(request, Verdict())
        try:
            verdict = await judge(request)
        except MalformedReview as error:
            return bad_request_response(request, str(error))
        except Exception as error:  # noqa: BLE001 - answered as a refusal naming the failure, and logged
            log.exception("%s failed on %s %s/%s", webhook.name, request.operation, request.namespace,
                          request.object_name)
            verdict = Verdict(errors=[fe.internal(admission_messages.WHOLE_OBJECT,
                                                  admission_messages.webhook_failed(error))])
        if not verdict.allowed:
            log.info("%s refused %s %s/%s: %s", webhook.name, request.operation, request.namespace,
                     request.object_name, "; ".join(str(e) for e in verdict.errors))
        return review_response(request, verdict)


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text=admission_messages.HEALTHY)


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")
