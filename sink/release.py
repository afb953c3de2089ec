"""Releasing a caught message to a real SMTP server, through the probe library.

"Release" is MailHog's word: send a stored message on to a chosen server and
recipient. The probe does the SMTP (STARTTLS when offered, AUTH PLAIN, LOGIN
or CRAM-MD5, a transcript, an error naming the stage and the server's reply).
The stored bytes are sent as they are, after one Received line saying we
passed them on; the store is never changed.

Saved servers come from a JSON file in MailHog's ``MH_OUTGOING_SMTP`` format
(name → {name, host, port, email, username, password, mechanism}; keys in any
case) and from releases made with ``save``; they live in memory, as in MailHog.
Passwords are never shown back.

A release to a host named in the request makes this server connect wherever the
requester says, so it follows the probe endpoints' policy (``--probe-api``: on by
default only when listening on loopback; ``--probe-allow-hosts``). Servers from
the operator's file are always allowed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
from dataclasses import dataclass
from typing import Any, Mapping

from .store import Store

# MailHog's mechanism names (its UI sends these), ours and the probe's.
MECHANISMS = {"": None, "PLAIN": "PLAIN", "LOGIN": "LOGIN", "CRAMMD5": "CRAM-MD5",
              "CRAM-MD5": "CRAM-MD5"}
TLS_MODES = ("auto", "starttls", "implicit", "none")
RELEASE_TIMEOUT = 30.0


class ReleaseError(Exception):
    """A release that did not happen: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, **details: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details  # stage, code, enhanced_code from the probe

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


@dataclass
class OutgoingServer:
    """One server to release to (MailHog's OutgoingSMTP, plus a TLS mode)."""

    name: str = ""
    host: str = ""
    port: str = "25"
    email: str = ""
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    mechanism: str = ""
    save: bool = False
    tls: str = "auto"
    insecure: bool = False  # skip certificate checks (a test server's own certificate)
    from_operator: bool = dataclasses.field(default=False, repr=False)  # from the file

    def to_mailhog_json(self) -> dict[str, Any]:
        """MailHog's shape for /api/v2/outgoing-smtp, without the password."""
        return {"Name": self.name, "Save": self.save, "Email": self.email, "Host": self.host,
                "Port": self.port, "Username": self.username, "Mechanism": self.mechanism}


def _lower_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in data.items()}


def server_from_json(data: Any, where: str) -> OutgoingServer:
    """An ``OutgoingServer`` from MailHog-style JSON (keys in any case, port text or number)."""
    if not isinstance(data, Mapping):
        raise ReleaseError(400, f"{where}: wants a JSON object")
    values = _lower_keys(data)
    server = OutgoingServer()
    for field in dataclasses.fields(OutgoingServer):
        if field.name == "from_operator":  # never from a request body
            continue
        if field.name not in values or values[field.name] is None:
            continue
        value = values[field.name]
        if field.name in ("save", "insecure"):
            if not isinstance(value, bool):
                raise ReleaseError(400, f"{where}: {field.name} must be true or false")
        elif field.name == "port":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ReleaseError(400, f"{where}: port must be a number")
            value = str(value).strip()
        elif not isinstance(value, str):
            raise ReleaseError(400, f"{where}: {field.name} must be text")
        setattr(server, field.name, value)
    return server


