"""The messages a test looks at: readable records of caught mail, and filters over them.

``CaughtMessage`` is built from what the store holds (summary, envelope, raw bytes)
with ``sink.message.parse``. ``matches`` implements the filters of
``Sink.wait_for``; ``describe`` is the one-line listing used in failure messages.
"""
from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from . import message as mime
from .store import Envelope, StoredMessage


@dataclass
class Attachment:
    """One attachment: its name, MIME type and decoded bytes."""

    filename: str | None
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class CaughtMessage:
    """One caught message, decoded. ``raw`` is the exact bytes the client sent."""

    id: str
    mail_from: str                       # envelope MAIL FROM ("" for the null sender)
    rcpt_tos: list[str]                  # envelope RCPT TO in order; BCC recipients are only here
    envelope: Envelope
    received_at: float
    headers: list[tuple[str, str]]       # decoded, in order, repeats kept
    subject: str
    from_: str                           # the From header, decoded
    to: list[str]                        # the To header's addresses, decoded
    cc: list[str]
    text: str | None                     # the first text/plain part, line endings as \n
    html: str | None                     # the first text/html part, line endings as \n
    attachments: list[Attachment] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded."""
        values = self.header_values(name)
        return values[0] if values else default

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    @property
    def recipients(self) -> set[str]:
        """Every recipient address, lower-cased: envelope RCPT TO, To and Cc."""
        return {address.lower() for address in
                [*self.rcpt_tos, *_bare_addresses(self.to), *_bare_addresses(self.cc)]}

    @property
    def senders(self) -> set[str]:
        """The envelope sender and the From header's address(es), lower-cased."""
        found = {address.lower() for address in _bare_addresses([self.from_])}
        if self.mail_from:
            found.add(self.mail_from.lower())
        return found


def caught_message(stored: StoredMessage) -> CaughtMessage:
    """Decode one stored message (the full MIME parse: run it off the event loop)."""
    parsed = mime.parse(stored.raw)
    attachments = []
    for part in parsed.attachments:
        node = mime.find_part(parsed.tree, part.index)
        data = mime.part_bytes(node) if node is not None else b""
        attachments.append(Attachment(part.filename, part.content_type, data))
    summary = stored.summary
    return CaughtMessage(
        id=summary.id, mail_from=stored.envelope.mail_from,
        rcpt_tos=list(stored.envelope.rcpt_tos), envelope=stored.envelope,
        received_at=summary.received_at, headers=parsed.headers, subject=summary.subject,
        from_=summary.from_, to=list(summary.to), cc=list(summary.cc),
        text=_newlines(parsed.text), html=_newlines(parsed.html), attachments=attachments,
        raw=stored.raw)


def _newlines(text: str | None) -> str | None:
    """Line endings as ``\n`` (the wire's CRLF is in ``raw``), as text files read in Python."""
    return None if text is None else text.replace("\r\n", "\n")


def _bare_addresses(values: Iterable[str]) -> list[str]:
    return [address for _name, address in email.utils.getaddresses(list(values)) if address]


# -- filters ---------------------------------------------------------------
# A filter value is a string, a compiled regular expression (re.search) or a
# callable returning True for a match. How a string matches depends on the field:
# addresses exactly (case-insensitive), text fields as a substring.

def _address_filter(get: Callable[[CaughtMessage], set[str]]):
    def test(message: CaughtMessage, wanted: Any) -> bool:
        addresses = get(message)
        if isinstance(wanted, str):
            return wanted.strip().strip("<>").lower() in addresses
        return any(_test_value(address, wanted) for address in addresses)
    return test


def _text_filter(get: Callable[[CaughtMessage], str | None]):
    def test(message: CaughtMessage, wanted: Any) -> bool:
        value = get(message) or ""
        if isinstance(wanted, str):
            return wanted in value
        return _test_value(value, wanted)
    return test


def _test_value(value: str, wanted: Any) -> bool:
    if isinstance(wanted, re.Pattern):
        return wanted.search(value) is not None
    if callable(wanted):
        return bool(wanted(value))
    raise TypeError(f"a filter value must be a string, a compiled regex or a callable, "
                    f"not {type(wanted).__name__}")


FILTERS: dict[str, Callable[[CaughtMessage, Any], bool]] = {
    "to": _address_filter(lambda m: m.recipients),
    "from_": _address_filter(lambda m: m.senders),
    "subject": _text_filter(lambda m: m.subject),
    "text": _text_filter(lambda m: m.text),
    "html": _text_filter(lambda m: m.html),
    # ``match=lambda m: ...`` gets the whole CaughtMessage.
    "match": lambda message, wanted: bool(wanted(message)),
}


def check_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters with ``from`` accepted for ``from_``; unknown names are a TypeError."""
    checked = {("from_" if name == "from" else name): value for name, value in filters.items()}
    unknown = sorted(set(checked) - set(FILTERS))
    if unknown:
        raise TypeError(f"unknown mail filter {', '.join(unknown)}; "
                        f"known: {', '.join(FILTERS)}")
    return checked


def matches(message: CaughtMessage, filters: dict[str, Any]) -> bool:
    """True when the message passes every filter (checked with ``check_filters``)."""
    return all(FILTERS[name](message, wanted) for name, wanted in filters.items())


# -- listings for failure messages -----------------------------------------

def describe(message: CaughtMessage) -> str:
    """One line: envelope sender → recipients, the To header when it differs, subject."""
    line = f"{message.mail_from or '<>'} -> {', '.join(message.rcpt_tos)}"
    header_to = sorted(address.lower() for address in _bare_addresses(message.to))
    if header_to and header_to != sorted(a.lower() for a in message.rcpt_tos):
        line += f" (To: {', '.join(message.to)})"
    return f"{line}  subject {message.subject!r}"


def listing(messages: list[CaughtMessage]) -> str:
    """Every message numbered, one a line; or a line saying there were none."""
    if not messages:
        return "  (no mail arrived)"
    return "\n".join(f"  {number}. {describe(m)}" for number, m in enumerate(messages, 1))


def describe_filters(filters: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in filters.items()) or "any"


class MailNotReceived(AssertionError):
    """``wait_for`` timed out; the message lists the mail that did arrive.

    An AssertionError so that test runners report it as a test failure.
    """


def not_received_message(count: int, timeout: float, filters: dict[str, Any],
                         matching: list[CaughtMessage], arrived: list[CaughtMessage]) -> str:
    wanted = "1 message" if count == 1 else f"{count} messages"
    return (f"expected {wanted} matching {describe_filters(filters)} within {timeout:g} s, "
            f"got {len(matching)}; the sink holds {len(arrived)}:\n{listing(arrived)}")
