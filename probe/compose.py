"""The message to send: composed with ``email.message.EmailMessage``, or raw bytes.

Both kinds give the envelope (sender, recipients) and the bytes to send. ``to_wire``
makes those bytes safe for DATA: CRLF line endings and dot-stuffing (RFC 5321 4.5.2).
A composed message is 7-bit clean (non-ASCII text is quoted-printable, non-ASCII
headers RFC 2047/2231 encoded) unless an address needs SMTPUTF8; Bcc is envelope only.
"""
from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from datetime import datetime
from pathlib import Path

from .errors import UsageError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")   # printable ASCII except ':' (RFC 5322 2.2)
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
# Headers the composer writes itself; a custom header of the same name replaces it.
_SINGLE_HEADERS = {"from", "to", "cc", "reply-to", "subject", "date", "message-id",
                   "mime-version", "sender"}


def envelope_address(text: str, what: str) -> str:
    """The bare address of ``Name <a@b>`` or ``a@b``; refuses what could inject commands."""
    if _CONTROL.search(text):
        raise UsageError(f"{what} address {text!r} contains control characters", stage="usage")
    text = text.strip()
    if text == "<>" or text == "":
        if what == "from":
            return ""  # the null sender (bounces)
        raise UsageError(f"empty {what} address", stage="usage")
    _, address = parseaddr(text) if "<" in text else ("", text)
    if not address or any(c in address for c in "<> \t"):
        raise UsageError("Invalid email address format (from/to must not contain <, >, "
                         f"or whitespace): {text!r}", stage="usage")
    return address


def needs_smtputf8(addresses: list[str]) -> bool:
    return any(not a.isascii() for a in addresses)


def header_section(data: bytes) -> bytes:
    match = re.search(rb"\r?\n\r?\n", data)
    return data[:match.start()] if match else data


@dataclass
class Attachment:
    """A file to attach: its name, bytes and MIME type (guessed from the name if None)."""

    filename: str
    content: bytes = field(repr=False)
    content_type: str | None = None

    @classmethod
    def from_path(cls, path: str | Path, content_type: str | None = None) -> "Attachment":
        path = Path(path)
        return cls(path.name, path.read_bytes(), content_type)

    def mime_type(self) -> tuple[str, str]:
        ctype = self.content_type or mimetypes.guess_type(self.filename)[0] \
            or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        if not subtype:
            raise UsageError(f"attachment type {ctype!r} is not maintype/subtype", stage="usage")
        return maintype, subtype


@dataclass
class Message:
    """A message to compose. ``sender`` may be ``Name <addr>``; so may every recipient."""

    sender: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)     # envelope only, never a header
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)   # extra, in order
    reply_to: list[str] = field(default_factory=list)
    date: datetime | None = None          # default: now
    message_id: str | None = None         # default: a fresh <...@sender domain>
    _built: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def envelope_sender(self) -> str:
        return envelope_address(self.sender, "from")

    def recipients(self) -> list[str]:
        """Every envelope recipient (To, Cc, Bcc), each once, in order."""
        seen: dict[str, None] = {}
        for text in [*self.to, *self.cc, *self.bcc]:
            seen.setdefault(envelope_address(text, "to"), None)
        return list(seen)

    def needs_smtputf8(self) -> bool:
        return needs_smtputf8([self.envelope_sender, *self.recipients()])

    def build(self) -> EmailMessage:
        """The ``EmailMessage`` (7-bit clean unless an address is non-ASCII)."""
        utf8 = self.needs_smtputf8()
        # cte_type=7bit makes non-ASCII text quoted-printable, so no 8BITMIME is needed.
        policy = (email_policy.SMTPUTF8 if utf8 else email_policy.SMTP).clone(
            cte_type="8bit" if utf8 else "7bit")
        msg = EmailMessage(policy=policy)
        domain = self.envelope_sender.rpartition("@")[2] or "mailsink.invalid"
        msg["From"] = self.sender
        if self.to:
            msg["To"] = ", ".join(self.to)
        if self.cc:
            msg["Cc"] = ", ".join(self.cc)
        if self.reply_to:
            msg["Reply-To"] = ", ".join(self.reply_to)
        if self.subject is not None:
            msg["Subject"] = self.subject
        # Fill in Date and Message-ID on the object, so the caller can see what was sent.
        self.date = self.date or datetime.now().astimezone()
        # make_msgid() without a domain calls getfqdn(), which can block for seconds.
        self.message_id = self.message_id or make_msgid(
            domain=domain if domain.isascii() else domain.encode("idna").decode("ascii"))
        msg["Date"] = format_datetime(self.date)
        msg["Message-ID"] = self.message_id
        if self.html is not None and self.text is not None:
            msg.set_content(self.text)
            msg.add_alternative(self.html, subtype="html")
        elif self.html is not None:
            msg.set_content(self.html, subtype="html")
        else:
            msg.set_content(self.text or "")
        for attachment in self.attachments:
            maintype, subtype = attachment.mime_type()
            if maintype == "text":
                msg.add_attachment(attachment.content.decode("utf-8", "replace"),
                                   subtype=subtype, filename=attachment.filename)
            else:
                msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                                   filename=attachment.filename)
        for part in msg.walk():
            if part is not msg:
                del part["MIME-Version"]   # the email package repeats it in sub-parts
        if "MIME-Version" not in msg:
            msg["MIME-Version"] = "1.0"
        for name, value in self.headers:
            _check_header(name, value)
            if name.lower() in _SINGLE_HEADERS:
                del msg[name]
            msg[name] = value
        return msg

    def to_bytes(self) -> bytes:
        """The message as sent. Built once: Date, Message-ID and MIME boundaries stay put."""
        if self._built is None:
            utf8 = self.needs_smtputf8()
            self._built = self.build().as_bytes(
                policy=email_policy.SMTPUTF8 if utf8 else email_policy.SMTP)
        return self._built


