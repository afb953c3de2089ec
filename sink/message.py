"""Turning raw message bytes into what people look at.

Two depths, because parsing is the main cost of ingest (see DESIGN.md):
- ``summarize`` reads only the header block with the cheap ``compat32`` parser and
  decodes the handful of fields the inbox lists. It runs for every message.
- ``parse`` does the full MIME parse with ``policy.default`` (tree, parts, text,
  HTML, attachments). It runs when someone opens a message, or off the hot path.
Neither ever raises on malformed input: broken MIME, unknown charsets and 8-bit
junk degrade to best-effort text.
"""
from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser

SNIPPET_LENGTH = 200

_header_parser = BytesHeaderParser(policy=email.policy.compat32)
_full_parser = BytesParser(policy=email.policy.default)
_whitespace = re.compile(r"\s+")


@dataclass
class HeaderSummary:
    """The list fields of a message, decoded to text."""

    from_: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str = ""
    date: str = ""
    message_id: str = ""
    content_type: str = ""


def decode_header_value(value: object) -> str:
    """Decode RFC 2047 encoded words; never fails (unknown charsets fall back)."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        chunks = email.header.decode_header(value)
    else:
        text = str(value)
        if "=?" not in text:
            return _unfold(text)
        try:
            chunks = email.header.decode_header(text)
        except Exception:
            return _unfold(text)
    parts = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            parts.append(_decode_bytes(chunk, charset))
        else:
            parts.append(chunk)
    return _unfold("".join(parts))


def _unfold(text: str) -> str:
    return _whitespace.sub(" ", text).strip()


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _address_list(values: list[str]) -> list[str]:
    decoded = [decode_header_value(v) for v in values]
    addresses = []
    for name, addr in email.utils.getaddresses(decoded):
        if not addr and not name:
            continue
        addresses.append(_display_address(name, addr) if name else addr)
    return addresses


_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def _display_address(name: str, addr: str) -> str:
    """``Name <addr>`` in readable Unicode (``formataddr`` would RFC 2047-encode it)."""
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def summarize(raw: bytes) -> HeaderSummary:
    """Decode the list fields from the header block only (cheap, never raises)."""
    try:
        headers = _header_parser.parsebytes(raw)
    except Exception:
        return HeaderSummary()
    return HeaderSummary(
        from_=", ".join(_address_list(headers.get_all("From", []))),
        to=_address_list(headers.get_all("To", [])),
        cc=_address_list(headers.get_all("Cc", [])),
        subject=decode_header_value(headers.get("Subject")),
        date=decode_header_value(headers.get("Date")),
        message_id=decode_header_value(headers.get("Message-ID")),
        content_type=(headers.get_content_type() or ""),
    )


@dataclass
class Part:
    """One leaf (or container) of the MIME tree, numbered depth-first."""

    index: int
    content_type: str
    charset: str | None
    encoding: str | None
    disposition: str | None
    filename: str | None
    content_id: str | None
    size: int
    depth: int
    is_multipart: bool
    defects: list[str] = field(default_factory=list)


@dataclass
class ParsedMessage:
    """The full parse: everything the message view, API and fixtures show."""

    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    parts: list[Part]
    attachments: list[Part]
    defects: list[str]
    tree: Message


def parse(raw: bytes) -> ParsedMessage:
    """Full MIME parse with ``policy.default``; degrades instead of raising."""
    message = _full_parser.parsebytes(raw)
    parts: list[Part] = []
    text: str | None = None
    html: str | None = None
    for index, (part, depth) in enumerate(_walk(message)):
        info = _describe(part, index, depth)
        parts.append(info)
        if info.is_multipart or info.disposition == "attachment":
            continue
        if info.content_type == "text/plain" and text is None:
            text = part_text(part)
        elif info.content_type == "text/html" and html is None:
            html = part_text(part)
    attachments = [p for p in parts if _is_attachment(p)]
    headers = [(name, decode_header_value(_safe_header(message, name, value)))
               for name, value in message.raw_items()]
    defects = [type(d).__name__ for d in message.defects]
    return ParsedMessage(headers, text, html, parts, attachments, defects, message)


def _safe_header(message: Message, name: str, value: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, value))
    except Exception:
        return value


def walk(message: Message):
    """``(part, depth)`` for every part, depth-first: the numbering ``parse`` uses."""
    return _walk(message)


def _walk(message: Message, depth: int = 0):
    yield message, depth
    if message.is_multipart():
        payload = message.get_payload()
        if isinstance(payload, list):
            for child in payload:
                yield from _walk(child, depth + 1)


def _describe(part: Message, index: int, depth: int) -> Part:
    payload = part.get_payload(decode=False)
    size = len(payload) if isinstance(payload, (str, bytes)) else 0
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    return Part(
        index=index,
        content_type=part.get_content_type(),
        charset=part.get_content_charset(),
        encoding=(part.get("Content-Transfer-Encoding") or None) and
        str(part.get("Content-Transfer-Encoding")).strip().lower(),
        disposition=part.get_content_disposition(),
        filename=filename,
        content_id=str(part.get("Content-ID")).strip() if part.get("Content-ID") else None,
        size=size,
        depth=depth,
        is_multipart=part.is_multipart(),
        defects=[type(d).__name__ for d in part.defects],
    )


def _is_attachment(part: Part) -> bool:
    if part.is_multipart:
        return False
    if part.disposition == "attachment":
        return True
    return bool(part.filename) and not part.content_type.startswith("text/")


def part_bytes(part: Message) -> bytes:
    """The decoded body of a leaf part (base64/QP undone); exact for attachments."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def part_text(part: Message) -> str:
    """A text part decoded to str with its charset; unknown charsets fall back."""
    return _decode_bytes(part_bytes(part), part.get_content_charset())


def find_part(tree: Message, index: int) -> Message | None:
    """The part with this depth-first index (as numbered by ``parse``)."""
    for position, (part, _depth) in enumerate(_walk(tree)):
        if position == index:
            return part
    return None


def html_to_text(html: str | None) -> str:
    """Visible text of an HTML body, roughly: tags, scripts and styles dropped."""
    if not html:
        return ""
    stripped = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    return _unfold(re.sub(r"<[^>]*>", " ", stripped))


def body_text(parsed: ParsedMessage) -> str:
    """The message's readable text: the plain part, else the HTML's text."""
    if parsed.text is not None:
        return _unfold(parsed.text)
    return html_to_text(parsed.html)
