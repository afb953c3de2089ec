"""The storage boundary: the ``Store`` protocol and the records it holds.

The SMTP side hands a store raw bytes plus an ``Envelope`` and nothing else; the
web side reads ``Summary`` rows, envelopes and raw bytes back. Only the modules in
this package know SQL.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence


@dataclass
class Envelope:
    """How a message arrived: everything the SMTP session knew about it."""

    mail_from: str                       # "" for the null sender MAIL FROM:<>
    rcpt_tos: list[str]                  # every RCPT TO, in order (BCC only here)
    helo: str = ""
    peer: str = ""                       # "host:port" of the client
    received_at: float = 0.0             # Unix time the 250 was due
    tls_version: str | None = None
    tls_cipher: str | None = None
    auth_user: str | None = None
    auth_mechanism: str | None = None
    smtputf8: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Envelope":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Summary:
    """What the inbox list shows; extracted once at ingest."""

    id: str
    received_at: float
    size: int
    from_: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str = ""
    date: str = ""
    message_id: str = ""
    snippet: str = ""
    attachments: int = 0
    read: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return data


@dataclass
class StoredMessage:
    """One message as stored: the summary, the envelope and the exact raw bytes."""

    summary: Summary
    envelope: Envelope
    raw: bytes


@dataclass
class Page:
    """A slice of the newest-first list."""

    total: int
    start: int
    summaries: list[Summary]
    total_exact: bool = True     # False: more than ``total`` match (counting stopped)


class Store(Protocol):
    """What every storage engine provides. All methods are coroutine functions."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def new_spool(self) -> Any:
        """A writable buffer (``write``, ``discard``) for an incoming message that
        ``add`` accepts in place of bytes; a store may keep large ones on disk."""
    async def add(self, raw: Any, envelope: Envelope) -> str:
        """Store bytes or a spool durably; return the new id, only after the commit."""
    async def get(self, message_id: str) -> StoredMessage | None: ...
    async def get_raw(self, message_id: str) -> bytes | None: ...
    async def list(self, start: int = 0, limit: int = 50, query: str | None = None,
                   before: str | None = None, count_limit: int | None = None) -> Page:
        """Newest first; ``before`` = a message id: only older ones (keyset paging);
        ``count_limit``: stop counting search matches there (``total_exact`` False)."""
    async def count(self) -> int: ...
    def counts(self) -> tuple[int, int]:
        """(messages, unread), cheap enough to call for every event."""
    async def delete(self, message_ids: Sequence[str]) -> list[str]:
        """Delete these ids; return the ones that existed."""
    async def delete_all(self) -> int: ...
    async def mark_read(self, message_ids: Sequence[str], read: bool = True) -> list[str]: ...
    async def get_many(self, message_ids: Sequence[str]) -> list[StoredMessage]:
        """These messages, in the order given; unknown ids are left out."""
    async def search_mailhog(self, kind: str, query: str, start: int = 0,
                             limit: int = 50) -> Page:
        """MailHog's /api/v2/search: ``kind`` is from, to or containing."""
    async def mark_all_read(self, read: bool = True) -> int: ...


def open_store(path: str | None, max_messages: int,
               on_pruned: Callable[[list[str]], None] | None = None) -> "Store":
    """The store for these settings: SQLite at ``path``, or a temporary file.

    ``on_pruned`` is called on the event loop with the ids retention removed.
    """
    from .sqlite import SQLiteStore

    return SQLiteStore(path, max_messages=max_messages, on_pruned=on_pruned)
