"""Bearer tokens as self-hosted Temporal checks them: JWTs (ES256) signed by a key of the test bed, whose public half
Temporal's JWT key provider fetches as a JSON Web Key Set over HTTP (`global.authorization.jwtKeyProvider.
keySourceURIs`; the server fetches with `http.Get`, so no file:// URI) from a server on loopback started here.

The default claim mapper reads the `permissions` claim: `<namespace>:<role>` (read, write, worker, admin), and
`temporal-system:admin` for the system role."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _coordinate(value: int) -> str:
    return _b64(value.to_bytes(32, "big"))


class TokenIssuer:
    """One P-256 key, its key ID, its JWKS, and the tokens it signs."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = uuid.uuid4().hex[:12]

    def jwks(self) -> dict:
        numbers = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.key_id,
                          "x": _coordinate(numbers.x), "y": _coordinate(numbers.y)}]}

    def token(self, *permissions: str, subject: str = "vmsnap", valid_seconds: int = 3600) -> str:
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.key_id}
        claims = {"sub": subject, "permissions": list(permissions), "iat": now, "exp": now + valid_seconds}
        signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class KeySetServer:
    """The issuer's JWKS at http://127.0.0.1:<port>/jwks.json, from a thread of this process."""

    def __init__(self, issuer: TokenIssuer):
        body = json.dumps(issuer.jwks()).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the hook's signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def start(self) -> "KeySetServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
