"""What the probe reports: replies, capabilities, TLS facts, timings and results.

Plain dataclasses with ``to_dict()`` for JSON; nothing here does I/O.
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?: |$)")
_QUEUE_ID = [re.compile(r"queued as ([^\s;,]+)", re.I), re.compile(r"\bid=([^\s;,]+)", re.I),
             re.compile(r"^(?:ok|queued)[: ]+([A-Za-z0-9][\w.-]{4,})$", re.I)]


@dataclass
class Reply:
    """One SMTP reply: its code and its lines' texts (without the ``250-`` prefixes)."""

    code: int
    lines: list[str]

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 code (``5.1.1``) at the start of the first line, if any."""
        if not self.lines or self.code // 100 not in (2, 4, 5):
            return None
        match = _ENHANCED.match(self.lines[0])
        return match.group(1) if match else None

    @property
    def text(self) -> str:
        """The reply's text, lines joined by a space, enhanced code left out."""
        parts = []
        for line in self.lines:
            match = _ENHANCED.match(line)
            parts.append(line[match.end():] if match else line)
        return " ".join(p for p in parts if p)

    @property
    def raw(self) -> str:
        """The reply as it came on the wire, lines joined with CRLF."""
        last = len(self.lines) - 1
        return "\r\n".join(f"{self.code}{' ' if i == last else '-'}{line}".rstrip()
                           for i, line in enumerate(self.lines))

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    def __str__(self) -> str:
        """``550 5.1.1 <x@y>: user unknown`` - code and lines on one line, for messages."""
        return " ".join([str(self.code), *(line for line in self.lines if line)])

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "enhanced_code": self.enhanced_code, "text": self.text,
                "lines": self.lines}


@dataclass
class Capabilities:
    """The EHLO reply parsed: keyword (upper case) → its parameters."""

    domain: str = ""              # the server's name: the first EHLO line
    extensions: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, reply: Reply) -> "Capabilities":
        caps = cls(domain=reply.lines[0].split(" ", 1)[0] if reply.lines else "")
        for line in reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            name, params = words[0].upper(), words[1:]
            if name.startswith("AUTH="):
                # The pre-RFC form "AUTH=PLAIN LOGIN" some servers still send.
                name, params = "AUTH", [name[5:], *params]
            if name == "AUTH":
                known = caps.extensions.setdefault("AUTH", [])
                known.extend(p.upper() for p in params if p.upper() not in known)
            else:
                caps.extensions[name] = params
        return caps

    def has(self, name: str) -> bool:
        return name.upper() in self.extensions

    @property
    def auth(self) -> list[str]:
        return list(self.extensions.get("AUTH", []))

    @property
    def size(self) -> int | None:
        """The SIZE limit (0 = no fixed limit); None when SIZE is absent or unreadable."""
        params = self.extensions.get("SIZE")
        if params is None:
            return None
        try:
            return int(params[0]) if params else 0
        except ValueError:
            return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, params in self.extensions.items():
            out[name] = self.size if name == "SIZE" and self.size is not None else list(params)
        return out


@dataclass
class Certificate:
    """The server certificate's facts that matter when debugging TLS."""

    subject: str
    issuer: str
    sans: list[str]
    not_before: str
    not_after: str
    serial: str
    fingerprint_sha256: str

    @classmethod
    def from_der(cls, der: bytes) -> "Certificate":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = x509.load_der_x509_certificate(der)
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans += [f"DNS:{name}" for name in ext.get_values_for_type(x509.DNSName)]
            sans += [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        return cls(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                   sans=sans,
                   not_before=cert.not_valid_before_utc.astimezone(timezone.utc).isoformat(),
                   not_after=cert.not_valid_after_utc.astimezone(timezone.utc).isoformat(),
                   serial=format(cert.serial_number, "x"),
                   fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":"))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TLSInfo:
    """How TLS was set up on a connection, and whether the certificate verified."""

    mode: str                         # "starttls" or "implicit"
    protocol: str | None
    cipher: str | None
    bits: int | None
    server_hostname: str | None
    certificate: Certificate | None
    verified: bool                    # the chain and the name were checked and passed
    verify_error: str | None = None   # why it did not verify (None if it did or was not checked)

    @classmethod
    def from_ssl(cls, mode: str, ssl_object: ssl.SSLObject, server_hostname: str | None,
                 verified: bool, verify_error: str | None = None) -> "TLSInfo":
        cipher = ssl_object.cipher()
        der = ssl_object.getpeercert(binary_form=True)
        return cls(mode=mode, protocol=ssl_object.version(),
                   cipher=cipher[0] if cipher else None, bits=cipher[2] if cipher else None,
                   server_hostname=server_hostname,
                   certificate=Certificate.from_der(der) if der else None,
                   verified=verified, verify_error=verify_error)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["certificate"] = self.certificate.to_dict() if self.certificate else None
        return out


