"""The wire log of one probe session, written like swaks prints it.

``<-`` is the server, ``->`` the client; ``<~``/``~>`` the same inside TLS; ``===``
notes what happened (connect, TLS), ``***`` errors. Credentials never get here: the
session hands over a redacted form of every secret line instead of the line itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

# Message bodies can be large; the transcript keeps their start and says how much it left out.
BODY_LINES_SHOWN = 200

REDACTED = "[credentials redacted]"


@dataclass
class Entry:
    at: float      # seconds since the session started
    kind: str      # "send", "recv", "note", "error"
    text: str
    tls: bool = False

    def render(self) -> str:
        if self.kind == "send":
            return (" ~> " if self.tls else " -> ") + self.text
        if self.kind == "recv":
            return ("<~  " if self.tls else "<-  ") + self.text
        if self.kind == "error":
            return "*** " + self.text
        return "=== " + self.text


class Transcript:
    """An append-only list of entries; ``str()`` gives the swaks-like text."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._start = time.perf_counter()

    def _add(self, kind: str, text: str, tls: bool) -> None:
        self.entries.append(Entry(time.perf_counter() - self._start, kind, text, tls))

    def sent(self, line: str, tls: bool = False) -> None:
        self._add("send", line, tls)

    def received(self, line: str, tls: bool = False) -> None:
        self._add("recv", line, tls)

    def note(self, text: str) -> None:
        self._add("note", text, False)

    def error(self, text: str) -> None:
        self._add("error", text, False)

    def body(self, wire: bytes, tls: bool = False) -> None:
        """The message as sent (dot-stuffed, CRLF), shortened past BODY_LINES_SHOWN lines."""
        lines = wire.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for raw in lines[:BODY_LINES_SHOWN]:
            self.sent(raw.decode("utf-8", "replace"), tls)
        if len(lines) > BODY_LINES_SHOWN:
            self.note(f"{len(lines) - BODY_LINES_SHOWN} more lines of the message not shown "
                      f"({len(wire)} bytes in all)")

    def extend(self, other: "Transcript") -> None:
        """Append another session's entries (an earlier attempt, another MX host)."""
        self.entries.extend(other.entries)

    def lines(self) -> list[str]:
        return [entry.render() for entry in self.entries]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __contains__(self, text: str) -> bool:
        return any(text in entry.text for entry in self.entries)