@dataclass
class RawMessage:
    """Bytes sent as they are (apart from CRLF and dot-stuffing), with their envelope."""

    data: bytes = field(repr=False)
    sender: str = ""
    to: list[str] = field(default_factory=list)

    @property
    def envelope_sender(self) -> str:
        return envelope_address(self.sender, "from") if self.sender else ""

    def recipients(self) -> list[str]:
        seen: dict[str, None] = {}
        for text in self.to:
            seen.setdefault(envelope_address(text, "to"), None)
        return list(seen)

    def needs_smtputf8(self) -> bool:
        # RFC 6532: raw UTF-8 in the header section needs SMTPUTF8 as much as addresses do.
        return needs_smtputf8([self.envelope_sender, *self.recipients()]) or \
            not header_section(self.data).isascii()

    def to_bytes(self) -> bytes:
        return self.data


def header_recipients(data: bytes) -> list[str]:
    """Addresses in To, Cc and Bcc of a raw message (for ``sendmail -t``)."""
    from email.parser import BytesHeaderParser
    headers = BytesHeaderParser(policy=email_policy.compat32).parsebytes(data)
    values = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return [address for _, address in getaddresses(values) if address]


def strip_bcc(data: bytes) -> bytes:
    """The message without its Bcc header(s) (and their folded continuation lines)."""
    head_end = re.search(rb"\r?\n\r?\n", data)
    head, rest = (data[:head_end.start()], data[head_end.start():]) if head_end else (data, b"")
    kept: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return b"".join(kept) + rest


def _check_header(name: str, value: str) -> None:
    if not _HEADER_NAME.match(name):
        raise UsageError(f"bad header name {name!r}", stage="usage")
    if "\r" in value or "\n" in value:
        raise UsageError(f"header {name} has a line break in its value", stage="usage")


def parse_header(text: str) -> tuple[str, str]:
    """``'X-Tag: one'`` → ``('X-Tag', 'one')``."""
    name, sep, value = text.partition(":")
    if not sep:
        raise UsageError(f"header {text!r} is not 'Name: value'", stage="usage")
    name, value = name.strip(), value.strip()
    _check_header(name, value)
    return name, value


def to_wire(data: bytes) -> bytes:
    """DATA payload: every line ending CRLF, leading dots doubled, ending with CRLF.

    The terminating ``.\\r\\n`` is not included.
    """
    data = _LINE_ENDS.sub(b"\r\n", data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def message_size(data: bytes) -> int:
    """The size declared with SIZE=: CRLF line endings, before dot-stuffing (RFC 1870)."""
    data = _LINE_ENDS.sub(b"\r\n", data)
    return len(data) + (0 if not data or data.endswith(b"\r\n") else 2)


__all__ = ["Attachment", "Message", "RawMessage", "envelope_address", "to_wire",
           "message_size", "parse_header", "header_recipients", "strip_bcc"]
