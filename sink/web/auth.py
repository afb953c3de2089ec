"""Optional HTTP basic auth for the UI and every API, from an htpasswd file (bcrypt).

``--ui-auth-file`` names a file of ``user:$2y$...`` lines as written by
``htpasswd -B``. Only bcrypt hashes are accepted (MD5, SHA1 and crypt() ones are
refused at start-up with the line number). ``/livez`` and ``/readyz`` stay open
for health checks. bcrypt is slow on purpose (tens of milliseconds), and a page
loads many URLs, so a successful check is remembered by a keyed digest of the
credentials for the life of the process; the check itself runs off the loop.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import json
import secrets

import bcrypt

OPEN_PATHS = ("/livez", "/readyz")
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_REMEMBERED = 1000


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> bytes:
    """A hash to check unknown users against; made on first use (it takes ~70 ms)."""
    return bcrypt.hashpw(b"not a password", bcrypt.gensalt(10))


class AuthFileError(ValueError):
    """The htpasswd file cannot be used; the message says where and why."""


def load_htpasswd(path: str) -> dict[str, bytes]:
    """``{user: bcrypt hash}`` from an htpasswd file."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise AuthFileError(f"cannot read auth file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise AuthFileError(f"auth file {path} is not UTF-8 text") from None
    users: dict[str, bytes] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise AuthFileError(f"{path}:{number}: expected user:hash")
        if not hashed.startswith(_BCRYPT_PREFIXES):
            raise AuthFileError(f"{path}:{number}: only bcrypt hashes are supported "
                                "(create them with htpasswd -B)")
        users[user] = hashed.encode()
    if not users:
        raise AuthFileError(f"auth file {path} has no users")
    return users


class BasicAuthMiddleware:
    """ASGI middleware: 401 with a JSON error unless the credentials check out."""

    def __init__(self, app, users: dict[str, bytes], realm: str = "mailsink",
                 web_path: str = ""):
        self.app = app
        self.users = users
        self.realm = realm
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        # Health checks stay open under the web path prefix too (/mail/livez).
        self.open_paths = set(OPEN_PATHS) | {web_path.rstrip("/") + p for p in OPEN_PATHS}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        if await self._check(header):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "authentication required"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'.encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    async def _check(self, header: bytes) -> bool:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            # Same bcrypt cost for unknown users, so timing does not tell who exists.
            await asyncio.to_thread(bcrypt.checkpw, password.encode(), _dummy_hash())
            return False
        token = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        if token in self._verified:
            return True
        if not await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed):
            return False
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()
        self._verified.add(token)
        return True
