"""MailHog's message object, derived from our stored raw bytes and envelope.

MailHog clients read a JSON object whose keys, order and types come from Go
structs (``ID, From, To, Content, Created, MIME, Raw``). This module rebuilds it
from what we store; the stored bytes are never touched. It follows MailHog's own
parse (headers split at the first blank line, ``--boundary`` splitting, the
Message-ID/Received/Return-Path it adds to the header view) and fixes the bugs
that no client can depend on:

- repeated headers keep every value (MailHog keeps the last one);
- ``Name:value`` without a space after the colon is a header (MailHog drops it);
- no bogus last part holding the closing ``--`` delimiter, no empty parts;
- the boundary must start a line, so a nested boundary that extends the outer
  one does not split the message in the wrong place;
- ``Content-Type`` is found whatever its case;
- a message with bare LF line ends still has headers;
- an address containing ``:`` (IPv6 literal) is not read as a source route.

Pure functions over bytes: no I/O, no store, no web.
"""
from __future__ import annotations

import datetime as dt
import email.message
import email.utils
import re
from typing import Any, Iterable

# Header lines MailHog accepts: "Name: value"; we also take "Name:value".
_FIELD_NAME = re.compile(rb"^[!-9;-~]+$")
_LINE_END = re.compile(rb"\r?\n")


def text(data: bytes) -> str:
    """Bytes as a JSON string: UTF-8, invalid bytes replaced (as Go's encoder does)."""
    return data.decode("utf-8", "replace")


def path_json(address: str) -> dict[str, Any]:
    """An SMTP path as MailHog's ``Path``: source route, local part, domain."""
    relays = None
    mailbox_at_domain = address
    # A source route looks like "@a,@b:user@example.com" (RFC 5321 obsolete syntax).
    if address.startswith("@") and ":" in address:
        route, mailbox_at_domain = address.split(":", 1)
        relays = route.split(",")
    if "@" in mailbox_at_domain:
        mailbox, domain = mailbox_at_domain.split("@", 1)
    else:
        mailbox, domain = mailbox_at_domain, ""
    return {"Relays": relays, "Mailbox": mailbox, "Domain": domain, "Params": ""}


def split_head_body(data: bytes) -> tuple[bytes | None, bytes]:
    """Split at the first blank line; ``(None, data)`` when there is none."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return None, data
    return data[:match.start()], data[match.end():]


def parse_headers(head: bytes) -> dict[str, list[str]]:
    """Header name (case as sent) → every value, unfolded, in order of appearance."""
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in _LINE_END.split(head):
        if last is not None and line[:1] in (b" ", b"\t"):
            # MailHog unfolds by joining the continuation line as it is.
            headers[last][-1] += text(line)
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.match(name):
            last = None
            continue
        if value.startswith(b" "):
            value = value[1:]
        last = text(name)
        headers.setdefault(last, []).append(text(value))
    return headers


def header_values(headers: dict[str, list[str]], name: str) -> list[str]:
    """Every value of a header, whatever the case of its name."""
    wanted = name.lower()
    values: list[str] = []
    for key, found in headers.items():
        if key.lower() == wanted:
            values.extend(found)
    return values


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a Content-Type value, if any."""
    holder = email.message.Message()
    holder["Content-Type"] = content_type
    try:
        boundary = holder.get_param("boundary")
    except Exception:
        return None
    if isinstance(boundary, tuple):  # RFC 2231 form
        boundary = email.utils.collapse_rfc2231_value(boundary)
    return str(boundary) if boundary else None


def _multipart_boundary(headers: dict[str, list[str]]) -> str | None:
    content_types = header_values(headers, "Content-Type")
    if not content_types or not content_types[0].lower().lstrip().startswith("multipart/"):
        return None
    return boundary_of(content_types[0])


MAX_MIME_DEPTH = 50  # deeper multiparts get "MIME": null (a hostile message nests thousands)


