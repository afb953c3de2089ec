"""aiosmtpd handler hooks: what the sink does at each SMTP step.

The handler hands the store raw bytes plus an ``Envelope`` and nothing else, then
publishes a "new" event. Replies carry enhanced status codes.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from aiosmtpd.smtp import Envelope as SMTPEnvelope, Session

from ..events import EventBus
from ..store import Envelope, Store
from .server import NULL_SENDER
from .tls import connection_tls

log = logging.getLogger(__name__)

MALFORMED_ADDRESS = "553 5.1.3 Error: malformed address"


def is_plausible_address(address: str) -> bool:
    """local@domain with no spaces (or the bare "postmaster" RFC 5321 allows)."""
    if address.lower() == "postmaster":
        return True
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and not any(c.isspace() for c in address)


def peer_text(peer: Any) -> str:
    """``("127.0.0.1", 5000)`` → ``"127.0.0.1:5000"`` (IPv6 in brackets)."""
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer or "")


class SinkHandler:
    """Captures every message into ``store``; relays nothing."""

    def __init__(self, store: Store, events: EventBus, max_recipients: int):
        self.store = store
        self.events = events
        self.max_recipients = max_recipients

    async def handle_EHLO(self, server: Any, session: Session, envelope: SMTPEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname  # aiosmtpd requires the hook to set it
        extensions = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        # Whether AUTH is offered is the session's call (auth mode, TLS): replace aiosmtpd's line.
        responses = [line for line in responses if not line.startswith("250-AUTH")]
        auth_line = server.ehlo_auth_line()
        if auth_line:
            extensions.append(auth_line)
        return responses[:-1] + extensions + responses[-1:]

    async def handle_MAIL(self, server: Any, session: Session, envelope: SMTPEnvelope,
                          address: str, mail_options: list[str]) -> str:
        if address != NULL_SENDER and not is_plausible_address(address):
            return MALFORMED_ADDRESS
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: Any, session: Session, envelope: SMTPEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not is_plausible_address(address):
            return MALFORMED_ADDRESS
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.max_recipients})"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_RSET(self, server: Any, session: Session, envelope: SMTPEnvelope) -> str:
        return "250 2.0.0 OK"

    async def handle_NOOP(self, server: Any, session: Session, envelope: SMTPEnvelope,
                          arg: str) -> str:
        return "250 2.0.0 OK"

    async def handle_VRFY(self, server: Any, session: Session, envelope: SMTPEnvelope,
                          address: str) -> str:
        return "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

    async def handle_QUIT(self, server: Any, session: Session, envelope: SMTPEnvelope) -> str:
        return "221 2.0.0 Bye"

    def envelope_for(self, server: Any, session: Session, envelope: SMTPEnvelope) -> Envelope:
        """Our stored envelope from aiosmtpd's session and envelope."""
        mail_from = envelope.mail_from or ""
        tls_version, tls_cipher = connection_tls(server.transport)
        identity = session.auth_data if session.authenticated else None
        return Envelope(
            mail_from="" if mail_from == NULL_SENDER else mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            helo=session.host_name or "",
            peer=peer_text(session.peer),
            received_at=time.time(),
            smtputf8=bool(envelope.smtp_utf8),
            tls_version=tls_version,
            tls_cipher=tls_cipher,
            auth_user=getattr(identity, "user", None),
            auth_mechanism=getattr(identity, "mechanism", None),
        )

    async def handle_DATA(self, server: Any, session: Session, envelope: SMTPEnvelope) -> str:
        stored_envelope = self.envelope_for(server, session, envelope)
        try:
            message_id = await self.store.add(envelope.original_content, stored_envelope)
        except Exception:
            log.exception("could not store a message from %s", stored_envelope.peer)
            return "451 4.3.0 Error: could not store the message, try again"
        self.events.publish("new", id=message_id)
        return f"250 2.0.0 Ok: queued as {message_id}"
