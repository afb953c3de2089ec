"""Refusing requests that a web page elsewhere makes through the user's browser.

The sink listens on the developer's machine, and any page they open can send
requests to ``localhost:8025``. Without this guard such a page could delete their
mail, read it (through DNS rebinding) or, via the probe endpoints, make the sink
connect to and send mail through any server. So:

- **Host**: a DNS rebinding attack points the attacker's public domain at the
  sink, so the request names that domain. A request must name an IP address, a
  single-label name (``localhost``, a compose service like ``mailsink``), a name
  under a TLD no public DNS answers for (``*.localhost``, ``*.local``,
  ``*.internal`` such as ``host.docker.internal``, ``*.test``, ...), the sink's
  ``--hostname``, or one of ``--allowed-hosts`` (``*`` turns the check off).
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

import fnmatch
import ipaddress
import json
from typing import Any, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send


CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PROBE_PATH = "/api/smtp"  # /api/smtp/* and /api/smtps/*


def _host_name(host_header: str) -> str:
    """``"localhost:8025"`` → ``"localhost"``, ``"[::1]:8025"`` → ``"::1"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# Names under these no public DNS server answers for: no rebinding attack can use them.
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".test", ".example", ".invalid",
                    ".home.arpa")


def is_trusted_host(name: str, allowed: set[str]) -> bool:
    """May a request name this host? (See the module docstring.)"""
    if "*" in allowed or name in allowed or "." not in name:
        return True
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed if "*" in pattern):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.endswith(PRIVATE_SUFFIXES)


class RequestGuard:
    """ASGI middleware applying the three checks above to HTTP and WebSocket requests."""

    def __init__(self, app: ASGIApp, *, host_names: Iterable[str] = (),
                 allowed_origins: Iterable[str] = ()):
        self.app = app
        self.host_names = {name.strip().lower() for name in host_names if name.strip()}
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
        if host and not is_trusted_host(_host_name(host), self.host_names):
            return (f"Host {host!r} is not one this server answers to (a guard against DNS "
                    "rebinding): add it with --allowed-hosts")
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
    return dict(host_names=[settings.hostname, *settings.allowed_hosts.split(",")],
                allowed_origins=[getattr(settings, "cors_origin", None) or ""])