def load_outgoing(path: str) -> dict[str, OutgoingServer]:
    """The saved servers in an MH_OUTGOING_SMTP file; ReleaseError with a clear message."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise ReleaseError(400, f"cannot read outgoing SMTP file {path}: "
                                f"{error.strerror or error}") from None
    except ValueError as error:
        raise ReleaseError(400, f"outgoing SMTP file {path} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ReleaseError(400, f"outgoing SMTP file {path}: wants an object of name → server")
    servers = {}
    for name, entry in data.items():
        server = server_from_json(entry, f"{path}: {name}")
        server.name = server.name or name
        server.from_operator = True
        _check(server, f"{path}: {name}")
        servers[name] = server
    return servers


def _check(server: OutgoingServer, where: str) -> None:
    if not server.host:
        raise ReleaseError(400, f"{where}: host is missing")
    if not server.port.isdigit() or not 0 < int(server.port) < 65536:
        raise ReleaseError(400, f"{where}: port must be between 1 and 65535")
    if server.mechanism.upper() not in MECHANISMS:
        raise ReleaseError(400, f"{where}: mechanism must be PLAIN, LOGIN or CRAMMD5, "
                                f"not {server.mechanism!r}")
    if server.tls not in TLS_MODES:
        raise ReleaseError(400, f"{where}: tls must be one of {', '.join(TLS_MODES)}")


def _received_line(helo: str, hostname: str, message_id: str) -> bytes:
    date = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc))
    by = f"from {helo} " if helo else ""
    return f"Received: {by}by {hostname} (mailsink) id {message_id};\r\n\t{date}\r\n".encode(
        "utf-8", "replace")


class Releaser:
    """Sends stored messages on; holds the saved servers."""

    def __init__(self, store: Store, hostname: str,
                 servers: dict[str, OutgoingServer] | None = None,
                 any_host: bool = True, allow_hosts: list[str] | None = None):
        self.store = store
        self.hostname = hostname
        self.servers: dict[str, OutgoingServer] = dict(servers or {})
        self.any_host = any_host        # may a request name its own host?
        self.allow_hosts = allow_hosts  # ...and then only these (None: any)

    @classmethod
    def from_settings(cls, store: Store, settings: Any) -> "Releaser":
        from .web.probe import probe_enabled

        servers = load_outgoing(settings.outgoing_smtp) if settings.outgoing_smtp else {}
        allow = [h.strip() for h in settings.probe_allow_hosts.split(",") if h.strip()] or None
        return cls(store, settings.hostname, servers, probe_enabled(settings), allow)

    def _check_host(self, server: OutgoingServer) -> None:
        """Refuse a requester's own host unless the operator allows such connections."""
        from probe.http import host_allowed

        if server.from_operator:
            return
        if not self.any_host:
            raise ReleaseError(403, "releasing to a host named in the request is off: it "
                                    "makes this server connect wherever the requester says. "
                                    "Name a server from the outgoing SMTP file, or turn it "
                                    "on with --probe-api on (and limit it with "
                                    "--probe-allow-hosts)")
        if not host_allowed(server.host, self.allow_hosts):
            raise ReleaseError(403, f"releasing to {server.host} is not allowed "
                                    "(--probe-allow-hosts)")

    def servers_json(self) -> dict[str, dict[str, Any]]:
        return {name: server.to_mailhog_json() for name, server in self.servers.items()}

    def resolve(self, request: OutgoingServer) -> OutgoingServer:
        """MailHog's rules: ``save`` keeps the server under ``name`` (a taken name is
        refused); a ``name`` alone picks a saved server; ``email`` may override its own."""
        request.from_operator = False  # whatever the body said
        if request.save:
            if not request.name:
                raise ReleaseError(400, "save needs a name")
            if request.name in self.servers:
                raise ReleaseError(400, f"a server named {request.name!r} is already saved")
            _check(request, "release")
            self._check_host(request)
            self.servers[request.name] = dataclasses.replace(request)
        if request.name:
            saved = self.servers.get(request.name)
            if saved is None:
                raise ReleaseError(400, f"no saved server named {request.name!r}")
            self._check_host(saved)
            return dataclasses.replace(saved, email=request.email or saved.email)
        _check(request, "release")
        self._check_host(request)
        return request

    async def release(self, message_id: str, server: OutgoingServer,
                      recipients: list[str] | None = None, sender: str | None = None,
                      allow_plaintext_auth: bool = False) -> Any:
        """Send message ``message_id`` via ``server``; the probe's SendResult.

        ReleaseError 404 for an unknown id, 400 for bad input, 502 when the server
        refused or could not be reached (with the stage and its SMTP reply).
        """
        import probe  # the sink uses the probe, never the other way round

        to = recipients if recipients is not None else [server.email]
        to = [address for address in to if address]
        if not to:
            raise ReleaseError(400, "a recipient (email) is required")
        stored = await self.store.get(message_id)
        if stored is None:
            raise ReleaseError(404, "message not found")
        data = _received_line(stored.envelope.helo, self.hostname, message_id) + stored.raw
        message = probe.RawMessage(data, sender or f"nobody@{self.hostname}", to)
        auth = None
        if server.username or server.password:
            auth = probe.Auth(server.username, server.password,
                              MECHANISMS[server.mechanism.upper()])
        # "auto" without a password is opportunistic, as between MTAs: encrypt when
        # offered, whoever's certificate it is. A password is only sent after a check.
        insecure = server.insecure or (server.tls == "auto" and auth is None)
        try:
            return await probe.async_send(
                message, server.host, int(server.port), tls=server.tls,
                insecure=insecure, auth=auth,
                allow_plaintext_auth=allow_plaintext_auth, ehlo=self.hostname,
                timeout=RELEASE_TIMEOUT)
        except probe.UsageError as error:
            raise ReleaseError(400, error.message, stage=error.stage) from None
        except probe.ProbeError as error:
            raise ReleaseError(502, error.message, stage=error.stage, code=error.code,
                               enhanced_code=error.enhanced_code) from None

    async def release_mailhog(self, message_id: str, body: Any) -> Any:
        """MailHog's ``POST /api/v1/messages/{id}/release`` body → a release."""
        request = server_from_json(body, "release")
        return await self.release(message_id, self.resolve(request))
