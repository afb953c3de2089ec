"""The probe over HTTP: ``/connect`` and ``/send``, in the seed API's JSON shapes.

``create_probe_app()`` is mounted at ``/api/smtp`` and ``create_probe_app(implicit_tls=True)``
at ``/api/smtps``. Field names, methods and error messages are the seed's (so its
callers work); ours adds fields, never renames: ``tls``, ``auth_mechanism``,
``cc``/``bcc`` lists, ``html``, ``attachments``, ``headers``, ``ehlo``, ``pipelining``,
``transcript``, ``timings``, and ``stage``/``code``/``enhanced_code`` on errors.
These endpoints make this server connect elsewhere: the sink turns them on only on
loopback or when told to, and ``allow_hosts`` limits where they may connect.
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import Auth
from .client import PIPELINING_MODES, TLS_MODES, async_connect, async_send, check_port
from .compose import Attachment, Message, parse_header
from .errors import ProbeError, ProbeTimeout, UsageError
from .session import Timeouts

MAX_BODY = 35 * 1024 * 1024        # a 25 MiB attachment, base64-encoded, and the rest
MAX_TIMEOUT_MS = 300_000
_BAD_ADDRESS = re.compile(r"[<>\s\x00-\x1f\x7f]")
CONNECT_NOTE = "This is a connectivity test. Use the send feature to send emails."


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"success": False, "error": message, **extra}, status_code=status)


def host_allowed(host: str, allow: list[str] | None) -> bool:
    """``allow``: names (``*.example.com`` wildcards), IP addresses or CIDR networks."""
    if not allow:
        return True
    host = host.strip("[]").lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for pattern in allow:
        pattern = pattern.strip().lower().rstrip(".")
        if ip is not None and "/" in pattern:
            try:
                if ip in ipaddress.ip_network(pattern, strict=False):
                    return True
            except ValueError:
                pass
        if fnmatch.fnmatchcase(host, pattern):
            return True
    return False


async def _fields(request: Request) -> dict[str, Any]:
    """Query parameters, overlaid by a JSON object body for POST."""
    data: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_BODY:
            raise BadRequest(f"Request body too large (at most {MAX_BODY} bytes)", 413)
        if body.strip():
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("Invalid JSON body") from None
            if not isinstance(parsed, dict):
                raise BadRequest("The JSON body must be an object")
            data.update(parsed)
    return data


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _addresses(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    out = [str(item).strip() for item in items if str(item).strip()]
    for address in out:
        if _BAD_ADDRESS.search(address):
            raise BadRequest("Invalid email address format (from/to must not contain <, >, "
                             "or whitespace)")
    return out


def _timeout(data: dict[str, Any]) -> Timeouts:
    raw = data.get("timeout", 30000)
    try:
        ms = float(raw)
    except (TypeError, ValueError):
        raise BadRequest("timeout must be a number of milliseconds") from None
    if not 0 < ms <= MAX_TIMEOUT_MS:
        raise BadRequest(f"timeout must be between 1 and {MAX_TIMEOUT_MS} ms")
    return Timeouts.of(ms / 1000)


def _headers(value: Any) -> list[tuple[str, str]]:
    if not value:
        return []
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, str):
                pairs.append(parse_header(item))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
            elif isinstance(item, dict) and "name" in item:
                pairs.append((str(item["name"]), str(item.get("value", ""))))
            else:
                raise BadRequest("headers: use {\"Name\": \"value\"} or [\"Name: value\"]")
    else:
        raise BadRequest("headers: use {\"Name\": \"value\"} or [\"Name: value\"]")
    for name, value in pairs:
        parse_header(f"{name}: {value}")   # validates the name and refuses line breaks
    return pairs


def _attachments(value: Any) -> list[Attachment]:
    out = []
    for item in value or []:
        if not isinstance(item, dict) or not item.get("filename"):
            raise BadRequest("attachments: each needs a filename and base64 content")
        try:
            content = base64.b64decode(item.get("content", ""), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"attachment {item['filename']}: content is not base64") from None
        out.append(Attachment(str(item["filename"]), content,
                              item.get("content_type") or item.get("contentType")))
    return out


class _Endpoint:
    """Shared request handling for the plain (``/api/smtp``) and TLS (``/api/smtps``) apps."""

    def __init__(self, allow_hosts: list[str] | None, implicit_tls: bool) -> None:
        self.allow_hosts = allow_hosts
        self.implicit = implicit_tls
        self.default_port = 465 if implicit_tls else 25

    def target(self, data: dict[str, Any], host_message: str) -> tuple[str, int]:
        host = str(data.get("host") or "").strip()
        if not host:
            raise BadRequest(host_message)
        port = data.get("port")
        try:
            port = self.default_port if port in (None, "") else check_port(port)
        except UsageError as error:
            raise BadRequest(error.message) from None
        if not host_allowed(host, self.allow_hosts):
            raise BadRequest(f"Host not allowed: {host} (this server allows only "
                             f"{', '.join(self.allow_hosts or [])})", 403)
        return host, port

    def options(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.implicit:
            tls = "implicit"
        else:
            tls = str(data.get("tls") or ("starttls" if _flag(data.get("useTLS")) else "auto"))
            if tls not in TLS_MODES:
                raise BadRequest(f"tls must be one of {', '.join(TLS_MODES)}")
        auth = None
        username, password = data.get("username"), data.get("password")
        if username:
            if password is None:
                raise BadRequest("password is required with username")
            mechanism = data.get("auth_mechanism") or data.get("authMechanism")
            try:
                auth = Auth(str(username), str(password), mechanism or None)
            except UsageError as error:
                raise BadRequest(error.message) from None
        return dict(tls=tls, insecure=_flag(data.get("insecure")), timeout=_timeout(data),
                    ehlo=data.get("ehlo") or None, auth=auth,
                    allow_plaintext_auth=_flag(data.get("allow_plaintext_auth")))

    def failure(self, error: ProbeError, connecting: bool) -> JSONResponse:
        status = 400 if error.kind == "usage" else 500
        message = error.message
        if isinstance(error, ProbeTimeout):
            message = "Connection timeout" if connecting or error.stage in (
                "connect", "tls", "greeting") else "Send timeout"
        body: dict[str, Any] = {"stage": error.stage, "code": error.code,
                                "enhanced_code": error.enhanced_code, "kind": error.kind}
        if message != error.message:
            body["detail"] = error.message
        if error.result is not None:
            body["recipients"] = [r.to_dict() for r in error.result.recipients]
        if error.transcript is not None:
            body["transcript"] = error.transcript.lines()
        return _error(status, message, **body)

    async def connect(self, request: Request) -> Response:
        try:
            data = await _fields(request)
            host, port = self.target(data, "Host is required" if self.implicit
                                     else "Missing required parameter: host")
            options = self.options(data)
        except BadRequest as error:
            return _error(error.status, error.message)
        try:
            result = await async_connect(host, port, **options)
        except ProbeError as error:
            return self.failure(error, connecting=True)
        details = result.to_dict()
        out: dict[str, Any] = {"success": True}
        if self.implicit:
            authenticated = bool(result.authenticated)
            out.update(host=host, port=port, protocol="SMTPS", tls=True,
                       rtt=details["rtt_ms"], greeting=result.greeting.raw,
                       capabilities=(result.ehlo.lines[1:] if result.ehlo else []),
                       authenticated=authenticated,
                       note=("Successfully authenticated over implicit TLS" if authenticated
                             else "Connected over implicit TLS"))
        else:
            out.update(message="SMTP server reachable", host=host, port=port,
                       greeting=result.greeting.raw,
                       capabilities=result.ehlo.raw if result.ehlo else "", note=CONNECT_NOTE,
                       tls=result.tls is not None, rtt=details["rtt_ms"],
                       authenticated=result.authenticated)
        out.update(extensions=details["capabilities"], server_name=details["server_name"],
                   helo_fallback=result.helo_fallback, tls_info=details["tls"],
                   auth_mechanism=result.auth_mechanism, address=result.address,
                   timings=details["timings"], round_trips=result.round_trips,
                   transcript=details["transcript"])
        return JSONResponse(out)

    async def send(self, request: Request) -> Response:
        if request.method != "POST":
            return JSONResponse({"success": False, "error": "Method not allowed"},
                                status_code=405, headers={"Allow": "POST"})
        try:
            data = await _fields(request)
            html = data.get("html")
            missing = [name for name in ("host", "from", "to", "subject")
                       if data.get(name) in (None, "", [])]
            if data.get("body") in (None, "") and not html:
                missing.append("body")
            if missing:
                raise BadRequest("Missing required parameters: host, from, to, subject, body")
            host, port = self.target(data, "Missing required parameter: host")
            options = self.options(data)
            sender = _addresses(data["from"])
            if len(sender) != 1:
                raise BadRequest("from must be one address")
            pipelining = str(data.get("pipelining") or "auto")
            if pipelining not in PIPELINING_MODES:
                raise BadRequest(f"pipelining must be one of {', '.join(PIPELINING_MODES)}")
            message = Message(
                sender=sender[0], to=_addresses(data["to"]), cc=_addresses(data.get("cc")),
                bcc=_addresses(data.get("bcc")), reply_to=_addresses(data.get("reply_to")),
                subject=str(data["subject"]), text=data.get("body") or None,
                html=str(html) if html else None, headers=_headers(data.get("headers")),
                attachments=_attachments(data.get("attachments")))
        except BadRequest as error:
            return _error(error.status, error.message)
        except UsageError as error:
            return _error(400, error.message)
        try:
            result = await async_send(message, host, port, pipelining=pipelining, **options)
        except ProbeError as error:
            return self.failure(error, connecting=False)
        details = result.to_dict()
        out: dict[str, Any] = {
            "success": True,
            "message": "Email sent successfully over TLS" if self.implicit
            else "Email sent successfully",
            "host": host, "port": port, "tls": result.tls is not None,
            "from": data["from"], "to": data["to"]}
        if self.implicit:
            out.update(subject=data["subject"], rtt=details["timings"].get("connect"))
        out.update(recipients=details["recipients"], accepted=details["accepted"],
                   rejected=details["rejected"], queue_id=result.queue_id,
                   final_reply=details["final_reply"], pipelined=result.pipelined,
                   tls_info=details["tls"], authenticated=result.authenticated,
                   auth_mechanism=result.auth_mechanism, size=result.size,
                   timings=details["timings"], round_trips=result.round_trips,
                   transcript=details["transcript"])
        return JSONResponse(out)


def create_probe_app(allow_hosts: list[str] | None = None, *,
                     implicit_tls: bool = False) -> Starlette:
    """The ``/connect`` and ``/send`` endpoints; ``implicit_tls`` for the ``/api/smtps`` pair."""
    endpoint = _Endpoint(allow_hosts, implicit_tls)
    routes = [Route("/connect", endpoint.connect, methods=["GET", "POST"]),
              Route("/send", endpoint.send, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
    return Starlette(routes=routes, exception_handlers={405: _not_allowed, 404: _not_found})


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"success": False, "error": "Method not allowed"}, status_code=405,
                        headers=getattr(exc, "headers", None) or {})


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, "Not found")


def create_disabled_app(reason: str) -> Starlette:
    """Answers every request with 403 and ``reason`` (how to turn the endpoints on)."""
    async def refuse(request: Request) -> Response:
        return _error(403, reason)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", refuse, methods=methods)])