class Timings:
    """Milliseconds per step, in order. A step run twice gets ``_2`` (``rcpt_2``)."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def add(self, name: str, ms: float) -> None:
        key, n = name, 1
        while key in self.steps:
            n += 1
            key = f"{name}_{n}"
        self.steps[key] = round(ms, 3)

    def get(self, name: str) -> float | None:
        return self.steps.get(name)

    def to_dict(self) -> dict[str, float]:
        return dict(self.steps)


@dataclass
class Endpoint:
    """Where a session went: the name asked for, the port and the address connected."""

    host: str
    port: int
    address: str | None = None


@dataclass
class ConnectResult:
    """What ``connect()`` found out about a server."""

    host: str
    port: int
    address: str | None
    greeting: Reply
    ehlo: Reply | None              # the last EHLO reply (after STARTTLS when there was one)
    capabilities: Capabilities
    helo_fallback: bool             # EHLO was refused and HELO used instead
    tls: TLSInfo | None
    authenticated: bool | None      # None when no credentials were given
    auth_mechanism: str | None
    rtt_ms: float                   # TCP connect time: one network round trip
    timings: Timings
    transcript: Any                 # probe.transcript.Transcript
    round_trips: int = 0

    @property
    def ok(self) -> bool:
        return (self.tls is None or self.tls.verified or self.tls.verify_error is None) and \
            self.authenticated is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "port": self.port, "address": self.address,
            "greeting": self.greeting.raw, "ehlo": self.ehlo.raw if self.ehlo else None,
            "capabilities": self.capabilities.to_dict(),
            "server_name": self.capabilities.domain,
            "helo_fallback": self.helo_fallback,
            "tls": self.tls.to_dict() if self.tls else None,
            "authenticated": self.authenticated, "auth_mechanism": self.auth_mechanism,
            "rtt_ms": round(self.rtt_ms, 3), "timings": self.timings.to_dict(),
            "round_trips": self.round_trips, "transcript": self.transcript.lines(),
        }


@dataclass
class RecipientResult:
    """One RCPT TO and what the server said to it."""

    address: str
    reply: Reply | None   # None when the transaction stopped before this RCPT was answered

    @property
    def accepted(self) -> bool:
        return self.reply is not None and self.reply.code // 100 == 2

    def to_dict(self) -> dict[str, Any]:
        r = self.reply
        return {"address": self.address, "accepted": self.accepted,
                "code": r.code if r else None, "enhanced_code": r.enhanced_code if r else None,
                "text": r.text if r else None}


@dataclass
class SendResult:
    """What ``send()`` did: per-recipient replies, the final reply and the transcript."""

    host: str
    port: int
    address: str | None
    sender: str
    greeting: Reply | None
    recipients: list[RecipientResult]
    mail_reply: Reply | None
    final_reply: Reply | None     # the reply to the end of DATA (None if it never got there)
    pipelined: bool
    tls: TLSInfo | None
    capabilities: Capabilities
    authenticated: bool | None
    auth_mechanism: str | None
    size: int                     # message size in octets, as declared with SIZE=
    timings: Timings
    transcript: Any
    stopped_after: str | None = None   # the --quit-after stage, when one was given
    round_trips: int = 0

    @property
    def accepted(self) -> list[str]:
        return [r.address for r in self.recipients if r.accepted]

    @property
    def rejected(self) -> list[RecipientResult]:
        return [r for r in self.recipients if r.reply is not None and not r.accepted]

    @property
    def delivered(self) -> bool:
        """The server took responsibility for the message (2xx after the final dot)."""
        return self.final_reply is not None and self.final_reply.code // 100 == 2

    @property
    def queue_id(self) -> str | None:
        if not self.delivered:
            return None
        assert self.final_reply is not None
        text = self.final_reply.text
        for pattern in _QUEUE_ID:
            match = pattern.search(text)
            if match:
                return match.group(1)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "port": self.port, "address": self.address,
            "from": self.sender, "delivered": self.delivered,
            "greeting": self.greeting.raw if self.greeting else None,
            "recipients": [r.to_dict() for r in self.recipients],
            "accepted": self.accepted, "rejected": [r.address for r in self.rejected],
            "mail": self.mail_reply.to_dict() if self.mail_reply else None,
            "final_reply": self.final_reply.to_dict() if self.final_reply else None,
            "queue_id": self.queue_id, "pipelined": self.pipelined,
            "tls": self.tls.to_dict() if self.tls else None,
            "capabilities": self.capabilities.to_dict(),
            "authenticated": self.authenticated, "auth_mechanism": self.auth_mechanism,
            "size": self.size, "stopped_after": self.stopped_after,
            "timings": self.timings.to_dict(), "round_trips": self.round_trips,
            "transcript": self.transcript.lines(),
        }
