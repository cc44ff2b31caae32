"""Server hardening: bearer-token auth, bounded request bodies, loopback-only binding without a token.

:class:`Guard` is a plain ASGI middleware that runs before any body is read: an unauthenticated request is refused
with 401 without reading its body, and a body larger than the limit gets 413 as soon as its ``Content-Length`` (or,
for chunked uploads, the bytes received so far) exceeds the limit; the rest is never read. The whole body must
arrive within ``body_timeout_s`` of the request head (a client trickling bytes gets 408, so it cannot hold a
connection open forever). Token comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import time
from pathlib import Path

from rewardlab.errors import UserError

OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def read_token(token_env: str | None = None, token_file: str | os.PathLike | None = None) -> str | None:
    """The bearer token from a file (first line, stripped) or an environment variable; None when neither is set."""
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UserError(f"{path}: cannot read the token file ({e.strerror})") from None
        if not token:
            raise UserError(f"{path}: the token file is empty")
        return token
    if token_env:
        token = os.environ.get(token_env, "").strip()
        return token or None
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose an unauthenticated server beyond this machine."""
    if token is None and not is_loopback(host):
        raise UserError(
            f"refusing to bind {host!r} without a token: anyone who can reach it could use the model. "
            "Set a bearer token (--token-env VAR or --token-file PATH) or bind 127.0.0.1."
        )


async def _send_error(send, status: int, message: str, err_type: str, headers: list | None = None) -> None:
    body = json.dumps({"error": {"message": message, "type": err_type, "param": None, "code": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: auth (all paths but :data:`OPEN_PATHS`) and a request-body size limit."""

    def __init__(self, app, token: str | None, max_body_bytes: int, body_timeout_s: float | None = None):
        self.app = app
        self.token = token.encode("utf-8") if token else None
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
                msg = "missing bearer token" if not auth else "invalid bearer token"
                return await _send_error(send, 401, f"{msg}: send 'Authorization: Bearer <token>'",
                                         "AuthenticationError", [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await _send_error(send, 400, "invalid Content-Length header", "BadRequestError")
            if n > self.max_body_bytes:
                return await _send_error(send, 413, self._too_large(n), "RequestTooLargeError")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # Read the body here, bounded, then replay it: the app never sees more than max_body_bytes.
        chunks, size = [], 0
        deadline = None if self.body_timeout_s is None else time.monotonic() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), None if deadline is None
                                                 else max(0.0, deadline - time.monotonic()))
            except (asyncio.TimeoutError, TimeoutError):
                return await _send_error(send, 408, f"request body not received within {self.body_timeout_s:g} s "
                                                    "(--body-timeout)", "RequestTimeoutError",
                                         [(b"connection", b"close")])
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await _send_error(send, 413, self._too_large(None), "RequestTooLargeError")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self, n: int | None) -> str:
        got = f"{n} bytes" if n is not None else f"over {self.max_body_bytes} bytes"
        return f"request body too large ({got}); the limit is {self.max_body_bytes} bytes (--max-body-mb)"
