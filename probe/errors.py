"""The probe's exceptions: one class per kind of failure, each naming the stage.

The kind decides the CLI exit code and the HTTP error; the message follows the seed
API's wording ("EHLO failed: 550 ...", "MAIL FROM failed: ...") so callers can show
it as is. ``code`` and ``enhanced_code`` come from the SMTP reply when there was one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .results import Reply


class ProbeError(Exception):
    """Base class. ``stage`` is where it failed (connect, tls, greeting, ehlo, ...)."""

    kind = "protocol"

    def __init__(self, message: str, *, stage: str | None = None,
                 reply: "Reply | None" = None) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.reply = reply
        # Set by the client so a failure can still show what happened on the wire.
        self.transcript: Any = None
        self.result: Any = None   # a partial SendResult (per-recipient replies) if any

    @property
    def code(self) -> int | None:
        return self.reply.code if self.reply else None

    @property
    def enhanced_code(self) -> str | None:
        return self.reply.enhanced_code if self.reply else None

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "kind": self.kind, "stage": self.stage,
                "code": self.code, "enhanced_code": self.enhanced_code}


class UsageError(ProbeError):
    """Bad arguments: an address with CR/LF, an unknown TLS mode, no recipients..."""

    kind = "usage"


class ConnectError(ProbeError):
    """No SMTP service: DNS failure, refused connection, closed connection, bad greeting."""

    kind = "connection"


class ProbeTimeout(ConnectError):
    """A stage took longer than its timeout; the connection was closed (never reused)."""

    kind = "timeout"


class TLSError(ProbeError):
    """TLS could not be set up: handshake failure, bad certificate, STARTTLS refused."""

    kind = "tls"

    def __init__(self, message: str, *, stage: str | None = "tls", reply: "Reply | None" = None,
                 verify_error: str | None = None) -> None:
        super().__init__(message, stage=stage, reply=reply)
        # Set when the handshake failed only because the certificate did not verify.
        self.verify_error = verify_error


class AuthError(ProbeError):
    """AUTH failed, was not offered, or would have sent credentials in the clear."""

    kind = "auth"


class RejectedError(ProbeError):
    """The server refused the message: MAIL, every RCPT, DATA or the message itself."""

    kind = "rejected"


class ProtocolError(ProbeError):
    """The server broke the protocol: malformed or oversized reply, unexpected code."""

    kind = "protocol"
