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
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser

SNIPPET_LENGTH = 200

# compat32 for both: it builds the same MIME tree as policy.default at a tenth of
# the cost; header values are decoded by ``decode_header_value`` instead.
_header_parser = BytesHeaderParser(policy=email.policy.compat32)
_full_parser = BytesParser(policy=email.policy.compat32)
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


def _format_address(name: str, addr: str) -> str:
    if not name:
        return addr
    if any(c in name for c in ',;<>@"()'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def _address_list(values: list[str]) -> list[str]:
    """Decoded addresses for display: ``Name <addr>`` or ``addr``."""
    decoded = ", ".join(decode_header_value(v) for v in values)
    if not decoded:
        return []
    if not any(c in decoded for c in '"(\\'):
        # Fast path for the common case: no quoted names or comments.
        return [_unfold(part) for part in decoded.split(",") if part.strip()]
    return [_format_address(name, addr)
            for name, addr in email.utils.getaddresses([decoded]) if name or addr]


_WANTED = {"from", "to", "cc", "subject", "date", "message-id", "content-type"}
HEADER_BLOCK_LIMIT = 256 * 1024


def _header_fields(raw: bytes) -> dict[str, list[str]]:
    """The few headers ``summarize`` needs, unfolded, without a full header parse."""
    block = raw[:HEADER_BLOCK_LIMIT]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = block.find(separator)
        if end >= 0:
            block = block[:end]
            break
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    fields: dict[str, list[str]] = {}
    name = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t"):
            if name is not None:
                fields[name][-1] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        name = key if colon and key in _WANTED else None
        if name is not None:
            fields.setdefault(name, []).append(value.strip())
    return fields


def summarize(raw: bytes) -> HeaderSummary:
    """Decode the list fields from the header block only (cheap, never raises)."""
    try:
        fields = _header_fields(raw)
        first = lambda key: fields.get(key, [""])[0]  # noqa: E731
        content_type = first("content-type").split(";")[0].strip().lower()
        return HeaderSummary(
            from_=", ".join(_address_list(fields.get("from", []))),
            to=_address_list(fields.get("to", [])),
            cc=_address_list(fields.get("cc", [])),
            subject=decode_header_value(first("subject")),
            date=decode_header_value(first("date")),
            message_id=first("message-id"),
            content_type=content_type or "text/plain",
        )
    except Exception:  # never let one odd header block break ingest
        return HeaderSummary()


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
    """Full MIME parse (tree, parts, text, HTML); degrades instead of raising."""
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


def _unescape_8bit(text: str) -> str:
    """Raw 8-bit header bytes (kept by the parser as surrogates) decoded as UTF-8,
    else Latin-1: senders that put raw bytes in headers nearly always mean UTF-8."""
    raw = text.encode("ascii", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _has_8bit(text: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in text)


def _part_filename(part: Message) -> str | None:
    """The part's file name, decoded (RFC 2231, RFC 2047, or raw UTF-8 bytes)."""
    source: Message = part
    headers = [(name, value) for name, value in part.raw_items()
               if name.lower() in ("content-disposition", "content-type")]
    if any(_has_8bit(value) for _, value in headers):
        # The parser would turn raw bytes into U+FFFD: read them from clean copies.
        source = Message()
        for name, value in headers:
            source[name] = _unescape_8bit(value) if _has_8bit(value) else value
    try:
        filename = source.get_filename()
    except Exception:
        return None
    return decode_header_value(filename) if filename else None


def _safe_header(message: Message, name: str, value: str) -> str:
    if _has_8bit(value):
        return _unescape_8bit(value)
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
    filename = _part_filename(part)
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


INDEX_LIMIT = 1024 * 1024


def index_fields(head: bytes) -> tuple[str, int]:
    """Body text and attachment count of (the first ``INDEX_LIMIT`` bytes of) a message.

    Only the head is parsed, so a 25 MiB attachment costs the indexer no more than
    a 1 MiB one; the store counts attachments past it with ``count_attachment_headers``.
    """
    parsed = parse(head[:INDEX_LIMIT])
    return body_text(parsed), len(parsed.attachments)


def count_attachment_headers(data: bytes | bytearray, end: int | None = None) -> int:
    """How many ``Content-Disposition: attachment`` headers start in ``data[:end]``.

    A plain substring scan (base64 and QP bodies never contain a colon), far
    cheaper than a regular expression over megabytes.
    """
    end = len(data) if end is None else end
    count = 0
    found = data.find(b"isposition:", 9)
    while found != -1 and found - 9 < end:
        if (bytes(data[found - 9:found]).lower() == b"content-d"
                and bytes(data[found + 11:found + 40]).lstrip().lower().startswith(b"attachment")):
            count += 1
        found = data.find(b"isposition:", found + 11)
    return count
