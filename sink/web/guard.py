"""Refusing requests that a web page elsewhere makes through the user's browser.

The sink listens on the developer's machine, and any page they open can send
requests to ``localhost:8025``. Without this guard such a page could delete their
mail, read it (through DNS rebinding) or, via the probe endpoints, make the sink
connect to and send mail through any server. So:

- **Host**: while the sink listens on loopback only, a request must name a
  loopback host (``localhost``, ``*.localhost``, ``127.x.x.x``, ``[::1]``) or the
  sink's ``--hostname``. A rebinding attack names the attacker's domain.
- **Cross-site requests**: a request with side effects that the browser marks
  ``Sec-Fetch-Site: cross-site`` (a form, a fetch, an ``<img>`` from another
  site) is refused. Side effects: any method but GET/HEAD, a WebSocket, and the
  probe endpoints (even a GET to them makes the sink connect elsewhere). Plain
  reads stay open: a page elsewhere cannot read the answers, and the message
  view's sandboxed frame (an opaque, so cross-site, origin) loads its images so.
- **Origin**: a request that changes something (POST, PUT, PATCH, DELETE) or opens
  a WebSocket, and carries an ``Origin`` that is neither this server nor the
  allowed CORS origin (``--cors-origin``), is refused. That origin is also exempt
  from the cross-site rule: the operator asked for it.

Command-line clients (curl, test code, MailHog client libraries) send neither
``Origin`` nor ``Sec-Fetch-Site`` and are unaffected.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from .probe import listens_on_loopback

CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PROBE_PATH = "/api/smtp"  # /api/smtp/* and /api/smtps/*


def _host_name(host_header: str) -> str:
    """``"localhost:8025"`` → ``"localhost"``, ``"[::1]:8025"`` → ``"::1"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback_name(name: str, extra_names: set[str]) -> bool:
    if name in extra_names or name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware applying the three checks above to HTTP and WebSocket requests."""

    def __init__(self, app: ASGIApp, *, check_host: bool, host_names: Iterable[str] = (),
                 allowed_origins: Iterable[str] = ()):
        self.app = app
        self.check_host = check_host
        self.host_names = {name.lower() for name in host_names if name}
        self.allowed_origins = {origin.rstrip("/").lower() for origin in allowed_origins if origin}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = self.refusal(scope)
            if reason is not None:
                await self._refuse(scope, send, reason)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None to let it through."""
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.check_host and host and not _is_loopback_name(_host_name(host), self.host_names):
            return (f"Host {host!r} is not a loopback name; mailsink listens on loopback only "
                    "(this blocks DNS rebinding)")
        method = scope.get("method", "GET")
        is_websocket = scope["type"] == "websocket"
        side_effects = (is_websocket or method in CHANGING_METHODS
                        or PROBE_PATH in scope.get("path", ""))
        origin = headers.get("origin")
        origin_allowed = origin is not None and self._origin_allowed(origin, host)
        if (side_effects and headers.get("sec-fetch-site") == "cross-site"
                and not origin_allowed):
            return "cross-site request refused"
        if origin and (is_websocket or method in CHANGING_METHODS) and not origin_allowed:
            return f"Origin {origin!r} is not allowed"
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        normalized = origin.rstrip("/").lower()
        if "*" in self.allowed_origins or normalized in self.allowed_origins:
            return True
        return bool(host) and urlsplit(normalized).netloc == host.strip().lower()

    @staticmethod
    async def _refuse(scope: Scope, send: Send, reason: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = json.dumps({"error": reason}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def guard_options(settings: Any) -> dict[str, Any]:
    """The guard's options for these settings."""
    return dict(check_host=listens_on_loopback(settings.listen),
                host_names=[settings.hostname],
                allowed_origins=[getattr(settings, "cors_origin", None) or ""])