def content_json(data: bytes, nested: bool = False, depth: int = 0) -> dict[str, Any]:
    """MailHog's ``Content`` for a message or part: headers, body, size, nested MIME."""
    head, body = split_head_body(data)
    if head is None:
        # MailHog makes all of it the body; a block of nothing but headers is
        # still headers (a message sent without a body).
        headers = parse_headers(data) if _all_headers(data) else {}
        body = b"" if headers else data
    else:
        headers = parse_headers(head)
    mime = None
    if nested and depth < MAX_MIME_DEPTH:
        boundary = _multipart_boundary(headers)
        mime = mime_json(body, boundary, depth + 1) if boundary else None
    return {"Headers": _sorted(headers), "Body": text(body), "Size": len(data), "MIME": mime}


def _sorted(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    # Go marshals map keys in sorted order.
    return {key: headers[key] for key in sorted(headers)}


def _all_headers(data: bytes) -> bool:
    lines = [line for line in _LINE_END.split(data) if line]
    if not lines:
        return False
    for position, line in enumerate(lines):
        if position and line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not _FIELD_NAME.match(name):
            return False
    return True


def split_parts(body: bytes, boundary: str) -> list[bytes]:
    """The body's chunks between ``--boundary`` lines, trimmed of CR/LF as MailHog does.

    A non-empty preamble is kept as the first chunk (MailHog does, and part
    numbers in URLs count it); the closing delimiter and the epilogue are not.
    """
    delimiter = re.compile(
        rb"(?m)^--" + re.escape(boundary.encode("utf-8", "surrogateescape")) +
        rb"(--)?[ \t]*\r?$")
    chunks: list[bytes] = []
    position = 0
    for match in delimiter.finditer(body):
        chunks.append(body[position:match.start()])
        position = match.end()
        if match.group(1):  # "--boundary--": the rest is the epilogue
            break
    else:
        chunks.append(body[position:])
    trimmed = [chunk.strip(b"\r\n") for chunk in chunks]
    return [chunk for chunk in trimmed if chunk]


def mime_json(body: bytes, boundary: str, depth: int = 0) -> dict[str, Any]:
    """MailHog's ``MIMEBody``: ``{"Parts": [Content...]}``, nested multiparts inside."""
    return {"Parts": [content_json(chunk, nested=True, depth=depth)
                      for chunk in split_parts(body, boundary)]}


def created_text(timestamp: float) -> str:
    """Go's RFC 3339 time with trimmed fractional seconds, e.g. ``...T06:10:05.12Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def received_text(helo: str, hostname: str, message_id: str, timestamp: float) -> str:
    """The Received value MailHog adds to the header view (RFC 1123Z date)."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)
    date = email.utils.format_datetime(moment)
    return f"from {helo} by {hostname} (MailHog)\r\n          id {message_id}; {date}"


def _append_header(headers: dict[str, list[str]], name: str, value: str) -> None:
    """Add a value under the existing spelling of ``name``, or under ``name``."""
    for key in headers:
        if key.lower() == name.lower():
            headers[key].append(value)
            return
    headers[name] = [value]


def message_json(message_id: str, raw: bytes, mail_from: str, rcpt_tos: Iterable[str],
                 helo: str, received_at: float, hostname: str,
                 with_mime: bool = True) -> dict[str, Any]:
    """The whole MailHog ``Message`` for one stored message (``with_mime=False``:
    without the MIME split, the fallback for a message that cannot be split)."""
    # MailHog's Data ends before the CRLF that belongs to the final CRLF.CRLF.
    data = raw[:-2] if raw.endswith(b"\r\n") else raw
    content = content_json(data)
    headers = content["Headers"]
    boundary = _multipart_boundary(headers)
    mime = mime_json(split_head_body(data)[1], boundary) if boundary and with_mime else None
    # The view MailHog shows has these added; Raw.Data and our store never do.
    if not header_values(headers, "Message-ID"):
        headers["Message-ID"] = [message_id]
    _append_header(headers, "Received", received_text(helo, hostname, message_id, received_at))
    _append_header(headers, "Return-Path", f"<{mail_from}>")
    content["Headers"] = _sorted(headers)
    recipients = list(rcpt_tos)
    return {
        "ID": message_id,
        "From": path_json(mail_from),
        "To": [path_json(address) for address in recipients],
        "Content": content,
        "Created": created_text(received_at),
        "MIME": mime,
        "Raw": {"From": mail_from, "To": recipients, "Data": text(data), "Helo": helo},
    }
