"""HTTP basic auth on the UI and every API, from a file of ``user:bcrypt-hash`` lines.

The file format is MailHog's (``MH_AUTH_FILE``; ``htpasswd -B`` writes it).
The health checks ``/livez`` and ``/readyz`` stay open for container probes.
A bcrypt check costs ~0.1 s on purpose, so a password that passed once is
remembered (as a salted SHA-256) instead of being checked again each request.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

import bcrypt
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = ("/livez", "/readyz")


class AuthFileError(ValueError):
    """The auth file cannot be used; the message names the file and the line."""


def load_users(path: str) -> dict[str, bytes]:
    """user → bcrypt hash, from ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise AuthFileError(f"cannot read auth file {path}: {error.strerror or error}") from None
    users: dict[str, bytes] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon or not user or not hashed.startswith("$2"):
            raise AuthFileError(f"{path}:{number}: wants user:bcrypt-hash")
        users[user] = hashed.encode()
    if not users:
        raise AuthFileError(f"auth file {path} has no users")
    return users


class BasicAuth:
    """ASGI middleware: 401 unless the request carries a known user and password."""

    def __init__(self, app: ASGIApp, users: dict[str, bytes]):
        self.app = app
        self.users = users
        self._salt = os.urandom(16)
        self._passed: set[bytes] = set()

    def _valid(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not colon or hashed is None:
            return False
        key = hmac.new(self._salt, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if key in self._passed:
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            self._passed.add(key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict((k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in scope.get("headers", []))
        if self._valid(headers.get("authorization", "")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse({"error": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="mailsink"'})
        await response(scope, receive, send)
